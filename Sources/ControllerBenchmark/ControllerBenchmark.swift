import ArgumentParser
import EtcdClient
import Foundation
import HAProxyKit
import Logging
import SwitchyardLab
import SwitchyardModel
import SwitchyardProcess

/// Prints how fast a `switchyard controller` brings its HAProxy in step with etcd: the time from a write to
/// HAProxy having the server, one change at a time and in bursts, and what churn under load costs. Starts its
/// own etcd, controller (the `switchyard` next to this executable), HAProxy and backends on loopback.
@main
struct ControllerBenchmark: AsyncParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "controller-benchmark",
    abstract: "Measure how fast a Switchyard controller applies changes from etcd to HAProxy."
  )

  @Option(help: "Changes measured one at a time.") var sequential = 100
  @Option(help: "Registrations written at once in the burst.") var burst = 200
  @Option(help: "Seconds of churn under load.") var churnSeconds = 10.0

  func run() async throws {
    try await EtcdCluster.with(members: 1) { cluster in
      let directory = try TemporaryDirectory(prefix: "controller-bench")
      defer { directory.remove() }
      let ports = try FreePort.allocate(3)
      let switchyard = URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent().path + "/switchyard"
      let controller = try ManagedProcess(
        switchyard,
        arguments: [
          "controller", "--node-id", "bench", "--etcd-endpoints", cluster.endpoints.joined(separator: ","),
          "--listen", "127.0.0.1:\(ports[0])", "--stats", "127.0.0.1:\(ports[1])", "--admin", "127.0.0.1:\(ports[2])",
          "--state-dir", directory.path("state"), "--drain-timeout", "5", "--log-level", "warning",
        ],
        logPath: directory.path("controller.log")
      )
      let admin = "http://127.0.0.1:\(ports[2])"
      let ready = await eventually(timeout: .seconds(30)) {
        try await HTTPLoadClient.get("\(admin)/readyz").status == 200
      }
      guard ready else { throw ProcessError("the controller did not get ready:\n\(controller.logTail())") }
      let master = try String(contentsOfFile: directory.path("state/haproxy.pid"), encoding: .utf8)
      StrayProcessGuard.guardProcess(Int32(master.trimmingCharacters(in: .whitespacesAndNewlines)) ?? 0)

      let runtime = RuntimeAPI(socketPath: directory.path("state/admin.sock"), logger: Logger(label: "bench"))
      let masterCLI = MasterCLI(socketPath: directory.path("state/master.sock"), logger: Logger(label: "bench"))
      let servers = try await (1...8).asyncMap { try await HTTPTestServer.start(name: "bench-\($0)") }
      var configuration = try EtcdConfiguration(endpoints: cluster.endpoints.joined(separator: ","))
      configuration.requestTimeout = .seconds(5)
      try await withEtcdClient(configuration: configuration) { etcd in
        print("controller, HAProxy \(try await masterCLI.showProc().master.version), etcd on loopback, 2 cores shared")
        print("measurement                                   result")

        // The parts of a pass: one Runtime API command, one etcd read.
        var commandTimes: [Duration] = []
        var readTimes: [Duration] = []
        for _ in 0..<200 {
          let start = ContinuousClock.now
          _ = try await runtime.serversState(backend: "svc_backend")
          commandTimes.append(start.duration(to: .now))
          let read = ContinuousClock.now
          _ = try await etcd.get(.prefix("/services/"))
          readTimes.append(read.duration(to: .now))
        }
        print(row("Runtime API: one command, own connection", percentiles(commandTimes)))
        print(row("etcd: read of /services/", percentiles(readTimes)))

        // One change at a time, each after a pause longer than the quiet window, so that each finds the
        // controller idle: write, then poll the Runtime API until HAProxy has it.
        var addLatencies: [Duration] = []
        var removeLatencies: [Duration] = []
        for index in 0..<sequential {
          let name = "seq-\(index)"
          try await Task.sleep(for: .milliseconds(200))
          let start = ContinuousClock.now
          try await etcd.put(key(name), value: value(port: servers[index % servers.count].port))
          try await waitUntil(runtime) { $0.contains(name) }
          addLatencies.append(start.duration(to: .now))
          try await Task.sleep(for: .milliseconds(200))
          let removal = ContinuousClock.now
          try await etcd.delete(.key(key(name)))
          try await waitUntil(runtime) { !$0.contains(name) }
          removeLatencies.append(removal.duration(to: .now))
        }
        print(row("write → server in HAProxy (\(sequential)×)", percentiles(addLatencies)))
        print(row("delete → server gone (drained, deleted)", percentiles(removeLatencies)))

        // A burst: many registrations written at once by 16 writers.
        let passesBefore = try await metric(admin, "switchyard_reconciles_total{result=\"ok\"}")
        let burstStart = ContinuousClock.now
        try await withThrowingTaskGroup(of: Void.self) { group in
          for writer in 0..<16 {
            group.addTask {
              for index in stride(from: writer, to: burst, by: 16) {
                try await etcd.put(key("burst-\(index)"), value: value(port: servers[index % servers.count].port))
              }
            }
          }
          try await group.waitForAll()
        }
        let written = burstStart.duration(to: .now)
        try await waitUntil(runtime) { names in names.filter { $0.hasPrefix("burst-") }.count == burst }
        let applied = burstStart.duration(to: .now)
        // The pass is counted once it has finished, a moment after HAProxy has the servers.
        try await Task.sleep(for: .milliseconds(300))
        let passes = try await metric(admin, "switchyard_reconciles_total{result=\"ok\"}") - passesBefore
        print(row("burst of \(burst): all written", format(written)))
        print(row("burst of \(burst): all in HAProxy", "\(format(applied)) in \(Int(passes)) passes"))
        try await etcd.delete(.prefix("/services/backend/burst-"))
        try await waitUntil(runtime) { names in !names.contains { $0.hasPrefix("burst-") } }

        // Churn under load.
        for server in servers { try await etcd.put(key(server.name), value: value(port: server.port)) }
        try await waitUntil(runtime) { $0.count == servers.count }
        let load = try HTTPLoadClient.start(url: "http://127.0.0.1:\(ports[0])/", connections: 8)
        let churnStart = ContinuousClock.now
        var changes = 0
        while churnStart.duration(to: .now) < .milliseconds(Int64(churnSeconds * 1000)) {
          let name = "churn-\(changes % 20)"
          if changes % 40 < 20 {
            try await etcd.put(key(name), value: value(port: servers[changes % servers.count].port))
          } else {
            try await etcd.delete(.key(key(name)))
          }
          changes += 1
          try await Task.sleep(for: .milliseconds(20))
        }
        let report = await load.stop()
        let seconds = Double(churnStart.duration(to: .now).components.seconds)
        print(row("churn: changes written", "\(changes) (\(Int(Double(changes) / max(seconds, 1)))/s)"))
        print(row("churn: requests through HAProxy", "\(report.totalRequests), \(report.failures) failed"))
        print(row("HAProxy reloads in all of the above", "\(try await masterCLI.showProc().reloads)"))
        let histogram = try await histogramSummary(admin)
        print(row("controller: event → applied (histogram)", histogram))
      }
      for server in servers { await server.close() }
      // SIGTERM: the controller stops its HAProxy gracefully.
      await controller.terminate()
    }
  }

  private func key(_ name: String) -> String { "/services/backend/\(name)" }

  private func value(port: Int) -> [UInt8] {
    // Every value here is valid by construction.
    (try? Registration(address: Address(validating: "127.0.0.1"), port: port))?.encoded() ?? []
  }

  /// Polls `show servers state svc_backend` until `condition` holds for the server names.
  private func waitUntil(_ runtime: RuntimeAPI, _ condition: (Set<String>) -> Bool) async throws {
    let deadline = ContinuousClock.now.advanced(by: .seconds(30))
    while ContinuousClock.now < deadline {
      let names = Set(try await runtime.serversState(backend: "svc_backend").filter { !$0.isMaint }.map(\.server))
      if condition(names) { return }
      try await Task.sleep(for: .milliseconds(1))
    }
    throw ProcessError("HAProxy did not get there within 30 s")
  }

  private func metric(_ admin: String, _ prefix: String) async throws -> Double {
    let text = try await HTTPLoadClient.get("\(admin)/metrics").body
    let line = text.split(separator: "\n").first { $0.hasPrefix(prefix + " ") }
    return line.flatMap { $0.split(separator: " ").last }.flatMap { Double($0) } ?? 0
  }

  /// `p50 ≤ 25 ms, p90 ≤ 50 ms` from the controller's histogram buckets.
  private func histogramSummary(_ admin: String) async throws -> String {
    let text = try await HTTPLoadClient.get("\(admin)/metrics").body
    var buckets: [(Double, Double)] = []
    for line in text.split(separator: "\n") where line.hasPrefix("switchyard_event_to_applied_seconds_bucket") {
      guard let range = line.range(of: "le=\""), let end = line[range.upperBound...].firstIndex(of: "\""),
        let count = line.split(separator: " ").last.flatMap({ Double($0) })
      else { continue }
      buckets.append((Double(line[range.upperBound..<end]) ?? .infinity, count))
    }
    guard let total = buckets.last?.1, total > 0 else { return "no samples" }
    func quantile(_ q: Double) -> String {
      guard let bucket = buckets.first(where: { $0.1 >= q * total }) else { return "?" }
      return bucket.0.isInfinite ? "> 10 s" : "≤ \(Int(bucket.0 * 1000)) ms"
    }
    return "\(Int(total)) passes; p50 \(quantile(0.5)), p90 \(quantile(0.9)), p99 \(quantile(0.99))"
  }

  private func percentiles(_ samples: [Duration]) -> String {
    let sorted = samples.sorted()
    guard !sorted.isEmpty else { return "no samples" }
    func at(_ q: Double) -> String { format(sorted[min(sorted.count - 1, Int(Double(sorted.count) * q))]) }
    return "p50 \(at(0.5)), p90 \(at(0.9)), p99 \(at(0.99)), max \(format(sorted.last!))"
  }

  private func format(_ duration: Duration) -> String {
    let milliseconds = Double(duration.components.seconds) * 1000 + Double(duration.components.attoseconds) / 1e15
    return milliseconds < 10 ? String(format: "%.1f ms", milliseconds) : "\(Int(milliseconds.rounded())) ms"
  }

  private func row(_ name: String, _ value: String) -> String {
    name.padding(toLength: 46, withPad: " ", startingAt: 0) + value
  }
}
