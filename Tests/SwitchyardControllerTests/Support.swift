import EtcdClient
import Foundation
import HAProxyKit
import Logging
import NIOCore
import NIOPosix
import SwitchyardController
import SwitchyardModel
import SwitchyardTestSupport
import Synchronization
import Testing

/// The `switchyard` executable built next to this test bundle.
let switchyardBinary: String = {
  let directory = URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent().path
  return "\(directory)/switchyard"
}()

/// One load-balancer node under test: a `switchyard controller` process and the HAProxy it runs.
final class LBNode: Sendable {
  let name: String
  let directory: TemporaryDirectory
  let listenPort: Int
  let statsPort: Int
  let adminPort: Int
  private let endpoints: Mutex<[String]>
  private let extraArguments: [String]
  private let environment: [String: String]?
  private let process = Mutex<ManagedProcess?>(nil)
  private let starts = Mutex(0)

  /// `environment`, when given, is the controller's whole environment; otherwise it inherits the tests'.
  init(name: String, endpoints: [String], extraArguments: [String] = [], environment: [String: String]? = nil) throws {
    self.name = name
    directory = try TemporaryDirectory(prefix: "lb-\(name)")
    let ports = try FreePort.allocate(3)
    listenPort = ports[0]
    statsPort = ports[1]
    adminPort = ports[2]
    self.endpoints = Mutex(endpoints)
    self.extraArguments = extraArguments
    self.environment = environment
  }

  var stateDirectory: String { "\(directory.path)/state" }
  var url: String { "http://127.0.0.1:\(listenPort)/" }
  var adminURL: String { "http://127.0.0.1:\(adminPort)" }

  /// Starts the controller (again); output goes to `controller-N.log`.
  func start(endpoints newEndpoints: [String]? = nil, extraArguments more: [String] = []) throws {
    if let newEndpoints { endpoints.withLock { $0 = newEndpoints } }
    let count = starts.withLock { count in
      count += 1
      return count
    }
    let arguments =
      [
        "controller", "--node-id", name,
        "--etcd-endpoints", endpoints.withLock { $0.joined(separator: ",") },
        "--listen", "127.0.0.1:\(listenPort)",
        "--stats", "127.0.0.1:\(statsPort)",
        "--admin", "127.0.0.1:\(adminPort)",
        "--state-dir", stateDirectory,
        "--dial-timeout", "1",
        "--request-timeout", "3",
        "--drain-timeout", "5",
      ] + extraArguments + more
    let started = try ManagedProcess(
      switchyardBinary,
      arguments: arguments,
      environment: environment,
      logPath: "\(directory.path)/controller-\(count).log"
    )
    process.withLock { $0 = started }
  }

  var controller: ManagedProcess? { process.withLock { $0 } }

  /// The HAProxy master's PID from the pid file, when the file is there.
  var haproxyPID: Int32? {
    guard let text = try? String(contentsOfFile: "\(stateDirectory)/haproxy.pid", encoding: .utf8) else { return nil }
    return Int32(text.trimmingCharacters(in: .whitespacesAndNewlines))
  }

  /// Waits until `/readyz` says ready, and guards the HAProxy it runs.
  func waitReady(timeout: Duration = .seconds(20)) async throws {
    try await retrying(timeout: timeout) {
      guard let controller, controller.isRunning else {
        throw TestSupportError("controller \(name) exited: \(controller?.logTail() ?? "")")
      }
      let (status, body) = try await HTTPLoadClient.get("\(adminURL)/readyz")
      guard status == 200 else { throw TestSupportError("\(name) not ready: \(body)") }
    }
    if let pid = haproxyPID { StrayProcessGuard.guardProcess(pid) }
  }

  /// `/state`.
  func state() async throws -> ControllerStatus.Snapshot {
    let (status, body) = try await HTTPLoadClient.get("\(adminURL)/state")
    guard status == 200 else { throw TestSupportError("/state answered \(status)") }
    return try JSONDecoder().decode(ControllerStatus.Snapshot.self, from: Data(body.utf8))
  }

  /// `/metrics`.
  func metrics() async throws -> String {
    try await HTTPLoadClient.get("\(adminURL)/metrics").body
  }

  /// One metric's value (the first sample whose name and labels start with `prefix`).
  func metric(_ prefix: String) async throws -> Double? {
    let text = try await metrics()
    for line in text.split(separator: "\n") where line.hasPrefix(prefix) && !line.hasPrefix("#") {
      if let value = line.split(separator: " ").last.flatMap({ Double($0) }) { return value }
    }
    return nil
  }

  /// HAProxy's process list, from its master socket.
  /// `show proc` on the master CLI. The master re-executes itself on a reload and refuses
  /// connections for that moment, so a refused connection is tried again for up to 3 s.
  func showProc() async throws -> ProcessList {
    var list: ProcessList?
    try await retrying(timeout: .seconds(3), every: .milliseconds(50)) {
      list = try await MasterCLI(socketPath: "\(stateDirectory)/master.sock", logger: quietLogger).showProc()
    }
    guard let list else { throw TestSupportError("show proc gave no answer") }
    return list
  }

  /// The weight HAProxy gives `server` in `backend`, from the Runtime API's server state.
  func runtimeWeight(of server: String, backend: String = "svc_backend") async throws -> Int? {
    let api = RuntimeAPI(socketPath: "\(stateDirectory)/admin.sock", logger: quietLogger)
    return try await api.serversState(backend: backend).first { $0.server == server }?.userWeight
  }

  /// Serves and registers `w1` (weight 100), has an operator set its weight to 7 by hand through the
  /// Runtime API (nothing in etcd changes, so no event says so), and returns whether the node put the
  /// weight from etcd back within 8 s.
  func handChangedWeightComesBack(etcd: EtcdClient) async throws -> Bool {
    let server = try await HTTPTestServer.start(name: "w1")
    defer { Task { await server.close() } }
    try await etcd.register("w1", port: server.port, weight: 100)
    try await waitServing(["w1"])
    let api = RuntimeAPI(socketPath: "\(stateDirectory)/admin.sock", logger: quietLogger)
    try await api.setWeight(backend: "svc_backend", server: "w1", weight: 7)
    #expect(try await runtimeWeight(of: "w1") == 7)
    return await eventually(timeout: .seconds(8)) { (try? await self.runtimeWeight(of: "w1")) == 100 }
  }

  /// The servers HAProxy runs in `svc_backend`, as `name → admin state`, from the Runtime API.
  func servers(backend: String = "svc_backend") async throws -> [String: String] {
    let api = RuntimeAPI(socketPath: "\(stateDirectory)/admin.sock", logger: quietLogger)
    var result: [String: String] = [:]
    for server in try await api.serversState(backend: backend) {
      result[server.server] = server.isMaint ? "maint" : server.isDrain ? "drain" : "ready"
    }
    return result
  }

  /// One request through the load balancer.
  func get() async throws -> (status: Int, body: String) {
    try await HTTPLoadClient.get(url)
  }

  /// Waits until requests through the node reach exactly `names` (by the greeting they answer with).
  func waitServing(_ names: Set<String>, timeout: Duration = .seconds(10)) async throws {
    try await retrying(timeout: timeout) {
      var seen: Set<String> = []
      for _ in 0..<(names.count * 4 + 2) {
        let (status, body) = try await get()
        if names.isEmpty {
          guard status == 503 else { throw TestSupportError("expected 503, got \(status) \(body)") }
        } else {
          guard status == 200 else { throw TestSupportError("status \(status)") }
          seen.insert(body.replacingOccurrences(of: "Hello from ", with: "").trimmingCharacters(in: .newlines))
        }
      }
      guard seen == names else { throw TestSupportError("\(name) serves \(seen.sorted()), expected \(names.sorted())") }
    }
  }

  /// Stops the controller with SIGTERM and waits for it.
  func stop() async {
    await controller?.terminate(timeout: .seconds(20))
  }

  /// Kills the controller with SIGKILL (HAProxy keeps running).
  func killController() async {
    guard let controller else { return }
    controller.kill()
    _ = await controller.waitForExit(timeout: .seconds(5))
  }

  /// Stops everything this node started, even after a failure: the controller, then any HAProxy left.
  func cleanup() async {
    await stop()
    if let pid = haproxyPID, StrayProcessGuard.isAlive(pid), isHAProxy(pid) {
      await StrayProcessGuard.killAndWait(pid)
    }
    directory.remove()
  }

  /// The controller's log, for failure messages.
  func log() -> String { controller?.logTail(bytes: 6_000) ?? "" }

  private func isHAProxy(_ pid: Int32) -> Bool {
    let cmdline = (try? String(contentsOfFile: "/proc/\(pid)/cmdline", encoding: .utf8)) ?? ""
    return cmdline.contains("haproxy") && cmdline.contains(stateDirectory)
  }
}

let quietLogger: Logger = {
  var logger = Logger(label: "controller-test")
  logger.logLevel = .critical
  return logger
}()

/// Runs `body` with a 1-member etcd cluster (or `members`), `count` LB nodes started and ready, and a client.
func withNodes(
  count: Int = 1,
  members: Int = 1,
  extraArguments: [String] = [],
  _ body: (EtcdCluster, [LBNode], EtcdClient) async throws -> Void
) async throws {
  let cluster = try await EtcdCluster.start(members: members)
  var nodes: [LBNode] = []
  do {
    for index in 1...count {
      let node = try LBNode(name: "lb\(index)", endpoints: cluster.endpoints, extraArguments: extraArguments)
      nodes.append(node)
      try node.start()
    }
    for node in nodes { try await node.waitReady() }
    try await withRegistry(cluster) { etcd in try await body(cluster, nodes, etcd) }
  } catch {
    for node in nodes { Issue.record("\(node.name) log:\n\(node.log())") }
    for node in nodes { await node.cleanup() }
    await cluster.shutdown()
    throw error
  }
  for node in nodes { await node.cleanup() }
  await cluster.shutdown()
}

/// A client for the test's own writes to etcd.
func withRegistry<T: Sendable>(_ cluster: EtcdCluster, _ body: (EtcdClient) async throws -> T) async throws -> T {
  var configuration = try EtcdConfiguration(endpoints: cluster.endpoints.joined(separator: ","))
  configuration.requestTimeout = .seconds(5)
  configuration.dialTimeout = .seconds(1)
  return try await withEtcdClient(configuration: configuration, logger: quietLogger, body)
}

extension EtcdClient {
  /// Registers `id` of `service` at 127.0.0.1:`port`.
  @discardableResult
  func register(
    _ id: String,
    port: Int,
    service: String = "backend",
    weight: Int = 100,
    state: InstanceState = .up,
    checkPath: String? = nil,
    lease: Int64 = 0
  ) async throws -> Int64 {
    let key = RegistrationKey(service: try ServiceName(validating: service), instance: try InstanceID(validating: id))
    let value = try Registration(
      address: Address(validating: "127.0.0.1"),
      port: port,
      weight: weight,
      state: state,
      checkPath: checkPath
    )
    return try await put(key.path, value: value.encoded(), options: PutOptions(lease: lease)).header.revision
  }

  /// Deletes the registration of `id`.
  @discardableResult
  func deregister(_ id: String, service: String = "backend") async throws -> Int64 {
    try await delete(.key("/services/\(service)/\(id)")).header.revision
  }
}
