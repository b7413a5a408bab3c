import Foundation
import HAProxyKit
import Logging
import SwitchyardLab
import SwitchyardProcess

#if canImport(Glibc)
  import Glibc
#endif

/// One load-balancer node under measurement: a `switchyard controller` process and the HAProxy it runs, with
/// the sockets and admin endpoint the bench observes them through.
final class LBNode: Sendable {
  let controller: ManagedProcess
  let listenPort: Int
  let adminURL: String
  let stateDirectory: String
  let runtime: RuntimeAPI
  let masterCLI: MasterCLI
  let masterPID: Int32
  /// When the controller process was started.
  let started: ContinuousClock.Instant

  private init(
    controller: ManagedProcess,
    listenPort: Int,
    adminURL: String,
    stateDirectory: String,
    masterPID: Int32,
    started: ContinuousClock.Instant
  ) {
    self.controller = controller
    self.listenPort = listenPort
    self.adminURL = adminURL
    self.stateDirectory = stateDirectory
    let logger = Logger(label: "switchyard.bench")
    runtime = RuntimeAPI(socketPath: stateDirectory + "/admin.sock", logger: logger)
    masterCLI = MasterCLI(socketPath: stateDirectory + "/master.sock", logger: logger)
    self.masterPID = masterPID
    self.started = started
  }

  /// Starts a controller with `strategy` serving `services`, waits until it is ready, and runs `body`; stops
  /// the controller and its HAProxy however `body` ends.
  static func with<Result>(
    lab: BenchLab,
    strategy: String,
    services: [String] = ["backend"],
    readyTimeout: Duration = .seconds(60),
    extraArguments: [String] = [],
    _ body: (LBNode) async throws -> Result
  ) async throws -> Result {
    let node = try await start(
      lab: lab, strategy: strategy, services: services, readyTimeout: readyTimeout, extraArguments: extraArguments)
    do {
      let result = try await body(node)
      await node.stop()
      return result
    } catch {
      await node.stop()
      throw error
    }
  }

  /// `extraArguments` go to the controller after the others (the HTTPS options of the TLS scenario).
  private static func start(
    lab: BenchLab, strategy: String, services: [String], readyTimeout: Duration, extraArguments: [String]
  ) async throws -> LBNode {
    let ports = try FreePort.allocate(3)
    let name = "lb-\(strategy)-\(lab.nextSerial())"
    let stateDirectory = lab.directory.path(name)
    let started = ContinuousClock.now
    // SWITCHYARD_BENCH_LOG_LEVEL raises the controllers' log level (warning by default: logging every
    // Runtime API command costs time the figures should not include); SWITCHYARD_BENCH_LOGS=DIR keeps
    // their logs; SWITCHYARD_BENCH_LOG_FORMAT=json writes them with millisecond times.
    let environment = ProcessInfo.processInfo.environment
    let logLevel = environment["SWITCHYARD_BENCH_LOG_LEVEL"].flatMap { $0.isEmpty ? nil : $0 } ?? "warning"
    let logFormat = environment["SWITCHYARD_BENCH_LOG_FORMAT"].flatMap { $0.isEmpty ? nil : $0 } ?? "text"
    let controller = try ManagedProcess(
      lab.switchyardExecutable,
      arguments: [
        "controller", "--node-id", "bench", "--etcd-endpoints", lab.endpoints,
        "--listen", "127.0.0.1:\(ports[0])", "--stats", "127.0.0.1:\(ports[1])", "--admin", "127.0.0.1:\(ports[2])",
        "--state-dir", stateDirectory, "--drain-timeout", "5", "--log-level", logLevel,
        "--log-format", logFormat,
        "--update-strategy", strategy, "--haproxy", lab.haproxyExecutable,
      ] + services.flatMap { ["--service", $0] } + extraArguments,
      logPath: lab.directory.path("\(name).log")
    )
    let adminURL = "http://127.0.0.1:\(ports[2])"
    let ready = await eventually(timeout: readyTimeout) {
      try await HTTPLoadClient.get("\(adminURL)/readyz").status == 200
    }
    let pidText = try? String(contentsOfFile: stateDirectory + "/haproxy.pid", encoding: .utf8)
    let masterPID = Int32(pidText?.trimmingCharacters(in: .whitespacesAndNewlines) ?? "") ?? 0
    // HAProxy runs in a session of its own so that it outlives a controller; the bench must not leave it.
    if masterPID > 0 { StrayProcessGuard.guardProcess(masterPID) }
    let node = LBNode(
      controller: controller,
      listenPort: ports[0],
      adminURL: adminURL,
      stateDirectory: stateDirectory,
      masterPID: masterPID,
      started: started
    )
    guard ready, masterPID > 0 else {
      await node.stop()
      throw ProcessError("the controller did not get ready:\n\(controller.logTail())")
    }
    return node
  }

  /// Stops the controller (which stops its HAProxy), then kills HAProxy if it is still there.
  func stop() async {
    await controller.terminate()
    if masterPID > 0 {
      let deadline = ContinuousClock.now.advanced(by: .seconds(5))
      while StrayProcessGuard.isAlive(masterPID) && ContinuousClock.now < deadline {
        try? await Task.sleep(for: .milliseconds(20))
      }
      if StrayProcessGuard.isAlive(masterPID) {
        await StrayProcessGuard.killAndWait(masterPID)
      } else {
        StrayProcessGuard.forget(masterPID)
      }
    }
  }

  /// The sum of every sample of the controller's metric `name` (all label sets).
  func metric(_ name: String) async throws -> Double {
    let text = try await HTTPLoadClient.get("\(adminURL)/metrics").body
    var total = 0.0
    for line in text.split(separator: "\n") where line.hasPrefix(name + " ") || line.hasPrefix(name + "{") {
      total += line.split(separator: " ").last.flatMap { Double($0) } ?? 0
    }
    return total
  }

  /// HAProxy reloads the controller has made so far.
  func reloads() async throws -> Double {
    try await metric("switchyard_haproxy_reloads_total")
  }

  /// The servers of `backend` (every backend if nil) HAProxy has: all of them, and those that take new
  /// requests (neither in maintenance nor draining).
  func servers(backend: String? = "svc_backend") async throws -> (all: Set<String>, active: Set<String>) {
    let states = try await runtime.serversState(backend: backend)
    return (Set(states.map(\.server)), Set(states.filter { !$0.isMaint && !$0.isDrain }.map(\.server)))
  }

  /// Polls `servers(backend:)` every `interval` until `condition` holds; returns when it first did.
  @discardableResult
  func waitUntil(
    backend: String? = "svc_backend",
    interval: Duration = .milliseconds(1),
    timeout: Duration = .seconds(60),
    _ condition: (_ all: Set<String>, _ active: Set<String>) -> Bool
  ) async throws -> ContinuousClock.Instant {
    let deadline = ContinuousClock.now.advanced(by: timeout)
    while ContinuousClock.now < deadline {
      let (all, active) = try await servers(backend: backend)
      if condition(all, active) { return .now }
      try await Task.sleep(for: interval)
    }
    throw ProcessError("HAProxy did not get there within \(timeout):\n\(controller.logTail())")
  }

  /// Waits until the controller says it applied `revision` (its `switchyard_applied_revision` gauge, read
  /// every `gateInterval`), then polls HAProxy as ``waitUntil(backend:interval:timeout:_:)`` does and
  /// returns when HAProxy first met `condition`. The controller's word only decides when to start asking
  /// HAProxy, never the result: on a backend of 10,000 servers one `show servers state` costs HAProxy about
  /// 20 ms of CPU, so polling it every 20 ms from the start would take a core of this 2-core machine from
  /// the work being measured.
  @discardableResult
  func waitUntil(
    applied revision: Int64,
    backend: String? = "svc_backend",
    gateInterval: Duration = .milliseconds(5),
    interval: Duration,
    timeout: Duration = .seconds(60),
    _ condition: (_ all: Set<String>, _ active: Set<String>) -> Bool
  ) async throws -> ContinuousClock.Instant {
    let deadline = ContinuousClock.now.advanced(by: timeout)
    while try await metric("switchyard_applied_revision") < Double(revision) {
      guard ContinuousClock.now < deadline else {
        throw ProcessError(
          "The controller did not apply revision \(revision) within \(timeout):\n\(controller.logTail())")
      }
      try await Task.sleep(for: gateInterval)
    }
    return try await waitUntil(
      backend: backend, interval: interval, timeout: ContinuousClock.now.duration(to: deadline), condition)
  }

  /// Reloads HAProxy from its file the way an operator would (SIGUSR2 to the master) and returns once the
  /// master has counted the reload and the new worker has the servers.
  func reloadHAProxy() async throws {
    let before = try await masterCLI.showProc().master.reloads
    guard kill(masterPID, SIGUSR2) == 0 else { throw ProcessError("SIGUSR2 to HAProxy \(masterPID) failed") }
    let reloaded = await eventually(timeout: .seconds(10)) {
      try await masterCLI.showProc().master.reloads > before
    }
    guard reloaded else { throw ProcessError("HAProxy did not reload") }
    // The old worker hands over its listeners; give it a moment to go.
    try await Task.sleep(for: .milliseconds(500))
  }

  /// The controller's peak resident memory (VmHWM) in MB.
  func peakRSSMegabytes() -> Double {
    ProcFS.peakResidentBytes(of: controller.pid).map { Double($0) / 1_048_576 } ?? 0
  }

  /// The controller's CPU time so far (user and system), in seconds.
  func cpuSeconds() -> Double {
    controller.cpuTime.map(KeepAliveLoad.seconds) ?? 0
  }
}
