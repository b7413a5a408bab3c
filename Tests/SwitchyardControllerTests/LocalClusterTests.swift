import EtcdClient
import Foundation
import SwitchyardController
import SwitchyardHTTP
import SwitchyardLab
import SwitchyardLocal
import SwitchyardProcess
import SwitchyardTestSupport
import Testing

/// The local-cluster commands end to end: `up`, `scale`, `status --json`, `down`, as a user runs them; the
/// second sample service, `web`, reached through its routes on every LB node.
@Suite(.serialized) struct LocalClusterTests {
  @Test func upScaleStatusDown() async throws {
    let directory = try TemporaryDirectory(prefix: "local")
    let home = "\(directory.path)/home"
    let (ports, portFlags, lbURLs) = try clusterPorts()
    defer { directory.remove() }
    var reported: ClusterReport?
    do {
      let up = try await switchyard(
        ["up", "--https", "--backends", "2", "--home", home] + portFlags, timeout: .seconds(180))
      #expect(up.contains("backend-2 is healthy"), "\(up)")
      #expect(up.contains("web-1 is healthy"), "\(up)")
      #expect(up.contains("curl http://127.0.0.1:\(ports[6])"))
      // How to reach `web`, through each of its routes.
      #expect(up.contains("curl http://127.0.0.1:\(ports[6])/web/"), "\(up)")
      #expect(up.contains("curl -H 'Host: web.localhost' http://127.0.0.1:\(ports[6])/"), "\(up)")
      // Each node's dashboard, on its admin port.
      #expect(
        up.contains("lb1  http://127.0.0.1:\(ports[10])/") && up.contains("lb2  http://127.0.0.1:\(ports[11])/"),
        "\(up)")
      // `/` round-robins the backends alone; `/web/` and the host web.localhost reach web, on both nodes.
      for url in lbURLs {
        try await expectServing(url, ["backend-1", "backend-2"])
        try await expectWebRoutes(url)
      }
      try await expectHTTPS(home: home, ports: ports[12..<14], up: up)
      // A second `up` reports the running cluster and starts nothing.
      let again = try await switchyard(["up", "--backends", "2", "--home", home] + portFlags)
      #expect(again.contains("already up"))

      let clients = try lbURLs.map { try HTTPLoadClient.start(url: $0, connections: 2) }
      _ = try await switchyard(["scale", "backend=4", "--home", home], timeout: .seconds(120))
      for url in lbURLs { try await expectServing(url, ["backend-1", "backend-2", "backend-3", "backend-4"]) }
      _ = try await switchyard(["scale", "backend=1", "--home", home], timeout: .seconds(120))
      for url in lbURLs { try await expectServing(url, ["backend-1"]) }
      for client in clients {
        let report = await client.stop()
        #expect(report.failures == 0, "a client polling through the scaling saw failures: \(report)")
        #expect(report.successes > 100)
      }

      let json = try await switchyard(["status", "--json", "--home", home])
      let report = try JSONDecoder().decode(ClusterReport.self, from: Data(json.utf8))
      reported = report
      #expect(report.parts.map(\.name) == ["etcd1", "etcd2", "etcd3", "lb1", "lb2", "backend-1", "web-1"])
      #expect(report.parts.last?.kind == "web")
      // An LB node's address names its HTTPS listener too.
      let lb1Address = report.parts.first { $0.name == "lb1" }?.address
      #expect(lb1Address == "http://127.0.0.1:\(ports[6]) https://127.0.0.1:\(ports[12])")
      #expect(report.parts.allSatisfy { $0.health == "healthy" && $0.pid != nil })
      var configuration = try EtcdConfiguration(endpoints: "127.0.0.1:\(ports[1])")
      configuration.requestTimeout = .seconds(5)
      let inEtcd = try await withEtcdClient(configuration: configuration, logger: quietLogger) { etcd in
        try await etcd.get(.prefix("/services/")).kvs.map { String(decoding: $0.key, as: UTF8.self) }
      }
      #expect(report.registrations.map(\.key) == inEtcd)
      #expect(inEtcd == ["/services/backend/backend-1", "/services/web/web-1"])
      for node in report.nodes {
        let registered = Dictionary(
          uniqueKeysWithValues: node.state.services.map { ($0.name, $0.servers.filter(\.registered).map(\.name)) })
        #expect(registered == ["backend": ["backend-1"], "web": ["web-1"]], "\(node.name)")
        #expect(node.state.routes?.map(\.name) == ["web", "web-host"], "\(node.name)")
      }
      #expect(report.nodes.map(\.name) == ["lb1", "lb2"])
      // The table names the HAProxy release each node runs.
      let table = try await switchyard(["status", "--home", home])
      for node in report.nodes {
        let version = try #require(node.state.haproxyVersion, "\(node.name) reports no HAProxy version")
        #expect(table.contains("HAProxy \(version) pid"), "\(table)")
      }

      // A fault by hand: one etcd member stopped and started again; the LB nodes keep serving.
      let stopped = try await switchyard(["stop", "etcd2", "--home", home])
      #expect(stopped.contains("etcd2 stopped"))
      let during = try JSONDecoder().decode(
        ClusterReport.self,
        from: Data(try await switchyard(["status", "--json", "--home", home]).utf8)
      )
      #expect(during.parts.first { $0.name == "etcd2" }?.health == "stopped")
      for url in lbURLs { try await expectServing(url, ["backend-1"]) }
      _ = try await switchyard(["start", "etcd2", "--home", home], timeout: .seconds(60))

      // web stopped: its routes answer 503 (a service with no instance), `/` still serves the backends;
      // started again, it is routed to again.
      let webStopped = try await switchyard(["stop", "web-1", "--home", home], timeout: .seconds(60))
      #expect(webStopped.contains("web-1 stopped"), "\(webStopped)")
      for url in lbURLs {
        try await retrying(timeout: .seconds(15)) {
          let (status, _) = try await HTTPLoadClient.get(url + "web/")
          guard status == 503 else { throw TestSupportError("\(url)web/ answered \(status), not 503") }
        }
        try await expectServing(url, ["backend-1"])
      }
      _ = try await switchyard(["start", "web-1", "--home", home], timeout: .seconds(60))
      for url in lbURLs { try await expectWebRoutes(url) }
      reported = try JSONDecoder().decode(
        ClusterReport.self,
        from: Data(try await switchyard(["status", "--json", "--home", home]).utf8)
      )
      #expect(reported?.parts.allSatisfy { $0.health == "healthy" } == true)
      let logs = try await switchyard(["logs", "lb1", "--home", home])
      #expect(logs.contains("HAProxy started"))
      // lb1's access log: the requests above, web's through its route among them.
      let access = try await switchyard(["logs", "lb1", "--access", "--home", home])
      #expect(access.contains("node=lb1 mode=http"), "\(access.suffix(600))")
      #expect(access.contains("service=web") && access.contains("path=/web/"), "\(access.suffix(600))")
    } catch {
      _ = try? await switchyard(["down", "--home", home], timeout: .seconds(120))
      throw error
    }

    let down = try await switchyard(["down", "--home", home], timeout: .seconds(120))
    #expect(down.contains("every port is free"), "\(down)")
    // No process left: not the parts, not an HAProxy.
    for part in reported?.parts ?? [] {
      if let pid = part.pid { #expect(!runs(pid), "\(part.name) (pid \(pid)) still runs") }
    }
    for node in reported?.nodes ?? [] {
      if let pid = node.state.haproxyPID { #expect(!runs(pid), "HAProxy of \(node.name) still runs") }
    }
    for port in ports { #expect(isFree(port), "port \(port) is still in use") }
    let webPort = reported?.parts.first { $0.name == "web-1" }?.address.split(separator: ":").last.flatMap { Int($0) }
    #expect(webPort.map(isFree) == true, "web-1's port \(String(describing: webPort)) is still in use")
  }

  /// Issue 10, item 3: a part that crashed is found and taken in hand again by the commands. After a full
  /// etcd outage, members start one by one or several at once although one alone has no quorum. lb1's controller
  /// is killed with SIGKILL and its HAProxy keeps serving: `scale` fails naming lb1 instead of reporting
  /// success, and `start lb1` adopts that HAProxy, which then follows. After another crash, `stop lb1` and
  /// `down --purge` stop the HAProxy left behind.
  @Test func commandsKeepTheAdoptionPromise() async throws {
    let directory = try TemporaryDirectory(prefix: "local")
    let home = "\(directory.path)/home"
    let (ports, portFlags, lbURLs) = try clusterPorts()
    var haproxies: [Int32] = []
    defer { directory.remove() }
    do {
      _ = try await switchyard(["up", "--backends", "3", "--home", home] + portFlags, timeout: .seconds(180))
      let clients = try lbURLs.map { try HTTPLoadClient.start(url: $0, connections: 2) }

      // A full etcd outage. One member cannot have a quorum: `start etcd1` returns once it listens, without
      // holding the cluster's lock for a health check it cannot pass; `start etcd2 etcd3` brings etcd back.
      try await killParts(["etcd1", "etcd2", "etcd3"], home: home)
      let alone = ContinuousClock.now
      let first = try await switchyard(["start", "etcd1", "--home", home], timeout: .seconds(30))
      #expect(first.contains("no quorum"), "\(first)")
      #expect(alone.duration(to: .now) < .seconds(15))
      _ = try await switchyard(["start", "etcd2", "etcd3", "--home", home], timeout: .seconds(60))
      try await retrying(timeout: .seconds(20)) {
        let health = try await clusterStatus(home: home).parts.map { "\($0.name) \($0.health)" }
        let unhealthy = health.filter { !$0.hasSuffix(" healthy") }
        guard unhealthy.isEmpty else { throw TestSupportError("not healthy: \(unhealthy)") }
      }

      // lb1's controller dies; its HAProxy serves on, and `start lb1` has its new controller adopt it.
      let haproxy = try #require(haproxyPID(home: home, node: "lb1"))
      haproxies.append(haproxy)
      StrayProcessGuard.guardProcess(haproxy)
      try await killPart("lb1", home: home)
      // `status` says that lb1 still serves, not just that it stopped.
      let lb1Health = try await clusterStatus(home: home).parts.first { $0.name == "lb1" }?.health
      #expect(lb1Health == "controller stopped; HAProxy \(haproxy) serves its last state")
      // `scale` waits for lb2 and fails naming lb1, which cannot follow without its controller.
      let scaled = try await switchyardStatus(["scale", "backend=4", "--home", home], timeout: .seconds(120))
      #expect(scaled.status != 0, "scale reported success while lb1 could not follow:\n\(scaled.output)")
      #expect(scaled.output.contains("lb1 does not follow"), "\(scaled.output)")
      let four: Set = ["backend-1", "backend-2", "backend-3", "backend-4"]
      try await expectServing(lbURLs[1], four)
      try await expectServing(lbURLs[0], ["backend-1", "backend-2", "backend-3"])

      let restarted = try await switchyard(["start", "lb1", "--home", home], timeout: .seconds(60))
      #expect(restarted.contains("adopted HAProxy (pid \(haproxy))"), "\(restarted)")
      #expect(haproxyPID(home: home, node: "lb1") == haproxy)
      let lb1 = try await nodeState(home: home, "lb1")
      #expect(lb1.haproxyAdopted && lb1.haproxyPID == haproxy)
      for url in lbURLs { try await expectServing(url, four) }

      for client in clients {
        let report = await client.stop()
        #expect(report.failures == 0, "a client of \(client.url) saw failures: \(report)")
        #expect(report.successes > 100)
      }

      // `stop lb1` after its controller crashed stops the HAProxy it left.
      try await killPart("lb1", home: home)
      let stopped = try await switchyard(["stop", "lb1", "--home", home], timeout: .seconds(60))
      #expect(!runs(haproxy), "lb1's HAProxy still runs after `stop lb1`:\n\(stopped)")
      for port in [ports[6], ports[8], ports[10]] { #expect(isFree(port), "port \(port) of lb1 is still in use") }

      // `down --purge` right after a crash stops the HAProxy left behind before it removes anything.
      _ = try await switchyard(["start", "lb1", "--home", home], timeout: .seconds(60))
      let second = try #require(haproxyPID(home: home, node: "lb1"))
      haproxies.append(second)
      StrayProcessGuard.guardProcess(second)
      try await killPart("lb1", home: home)
      let down = try await switchyard(["down", "--purge", "--home", home], timeout: .seconds(120))
      #expect(down.contains("every port is free"), "\(down)")
      #expect(!runs(second), "lb1's HAProxy still runs after `down --purge`")
      #expect(!FileManager.default.fileExists(atPath: home))
      for port in ports { #expect(isFree(port), "port \(port) is still in use") }
    } catch {
      await tearDown(home: home, haproxies: haproxies)
      throw error
    }
    await tearDown(home: home, haproxies: haproxies)
  }

  @Test func aPortInUseIsNamed() async throws {
    let directory = try TemporaryDirectory(prefix: "local")
    defer { directory.remove() }
    let server = try await HTTPTestServer.start(name: "squatter")
    defer { Task { await server.close() } }
    let ports = try FreePort.allocate(5)
    let arguments = [
      "up", "--home", "\(directory.path)/home", "--etcd-members", "1", "--lb-nodes", "1", "--backends", "0",
      "--etcd-client-ports", "\(ports[0])", "--etcd-peer-ports", "\(ports[1])", "--lb-ports", "\(server.port)",
      "--stats-ports", "\(ports[3])", "--admin-ports", "\(ports[4])",
    ]
    let process = try ManagedProcess(switchyardBinary, arguments: arguments, logPath: directory.path("up.log"))
    let status = await process.waitForExit(timeout: .seconds(30))
    #expect(status != nil && status != 0)
    let output = process.logContents()
    #expect(output.contains("port \(server.port) is in use by pid \(getpid())"), "\(output)")
  }
}

func list(_ ports: ArraySlice<Int>) -> String { ports.map(String.init).joined(separator: ",") }

/// Free ports for a cluster of 3 etcd members and 2 LB nodes (etcd client 0–2, peer 3–5, LB 6–7, stats
/// 8–9, admin 10–11, HTTPS 12–13, used with `--https` or `--secure`), the `up` flags that use them, and the
/// LB nodes' URLs.
func clusterPorts() throws -> (ports: [Int], flags: [String], lbURLs: [String]) {
  let ports = try FreePort.allocate(14)
  let flags = [
    "--etcd-client-ports", list(ports[0..<3]), "--etcd-peer-ports", list(ports[3..<6]),
    "--lb-ports", list(ports[6..<8]), "--stats-ports", list(ports[8..<10]), "--admin-ports", list(ports[10..<12]),
    "--https-ports", list(ports[12..<14]),
  ]
  return (ports, flags, ports[6..<8].map { "http://127.0.0.1:\($0)/" })
}

/// Runs `switchyard` to completion; returns its output, or throws with it when the exit status is not 0.
func switchyard(
  _ arguments: [String],
  timeout: Duration = .seconds(60),
  environment: [String: String]? = nil
) async throws -> String {
  let (status, output) = try await switchyardStatus(arguments, timeout: timeout, environment: environment)
  guard status == 0 else { throw TestSupportError("switchyard \(arguments.prefix(2)) exited \(status):\n\(output)") }
  return output
}

/// Runs `switchyard` to completion; returns its exit status and output, or throws when it does not finish.
func switchyardStatus(
  _ arguments: [String],
  timeout: Duration = .seconds(60),
  environment: [String: String]? = nil
) async throws -> (status: Int32, output: String) {
  let log = FileManager.default.temporaryDirectory.appendingPathComponent("switchyard-\(UUID().uuidString).log").path
  defer { try? FileManager.default.removeItem(atPath: log) }
  let process = try ManagedProcess(switchyardBinary, arguments: arguments, environment: environment, logPath: log)
  guard let status = await process.waitForExit(timeout: timeout) else {
    process.kill()
    throw TestSupportError(
      "switchyard \(arguments.prefix(2)) did not finish within \(timeout):\n\(process.logContents())")
  }
  return (status, process.logContents())
}

/// Both LB nodes of the cluster in `home` serve HTTPS on `ports` with the certificate `local` from etcd,
/// which the local CA verifies (for 127.0.0.1, as curl would, and for the SNI name localhost), and route to a
/// backend; `up` said how to reach them; the cluster key is the owner's alone.
func expectHTTPS(home: String, ports: ArraySlice<Int>, up: String) async throws {
  let ca = "\(home)/pki/ca.pem"
  for port in ports {
    #expect(up.contains("curl --cacert \(ca) https://localhost:\(port)/"), "\(up)")
    let (status, body) = try await HTTPCheck.get("https://127.0.0.1:\(port)/", caCertificate: ca)
    #expect(status == 200 && body.hasPrefix("Hello from backend-"), "\(port): \(status) \(body)")
    let response = try await TLSClient.get(port: port, path: "/", serverName: "localhost", trustRootsPEMFile: ca)
    #expect(response.status == 200, "\(port): \(response.status)")
    #expect(response.certificate?.dnsNames == ["localhost"], "\(String(describing: response.certificate))")
  }
  let mode = try FileManager.default.attributesOfItem(atPath: "\(home)/pki/cluster.key")[.posixPermissions] as? Int
  #expect(mode == 0o600)
}

/// Waits until `url` answers from exactly `names`.
func expectServing(_ url: String, _ names: Set<String>) async throws {
  try await retrying(timeout: .seconds(10)) {
    var seen: Set<String> = []
    for _ in 0..<(names.count * 3 + 2) {
      let (status, body) = try await HTTPLoadClient.get(url)
      guard status == 200 else { throw TestSupportError("\(url) answered \(status)") }
      seen.insert(body.replacingOccurrences(of: "Hello from ", with: "").trimmingCharacters(in: .newlines))
    }
    guard seen == names else { throw TestSupportError("\(url) serves \(seen.sorted()), expected \(names.sorted())") }
  }
}

/// Waits until `url` (an LB node) sends `/web/` and `Host: web.localhost` to web-1, which sees the path
/// without the prefix (`/web/healthz` reaches its `/healthz`).
func expectWebRoutes(_ url: String) async throws {
  try await retrying(timeout: .seconds(10)) {
    for (path, host, expected) in [
      ("web/", nil, "Hello from web-1"), ("web", nil, "Hello from web-1"), ("web/healthz", nil, "ok"),
      ("", "web.localhost", "Hello from web-1"), ("", "WEB.localhost:8001", "Hello from web-1"),
    ] {
      let (status, body) = try await HTTPLoadClient.get(url + path, host: host)
      guard status == 200, body.trimmingCharacters(in: .newlines) == expected else {
        throw TestSupportError("\(url)\(path) (Host \(host ?? "-")) answered \(status) \(body), not \(expected)")
      }
    }
  }
}

func runs(_ pid: Int32) -> Bool { ProcFS.isRunning(pid) }

func isFree(_ port: Int) -> Bool { !Loopback.isPortInUse(port) }

/// The HAProxy master's PID from an LB node's PID file.
private func haproxyPID(home: String, node: String) -> Int32? {
  guard let text = try? String(contentsOfFile: "\(home)/\(node)/haproxy.pid", encoding: .utf8) else { return nil }
  return Int32(text.trimmingCharacters(in: .whitespacesAndNewlines))
}

/// `switchyard status --json`.
func clusterStatus(home: String) async throws -> ClusterReport {
  try JSONDecoder().decode(
    ClusterReport.self, from: Data(try await switchyard(["status", "--json", "--home", home]).utf8))
}

/// An LB node's controller `/state`, from `status --json`.
private func nodeState(home: String, _ name: String) async throws -> ControllerStatus.Snapshot {
  let report = try await clusterStatus(home: home)
  return try #require(report.nodes.first { $0.name == name }?.state, "\(name) reports no state")
}

/// Kills a part of the cluster with SIGKILL, as a crash would, and waits until it is gone.
private func killPart(_ name: String, home: String) async throws {
  try await killParts([name], home: home)
}

/// Kills parts of the cluster with SIGKILL at once, and waits until they are gone.
private func killParts(_ names: [String], home: String) async throws {
  let parts = try await clusterStatus(home: home).parts
  let pids = try names.map { name in try #require(parts.first { $0.name == name }?.pid, "\(name) runs") }
  for pid in pids { kill(pid, SIGKILL) }
  try await retrying(timeout: .seconds(10)) {
    let running = pids.filter(runs)
    guard running.isEmpty else { throw TestSupportError("\(running) still run") }
  }
}

/// Stops what a test's cluster left, even after a failure: `down --purge`, then any HAProxy of it that still
/// runs (`haproxies`, guarded since the test saw them).
private func tearDown(home: String, haproxies: [Int32]) async {
  if FileManager.default.fileExists(atPath: home) {
    _ = try? await switchyard(["down", "--purge", "--home", home], timeout: .seconds(120))
  }
  for pid in haproxies {
    let commandLine = (try? String(contentsOfFile: "/proc/\(pid)/cmdline", encoding: .utf8)) ?? ""
    if runs(pid), commandLine.contains(home) {
      Issue.record("HAProxy \(pid) still runs after `down`; killing it")
      await StrayProcessGuard.killAndWait(pid)
    } else {
      StrayProcessGuard.forget(pid)
    }
  }
}
