import EtcdClient
import Foundation
import HAProxyKit
import Logging
import SwitchyardCerts
import SwitchyardModel
import SwitchyardPKI
import SwitchyardTestSupport
import Synchronization
import Testing

/// The `switchyard` executable built next to this test bundle.
let switchyardBinary: String = {
  let directory = URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent().path
  return "\(directory)/switchyard"
}()

let quietLogger: Logger = {
  var logger = Logger(label: "fault-test")
  logger.logLevel = .critical
  return logger
}()

/// The whole system on a network lab: three etcd hosts, two LB hosts (a controller and its HAProxy each),
/// three backend hosts, and the test process as the client host.
///
/// Every part runs with the defaults an operator gets from `switchyard up` (timeouts, TTL 10 s, drain 2 s),
/// except the controller's drain timeout (5 s), so that a scenario does not wait for the default 30 s.
final class FaultCluster {
  static let etcdNames = ["etcd1", "etcd2", "etcd3"]
  static let lbNames = ["lb1", "lb2"]
  /// The backends that run all the time, each on its own host: `be1` on host `be1`, …
  static let backendNames = ["be1", "be2", "be3"]
  static let listenPort = 8000
  static let adminPort = 9000
  /// Where each node's HAProxy serves HTTPS (certificates from `/switchyard/certs/`).
  static let httpsPort = 8443

  let lab: NetworkLab
  let directory: TemporaryDirectory
  /// The cluster key every controller opens the certificates' sealed keys with (made once per cluster).
  let clusterKey: ClusterKey
  /// The CA that issues the scenarios' certificates; clients verify the nodes' HTTPS against it.
  let authority: CertificateAuthority
  private var etcd: [String: ManagedProcess] = [:]
  private var controllers: [String: ManagedProcess] = [:]
  private var backends: [String: ManagedProcess] = [:]
  private var starts: [String: Int] = [:]

  private init(lab: NetworkLab, directory: TemporaryDirectory) throws {
    self.lab = lab
    self.directory = directory
    clusterKey = ClusterKey.generate()
    try clusterKey.fileContents.write(toFile: directory.path("cluster.key"), atomically: true, encoding: .utf8)
    let pki = directory.path("pki")
    try FileManager.default.createDirectory(atPath: pki, withIntermediateDirectories: true)
    authority = try CertificateAuthority.create(in: pki, commonName: "Switchyard fault suite CA", days: 2)
  }

  /// The file holding ``clusterKey``, as the controllers are given it.
  var clusterKeyFile: String { directory.path("cluster.key") }

  /// Builds the lab and starts etcd, the controllers and the backends; cleans up if any part fails.
  static func start() async throws -> FaultCluster {
    let lab = try await NetworkLab.create(hosts: etcdNames + lbNames + backendNames)
    let cluster: FaultCluster
    var directory: TemporaryDirectory?
    do {
      directory = try TemporaryDirectory(prefix: "switchyard-faults")
      cluster = try FaultCluster(lab: lab, directory: directory!)
    } catch {
      directory?.remove()
      await lab.shutdown()
      throw error
    }
    do {
      for name in etcdNames { try cluster.startEtcd(name) }
      for name in etcdNames { try await cluster.waitEtcdHealthy(name) }
      for name in lbNames { try cluster.startController(name) }
      for name in backendNames { try cluster.startBackend(name) }
      for name in lbNames { try await cluster.waitReady(name) }
      return cluster
    } catch {
      await cluster.shutdown()
      throw error
    }
  }

  /// `http://<etcd1>:2379,…`, as every part is given it.
  var endpoints: String {
    Self.etcdNames.map { "http://\(lab.host($0).address):2379" }.joined(separator: ",")
  }

  /// A client for the test's own reads and writes.
  var clientConfiguration: EtcdConfiguration {
    get throws {
      var configuration = try EtcdConfiguration(endpoints: endpoints)
      configuration.dialTimeout = .seconds(1)
      configuration.requestTimeout = .seconds(5)
      // The test's watch times registrations: it must leave a frozen member at least as fast as the
      // controllers' watches do.
      configuration.watchProgressInterval = .seconds(1)
      configuration.keepAliveInterval = .seconds(1)
      configuration.keepAliveTimeout = .seconds(1)
      return configuration
    }
  }

  private func logPath(_ name: String) -> String {
    let count = (starts[name] ?? 0) + 1
    starts[name] = count
    return directory.path("\(name)-\(count).log")
  }

  /// The tail of every log of `name`'s latest run, for failure messages.
  func logTail(_ name: String) -> String {
    (etcd[name] ?? controllers[name] ?? backends[name])?.logTail(bytes: 3_000) ?? ""
  }

  // MARK: - etcd

  func startEtcd(_ name: String) throws {
    let address = lab.host(name).address
    let initialCluster = Self.etcdNames.map { "\($0)=http://\(lab.host($0).address):2380" }.joined(separator: ",")
    let (tool, arguments) = lab.command(
      on: lab.host(name),
      EtcdCluster.defaultExecutable("etcd"),
      [
        "--name=\(name)", "--data-dir=\(directory.path("\(name).data"))",
        "--listen-client-urls=http://\(address):2379", "--advertise-client-urls=http://\(address):2379",
        "--listen-peer-urls=http://\(address):2380", "--initial-advertise-peer-urls=http://\(address):2380",
        "--initial-cluster=\(initialCluster)", "--initial-cluster-token=switchyard-faults",
        "--initial-cluster-state=new",
        // A member healed from a partition must not force an election with its higher term (3.5's default).
        "--pre-vote=true",
      ]
    )
    etcd[name] = try ManagedProcess(tool, arguments: arguments, logPath: logPath(name))
  }

  func waitEtcdHealthy(_ name: String, timeout: Duration = .seconds(30)) async throws {
    try await retrying(timeout: timeout, every: .milliseconds(200)) {
      guard etcd[name]?.isRunning == true else { throw TestSupportError("\(name) exited: \(logTail(name))") }
      let (status, body) = try await HTTPLoadClient.get(
        "http://\(lab.host(name).address):2379/health", timeout: .seconds(2))
      guard status == 200, body.contains("true") else { throw TestSupportError("\(name) not healthy: \(body)") }
    }
  }

  func etcdProcess(_ name: String) -> ManagedProcess? { etcd[name] }

  // MARK: - Controllers and HAProxy

  func stateDirectory(_ lb: String) -> String { directory.path("\(lb)-state") }

  /// The HAProxy executable `lb`'s controller runs: a link of its own to the release under test, which a
  /// scenario can point at another release, as a package upgrade replaces the binary under a running
  /// node.
  func haproxyLink(_ lb: String) -> String { directory.path("\(lb)-bin/haproxy") }

  /// Points `lb`'s HAProxy link at `executable`; HAProxy takes it at its next reload (its master
  /// re-executes the binary) or start.
  func linkHAProxy(_ lb: String, to executable: String) throws {
    let link = haproxyLink(lb)
    try FileManager.default.createDirectory(
      atPath: (link as NSString).deletingLastPathComponent, withIntermediateDirectories: true)
    let staged = link + ".new"
    try? FileManager.default.removeItem(atPath: staged)
    try FileManager.default.createSymbolicLink(atPath: staged, withDestinationPath: executable)
    guard rename(staged, link) == 0 else { throw TestSupportError("cannot replace \(link): errno \(errno)") }
  }

  func startController(_ lb: String) throws {
    if (try? FileManager.default.destinationOfSymbolicLink(atPath: haproxyLink(lb))) == nil {
      try linkHAProxy(lb, to: try HAProxyReleases.underTest())
    }
    let address = lab.host(lb).address
    let (tool, arguments) = lab.command(
      on: lab.host(lb),
      switchyardBinary,
      [
        "controller", "--node-id", lb, "--etcd-endpoints", endpoints,
        "--listen", "\(address):\(Self.listenPort)", "--stats", "\(address):8400",
        "--admin", "\(address):\(Self.adminPort)", "--state-dir", stateDirectory(lb), "--drain-timeout", "5",
        "--haproxy", haproxyLink(lb), "--access-log", accessLogPath(lb),
        "--listen-https", "\(address):\(Self.httpsPort)", "--cluster-key", clusterKeyFile,
      ]
    )
    controllers[lb] = try ManagedProcess(tool, arguments: arguments, logPath: logPath(lb))
  }

  /// The access log `lb`'s controller writes (text), kept with the other logs.
  func accessLogPath(_ lb: String) -> String { directory.path("\(lb)-access.log") }

  func controller(_ lb: String) -> ManagedProcess? { controllers[lb] }

  func adminURL(_ lb: String) -> String { "http://\(lab.host(lb).address):\(Self.adminPort)" }

  func url(_ lb: String) -> String { "http://\(lab.host(lb).address):\(Self.listenPort)/" }

  func waitReady(_ lb: String, timeout: Duration = .seconds(30)) async throws {
    try await retrying(timeout: timeout, every: .milliseconds(100)) {
      guard controllers[lb]?.isRunning == true else { throw TestSupportError("\(lb) exited: \(logTail(lb))") }
      let (status, body) = try await HTTPLoadClient.get("\(adminURL(lb))/readyz", timeout: .seconds(2))
      guard status == 200 else { throw TestSupportError("\(lb) not ready: \(body)") }
    }
    if let pid = haproxyPID(lb) { StrayProcessGuard.guardProcess(pid) }
  }

  func haproxyPID(_ lb: String) -> Int32? {
    guard let text = try? String(contentsOfFile: "\(stateDirectory(lb))/haproxy.pid", encoding: .utf8) else {
      return nil
    }
    return Int32(text.trimmingCharacters(in: .whitespacesAndNewlines))
  }

  /// `lb`'s HAProxy Runtime API.
  func runtimeAPI(_ lb: String) -> RuntimeAPI {
    RuntimeAPI(socketPath: "\(stateDirectory(lb))/admin.sock", timeout: .seconds(2), logger: quietLogger)
  }

  /// The servers that take new requests in `lb`'s HAProxy backend `backend` (not draining, not in
  /// maintenance), as `address:port`, from the Runtime API.
  func servingSet(_ lb: String, backend: String = "svc_backend") async throws -> Set<String> {
    let servers = try await runtimeAPI(lb).serversState(backend: backend)
    return Set(servers.filter { !$0.isMaint && !$0.isDrain }.map { "\($0.address ?? "?"):\($0.port)" })
  }

  /// The routes map file `lb`'s controller keeps (the default: `routes.map` beside the admin socket).
  func routesMapPath(_ lb: String) -> String { "\(stateDirectory(lb))/routes.map" }

  /// The routes map as `lb`'s HAProxy holds it now (`show map`), as `key value` lines.
  func routesInHAProxy(_ lb: String) async throws -> Set<String> {
    Set(try await runtimeAPI(lb).showMap(routesMapPath(lb)).map { "\($0.key) \($0.value)" })
  }

  /// The routes map file on `lb`'s disk, as `key value` lines.
  func routesOnDisk(_ lb: String) throws -> Set<String> {
    let text = try String(contentsOfFile: routesMapPath(lb), encoding: .utf8)
    return Set(text.split(separator: "\n").map(String.init))
  }

  /// `lb`'s `/state`.
  func state(_ lb: String) async throws -> NodeSnapshot {
    let (status, body) = try await HTTPLoadClient.get("\(adminURL(lb))/state", timeout: .seconds(2))
    guard status == 200 else { throw TestSupportError("\(lb)'s /state answered \(status)") }
    return try JSONDecoder().decode(NodeSnapshot.self, from: Data(body.utf8))
  }

  /// The etcd member listening at `endpoint` (`address:port`, as `/state` names the watch's member).
  func etcdMember(at endpoint: String) -> String? {
    Self.etcdNames.first { endpoint.hasPrefix("\(lab.host($0).address):") }
  }

  /// The nodes whose serving set holds `address` (a node that does not answer counts as not serving it).
  func nodes(serving address: String) async -> Set<String> {
    var serving: Set<String> = []
    for lb in Self.lbNames where (try? await servingSet(lb))?.contains(address) == true { serving.insert(lb) }
    return serving
  }

  /// A sum of one metric's samples on `lb`'s `/metrics`.
  func metric(_ lb: String, _ name: String) async throws -> Double {
    let (_, body) = try await HTTPLoadClient.get("\(adminURL(lb))/metrics", timeout: .seconds(2))
    var sum = 0.0
    for line in body.split(separator: "\n") where line.hasPrefix(name) {
      if let value = line.split(separator: " ").last.flatMap({ Double($0) }) { sum += value }
    }
    return sum
  }

  // MARK: - Backends

  /// Starts `switchyard backend` with instance id `id` of `service` on `host` (default: the host of the
  /// same name), known to the test as `name` (default: `id`; a second process with the same id needs another).
  func startBackend(
    _ id: String, on host: String? = nil, port: Int = 8080, as name: String? = nil, service: String = "backend"
  ) throws {
    let host = lab.host(host ?? id)
    let (tool, arguments) = lab.command(
      on: host,
      switchyardBinary,
      [
        "backend", "--id", id, "--service", service, "--listen", "\(host.address):\(port)", "--etcd-endpoints",
        endpoints,
      ]
    )
    let name = name ?? id
    backends[name] = try ManagedProcess(tool, arguments: arguments, logPath: logPath(name))
  }

  func backend(_ id: String) -> ManagedProcess? { backends[id] }

  /// Stops backend `id` (a name given to ``startBackend(_:on:port:as:)``) with SIGTERM (it drains and
  /// deregisters) and waits for it.
  func stopBackend(_ id: String) async throws {
    guard let process = backends[id] else { return }
    process.signal(SIGTERM)
    guard await process.waitForExit(timeout: .seconds(20)) == 0 else {
      throw TestSupportError("backend \(id) did not exit cleanly: \(process.exitStatus.map { "\($0)" } ?? "running")")
    }
  }

  // MARK: - What etcd says

  /// The registrations of `service` that take traffic (state up), as `id → address:port`; entries that
  /// do not parse are left out, as the controller leaves them out.
  func registrations(_ client: EtcdClient, service: String = "backend") async throws -> [String: String] {
    let result = try await client.getPaginated(.prefix("/services/\(service)/"), pageSize: 500)
    var found: [String: String] = [:]
    for kv in result.kvs {
      guard let key = try? RegistrationKey(parsing: kv.keyString), let value = try? Registration.parse(kv.value),
        value.state == .up
      else { continue }
      found[key.instance.rawValue] = value.hostPort
    }
    return found
  }

  /// Waits until every LB node's serving set equals etcd's registrations; returns the time each took, or
  /// nil for a node that did not get there within `timeout`.
  func convergence(_ client: EtcdClient, nodes: [String] = lbNames, timeout: Duration) async -> [String: Duration?] {
    await timeUntil(nodes: nodes, timeout: timeout, every: .milliseconds(50)) { lb, expected in
      guard let expected, let serving = try? await servingSet(lb) else { return false }
      return serving == expected
    } refresh: {
      (try? await registrations(client)).map { Set($0.values) }
    }
  }

  /// Waits until `id` is served by each of `nodes` (its address in the serving set); returns the time each
  /// took, nil for a node that did not within `timeout`.
  func timeUntilServed(
    _ id: String, address: String, by nodes: [String] = lbNames, backend: String = "svc_backend", timeout: Duration
  ) async -> [String: Duration?] {
    await timeUntil(nodes: nodes, timeout: timeout, every: .milliseconds(25)) { lb, _ in
      (try? await servingSet(lb, backend: backend))?.contains(address) == true
    } refresh: {
      nil
    }
  }

  /// Waits until `address` is out of each node's serving set (draining, in maintenance or gone); returns
  /// the time each took, nil for a node that did not within `timeout`.
  func timeUntilOutOfRotation(
    _ address: String, backend: String = "svc_backend", timeout: Duration
  ) async -> [String: Duration?] {
    await timeUntil(nodes: Self.lbNames, timeout: timeout, every: .milliseconds(25)) { lb, _ in
      (try? await servingSet(lb, backend: backend)).map { !$0.contains(address) } ?? false
    } refresh: {
      nil
    }
  }

  /// Polls each node until `reached` holds for it, with `refresh` read once per round; returns the time
  /// each node took from the start, nil for a node that did not get there within `timeout`.
  func timeUntil(
    nodes: [String],
    timeout: Duration,
    every interval: Duration,
    _ reached: (String, Set<String>?) async -> Bool,
    refresh: () async -> Set<String>?
  ) async -> [String: Duration?] {
    let clock = ContinuousClock()
    let start = clock.now
    var times: [String: Duration?] = [:]
    while true {
      let expected = await refresh()
      for lb in nodes where times[lb] == nil {
        if await reached(lb, expected) { times[lb] = clock.now - start }
      }
      if times.count == nodes.count || clock.now - start > timeout { break }
      try? await Task.sleep(for: interval)
    }
    for lb in nodes where times[lb] == nil { times[lb] = .some(nil) }
    return times
  }

  // MARK: - Shutdown

  /// Stops every process (backends, controllers with their HAProxy, etcd), then the lab.
  func shutdown() async {
    for process in backends.values { process.kill() }
    for (lb, process) in controllers {
      await process.terminate(timeout: .seconds(10))
      if let pid = haproxyPID(lb), StrayProcessGuard.isAlive(pid), isOurHAProxy(pid, lb) {
        await StrayProcessGuard.killAndWait(pid)
      }
    }
    for process in etcd.values {
      process.signal(SIGCONT)
      process.kill()
    }
    await lab.shutdown()
    // HAProxy's own output (its ALERT lines), kept beside the others.
    for lb in Self.lbNames {
      try? FileManager.default.copyItem(
        atPath: "\(stateDirectory(lb))/haproxy.log", toPath: directory.path("\(lb)-haproxy.log"))
    }
    directory.keepLogs(in: "SWITCHYARD_FAULT_LOGS")
    directory.remove()
  }

  private func isOurHAProxy(_ pid: Int32, _ lb: String) -> Bool {
    let cmdline = (try? String(contentsOfFile: "/proc/\(pid)/cmdline", encoding: .utf8)) ?? ""
    return cmdline.contains("haproxy") && cmdline.contains(stateDirectory(lb))
  }
}
