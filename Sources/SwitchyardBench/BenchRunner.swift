import EtcdClient
import Foundation
import HAProxyKit
import Logging
import SwitchyardLab
import SwitchyardProcess

/// Runs `switchyard bench`: starts one etcd member and six backends, then each scenario with its own
/// controller and HAProxy, for each update strategy where both make sense. Everything it starts is stopped
/// when it returns or throws; a killed or interrupted run leaves nothing behind either (``ManagedProcess``
/// children die with the bench, HAProxy masters are guarded by ``StrayProcessGuard``).
public struct BenchRunner: Sendable {
  /// The sizes and scenarios.
  public let options: BenchOptions

  /// Creates a runner.
  public init(options: BenchOptions) {
    self.options = options
  }

  /// Runs every selected scenario and returns the report; `progress` gets a line as each scenario starts and
  /// ends. A scenario that fails is reported with its error and the others still run.
  public func run(progress: @Sendable (String) -> Void) async throws -> BenchReport {
    let started = ContinuousClock.now
    let date = ISO8601DateFormatter().string(from: Date())
    let directory = try TemporaryDirectory(prefix: "switchyard-bench")
    defer {
      directory.keepLogs(in: "SWITCHYARD_BENCH_LOGS")
      directory.remove()
    }
    var report = BenchReport(
      date: date,
      machine: Self.machine(),
      etcdVersion: Self.etcdVersion(),
      haproxyVersion: Self.haproxyVersion(options.haproxyExecutable),
      build: Self.build,
      quick: options.quick
    )
    try await EtcdCluster.with(members: 1) { cluster in
      var configuration = try EtcdConfiguration(endpoints: cluster.endpoints.joined(separator: ","))
      configuration.requestTimeout = .seconds(10)
      try await withEtcdClient(configuration: configuration, logger: Logger(label: "switchyard.bench")) { etcd in
        let fleet = try await (1...6).asyncMap { try await HTTPTestServer.start(name: "fleet-\($0)") }
        let probe = try await HTTPTestServer.start(name: "probe")
        let lab = BenchLab(
          cluster: cluster,
          etcd: etcd,
          directory: directory,
          switchyardExecutable: options.switchyardExecutable,
          haproxyExecutable: options.haproxyExecutable,
          fleet: fleet,
          probe: probe,
          closedPort: try FreePort.allocate()
        )
        let scenarios = Scenarios(lab: lab, options: options)
        for run in plan(scenarios) {
          try Task.checkCancellation()
          progress("… \(run.label)")
          let runStart = ContinuousClock.now
          var results: [ScenarioResult]
          do {
            results = try await run.body()
          } catch {
            var result = ScenarioResult(name: run.name, strategy: run.strategy, variant: run.label)
            result.error = "\(error)"
            results = [result]
            // Whatever the scenario left, the next starts from an empty /services/.
            try? await lab.clear()
          }
          report.scenarios += results
          let took = KeepAliveLoad.seconds(runStart.duration(to: .now))
          for result in results.dropLast() { progress("  \(Self.summary(result))") }
          if let last = results.last { progress("  \(Self.summary(last)) (\(String(format: "%.1f", took)) s)") }
        }
        for server in fleet + [probe] { await server.close() }
      }
    }
    report.durationSeconds = KeepAliveLoad.seconds(started.duration(to: .now))
    return report
  }

  private struct PlannedRun: Sendable {
    var name: String
    var strategy: String
    var label: String
    /// What the run measured: one row, or several (the TLS scenario's nodes and the lone HAProxy).
    var body: @Sendable () async throws -> [ScenarioResult]

    init(name: String, strategy: String, label: String, body: @escaping @Sendable () async throws -> ScenarioResult) {
      self.init(name: name, strategy: strategy, label: label, results: { [try await body()] })
    }

    init(
      name: String, strategy: String, label: String, results: @escaping @Sendable () async throws -> [ScenarioResult]
    ) {
      self.name = name
      self.strategy = strategy
      self.label = label
      self.body = results
    }
  }

  private func plan(_ scenarios: Scenarios) -> [PlannedRun] {
    var runs: [PlannedRun] = []
    let strategies = options.strategies
    for name in options.scenarios {
      switch name {
      case "convergence":
        for strategy in strategies {
          for changeBefore in [false, true] {
            let variant = changeBefore ? "change 50 ms before" : "idle"
            runs.append(
              PlannedRun(name: name, strategy: strategy, label: "convergence \(strategy), \(variant)") {
                try await scenarios.convergence(strategy: strategy, changeBefore: changeBefore)
              })
          }
        }
      case "dataplane":
        runs.append(PlannedRun(name: name, strategy: "runtime", label: "dataplane") { try await scenarios.dataplane() })
      case "churn":
        for strategy in strategies {
          runs.append(
            PlannedRun(
              name: "churn", strategy: strategy, label: "churn \(strategy), alternating with control windows",
              results: { try await scenarios.churn(strategy: strategy) }))
        }
      case "burst":
        for fleetSize in [scenarios.lab.fleet.count, options.largeFleet] {
          for strategy in strategies {
            runs.append(
              PlannedRun(name: name, strategy: strategy, label: "burst \(strategy), fleet \(fleetSize)") {
                try await scenarios.burst(strategy: strategy, fleetSize: fleetSize)
              })
          }
        }
      case "scale":
        for strategy in strategies {
          runs.append(
            PlannedRun(name: name, strategy: strategy, label: "scale \(strategy)") {
              try await scenarios.scale(strategy: strategy)
            })
        }
      case "big-backend" where strategies.contains("runtime"):
        // The runtime strategy's cost per change; the reload strategy reloads the whole backend for each.
        runs.append(
          PlannedRun(
            name: name, strategy: "runtime", label: "big backend: one change beside \(options.bigBackendServers)"
          ) {
            try await scenarios.bigBackend()
          })
      case "routes" where strategies.contains("runtime"):
        // Routes go through the Runtime API's maps; the sizes are in RouteBenchSizes.
        runs.append(
          PlannedRun(name: name, strategy: "runtime", label: "routes: route put") { try await scenarios.routePuts() })
        runs.append(
          PlannedRun(name: "routes-fleet", strategy: "runtime", label: "routes: fleet") {
            try await scenarios.routeFleet()
          })
        runs.append(
          PlannedRun(name: "routes-fairness", strategy: "runtime", label: "routes: fairness past the round-robin limit")
          {
            try await scenarios.routeFairness()
          })
      case "tls":
        runs.append(
          PlannedRun(
            name: name, strategy: "runtime", label: "tls: handshakes per second",
            results: { try await TLSHandshakeBench(lab: scenarios.lab, options: options).run() }))
      default:
        break
      }
    }
    return runs
  }

  /// `convergence runtime idle: add_p99_ms 8.1, …` for the progress output.
  static func summary(_ result: ScenarioResult) -> String {
    if let error = result.error { return "\(result.name) \(result.strategy): FAILED: \(error)" }
    let figures = result.figures.prefix(8).map { "\($0.key) \(BenchReport.display($0.value))" }
    return "\(result.name) \(result.strategy) \(result.variant): " + figures.joined(separator: ", ")
  }

  static var build: String {
    #if DEBUG
      return "debug"
    #else
      return "release"
    #endif
  }

  static func machine() -> String {
    let model = ProcFS.cpuModel() ?? "unknown CPU"
    let memory = ProcessInfo.processInfo.physicalMemory / 1_048_576 / 1024
    let kernel = ProcFS.kernelRelease() ?? "?"
    return "Linux \(kernel), \(model), \(ProcessInfo.processInfo.activeProcessorCount) cores, \(memory) GiB"
  }

  static func etcdVersion() -> String {
    firstLine(of: EtcdCluster.defaultExecutable("etcd"), ["--version"]).replacingOccurrences(
      of: "etcd Version: ", with: "")
  }

  static func haproxyVersion(_ executable: String) -> String {
    let line = firstLine(of: executable, ["-v"])
    return HAProxyVersion(parsing: line)?.text ?? line
  }

  /// The first line `executable arguments` prints, or `unknown`.
  static func firstLine(of executable: String, _ arguments: [String]) -> String {
    guard let output = try? ManagedProcess.runBlocking(executable, arguments: arguments, timeout: .seconds(30)) else {
      return "unknown"
    }
    return output.split(separator: "\n").first.map(String.init) ?? "unknown"
  }
}
