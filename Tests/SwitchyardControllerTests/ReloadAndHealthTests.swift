import EtcdClient
import Foundation
import HAProxyKit
import SwitchyardModel
import SwitchyardTestSupport
import Synchronization
import Testing

/// Structural changes reload seamlessly; registered states and dead servers are handled as HAProxy users expect.
@Suite(.serialized) struct ReloadAndHealthTests {
  @Test func structuralChangesReloadWithoutRefusingAConnectionOrLeavingAProcess() async throws {
    try await withNodes { _, nodes, etcd in
      let node = nodes[0]
      let server = try await HTTPTestServer.start(name: "s1")
      try await etcd.register("s1", port: server.port)
      try await node.waitServing(["s1"])

      // New connections all through the reloads (one request per connection).
      let tally = Tally()
      let clients = Task {
        await withTaskGroup(of: Void.self) { group in
          for _ in 0..<4 {
            group.addTask {
              while !tally.stopped.load(ordering: .relaxed) {
                do {
                  let (status, _) = try await node.get()
                  if status == 200 {
                    tally.successes.add(1, ordering: .relaxed)
                  } else {
                    tally.failures.withLock { $0.append("status \(status)") }
                  }
                } catch {
                  tally.failures.withLock { $0.append("\(error)") }
                }
              }
            }
          }
        }
      }
      // Each new check path changes the backend's structure: one reload each.
      for index in 1...5 {
        let value = try Registration(
          address: Address(validating: "127.0.0.1"),
          port: server.port,
          checkPath: "/check-\(index)"
        )
        try await etcd.put("/services/backend/s1", value: value.encoded())
        try await retrying(timeout: .seconds(10)) {
          guard try await node.showProc().reloads == index else { throw TestSupportError("no reload yet") }
        }
        try await Task.sleep(for: .milliseconds(300))
      }
      tally.stopped.store(true, ordering: .relaxed)
      await clients.value

      let failures = tally.failures.withLock { $0 }
      #expect(failures.isEmpty, "\(failures.count) failed: \(failures.prefix(5))")
      #expect(tally.successes.load(ordering: .relaxed) > 100)
      let processes = try await node.showProc()
      #expect(processes.failedReloads == 0)
      #expect(try await node.metric("switchyard_haproxy_reloads_total{reason=\"structure\"}") == 5)
      let config = try String(contentsOfFile: "\(node.stateDirectory)/haproxy.cfg", encoding: .utf8)
      #expect(config.contains("option httpchk GET /check-5"))
      // Old workers are gone once their connections are done; nothing is left as a zombie.
      try await retrying(timeout: .seconds(10)) {
        let processes = try await node.showProc()
        guard processes.oldWorkers.isEmpty else { throw TestSupportError("old workers: \(processes.oldWorkers)") }
        let running = haproxyProcesses(for: node)
        guard running == Set([processes.masterPID] + processes.workers.map(\.pid)) else {
          throw TestSupportError("haproxy processes \(running) vs \(processes)")
        }
      }
      #expect(zombies(under: try #require(node.haproxyPID)).isEmpty)
      await server.close()
    }
  }

  @Test func aReloadForOneServiceHoldsBackNoRuntimeChangeToAnother() async throws {
    try await withNodes(extraArguments: ["--service", "backend", "--service", "api"]) { _, nodes, etcd in
      let node = nodes[0]
      let servers = try await ["a1", "a2", "b1"].asyncMap { try await HTTPTestServer.start(name: $0) }
      try await etcd.register("a1", port: servers[0].port)
      try await etcd.register("b1", port: servers[2].port, service: "api")
      try await node.waitServing(["a1"])
      try await retrying(timeout: .seconds(10)) {
        guard try await node.servers(backend: "svc_api")["b1"] == "ready" else { throw TestSupportError("no b1") }
      }
      #expect(try await node.showProc().reloads == 0)
      let commandsBefore = try #require(try await node.metric("switchyard_runtime_commands_total"))

      // One revision, so one pass sees both: a new server for `backend`, a new check path (a reload) for `api`.
      let a2 = try Registration(address: Address(validating: "127.0.0.1"), port: servers[1].port)
      let b1 = try Registration(address: Address(validating: "127.0.0.1"), port: servers[2].port, checkPath: "/healthz")
      let revision = try await etcd.txn(
        Txn(success: [.put("/services/backend/a2", a2.encoded()), .put("/services/api/b1", b1.encoded())])
      ).header.revision
      try await retrying(timeout: .seconds(10)) {
        guard try await node.state().appliedRevision >= revision else { throw TestSupportError("not applied yet") }
      }
      try await node.waitServing(["a1", "a2"])
      #expect(try await node.showProc().reloads == 1)
      // `a2` was added through the Runtime API before the reload (add, enable health, ready); the old
      // planner sent nothing and left `a2` to the reload.
      let commands = try #require(try await node.metric("switchyard_runtime_commands_total")) - commandsBefore
      #expect(commands == 3, "runtime commands in the reloading pass: \(commands)")
      #expect(node.log().contains("add server svc_backend/a2"))
      let config = try String(contentsOfFile: "\(node.stateDirectory)/haproxy.cfg", encoding: .utf8)
      #expect(config.contains("server a2 127.0.0.1:\(servers[1].port)"))
      #expect(config.contains("option httpchk GET /healthz"))
      for server in servers { await server.close() }
    }
  }

  @Test func instanceRegisteredAsDrainingGetsNoNewTraffic() async throws {
    try await withNodes { _, nodes, etcd in
      let node = nodes[0]
      let serving = try await HTTPTestServer.start(name: "d1")
      let draining = try await HTTPTestServer.start(name: "d2")
      try await etcd.register("d1", port: serving.port)
      try await etcd.register("d2", port: draining.port)
      try await node.waitServing(["d1", "d2"])
      try await etcd.register("d2", port: draining.port, state: .drain)
      try await node.waitServing(["d1"])
      #expect(try await node.servers()["d2"] == "drain")
      try await etcd.register("d2", port: draining.port, state: .maint)
      try await retrying(timeout: .seconds(5)) {
        guard try await node.servers()["d2"] == "maint" else { throw TestSupportError("not in maint") }
      }
      try await etcd.register("d2", port: draining.port, weight: 50)
      try await node.waitServing(["d1", "d2"])
      #expect(try await node.showProc().reloads == 0)
      await serving.close()
      await draining.close()
    }
  }

  @Test func aDeadServerStillRegisteredCostsNoRequest() async throws {
    try await withNodes { _, nodes, etcd in
      let node = nodes[0]
      let alive = try await HTTPTestServer.start(name: "alive")
      let dying = try await HTTPTestServer.start(name: "dying")
      try await etcd.register("alive", port: alive.port)
      try await etcd.register("dying", port: dying.port)
      try await node.waitServing(["alive", "dying"])
      let load = try HTTPLoadClient.start(url: node.url, connections: 4)
      try await Task.sleep(for: .milliseconds(300))
      // Crashes without deregistering: connections to it are refused, and retried on the other server.
      await dying.close()
      try await Task.sleep(for: .seconds(8))
      let report = await load.stop()
      #expect(report.failures == 0, "\(report)")
      let state = try await node.state()
      #expect(state.services[0].servers.first { $0.name == "dying" }?.health == "down")
      await alive.close()
    }
  }

  @Test func aServerWithoutARunningHealthCheckIsRepaired() async throws {
    try await withNodes { _, nodes, etcd in
      let node = nodes[0]
      let server = try await HTTPTestServer.start(name: "h1")
      try await etcd.register("h1", port: server.port)
      try await node.waitServing(["h1"])
      // As if the controller had died between `add server` and `enable health`.
      let api = RuntimeAPI(socketPath: "\(node.stateDirectory)/admin.sock", logger: quietLogger)
      _ = try await api.send("disable health svc_backend/h1")
      let disabled = try await api.serversState(backend: "svc_backend").first { $0.server == "h1" }
      #expect(disabled?.isCheckEnabled == false, "HAProxy should report the check as not running")
      try await retrying(timeout: .seconds(10)) {
        let state = try await api.serversState(backend: "svc_backend").first { $0.server == "h1" }
        guard state?.isCheckEnabled == true else { throw TestSupportError("the check still does not run") }
      }
      #expect(try await node.showProc().reloads == 0)
      await server.close()
    }
  }

  @Test func entriesWithoutACheckPathNeverMoveTheServicesPath() async throws {
    try await withNodes { _, nodes, etcd in
      let node = nodes[0]
      let servers = try await (1...4).asyncMap { try await HTTPTestServer.start(name: "p\($0)") }
      try await etcd.register("p1", port: servers[0].port, checkPath: "/healthz")
      try await node.waitServing(["p1"])
      // The first named path is the one structural change.
      #expect(try await node.showProc().reloads == 1)
      for server in servers.dropFirst() { try await etcd.register(server.name, port: server.port) }
      try await node.waitServing(["p1", "p2", "p3", "p4"])
      try await etcd.deregister("p1")
      try await node.waitServing(["p2", "p3", "p4"])
      for server in servers.dropFirst() { try await etcd.register(server.name, port: server.port, weight: 50) }
      try await Task.sleep(for: .milliseconds(500))
      #expect(try await node.showProc().reloads == 1)
      #expect(try await node.state().services[0].checkPath == "/healthz")
      for server in servers { await server.close() }
    }
  }

  @Test func hostNameRegistrationsGoThroughAReload() async throws {
    try await withNodes { _, nodes, etcd in
      let node = nodes[0]
      let byAddress = try await HTTPTestServer.start(name: "ip")
      let byName = try await HTTPTestServer.start(name: "named")
      try await etcd.register("ip", port: byAddress.port)
      try await node.waitServing(["ip"])
      let value = try Registration(address: Address(validating: "localhost"), port: byName.port)
      try await etcd.put("/services/backend/named", value: value.encoded())
      try await node.waitServing(["ip", "named"])
      // HAProxy resolves host names only when it loads its configuration.
      #expect(try await node.showProc().reloads == 1)
      // A host name that does not resolve leaves that server without an address, and the rest serving.
      let unresolvable = try Registration(address: Address(validating: "no-such-host.invalid"), port: 9)
      try await etcd.put("/services/backend/ghost", value: unresolvable.encoded())
      try await retrying(timeout: .seconds(10)) {
        guard try await node.showProc().reloads == 2 else { throw TestSupportError("no reload yet") }
      }
      try await node.waitServing(["ip", "named"])
      // The reload counter goes up when the reload returns; /state follows with the pass's next round.
      var state = try await node.state()
      try? await retrying(timeout: .seconds(5)) {
        state = try await node.state()
        guard state.services[0].servers.count == 3 else { throw TestSupportError("/state not published yet") }
      }
      #expect(state.lastError == nil)
      #expect(state.services[0].servers.map(\.name) == ["ghost", "ip", "named"])
      // Weight and state of a host-name server change through the Runtime API: no reload.
      let lighter = try Registration(address: Address(validating: "localhost"), port: byName.port, weight: 7)
      try await etcd.put("/services/backend/named", value: lighter.encoded())
      try await retrying(timeout: .seconds(10)) {
        guard try await node.runtimeWeight(of: "named") == 7 else { throw TestSupportError("weight not applied") }
      }
      let drained = try Registration(
        address: Address(validating: "localhost"), port: byName.port, weight: 7, state: .drain)
      try await etcd.put("/services/backend/named", value: drained.encoded())
      try await retrying(timeout: .seconds(10)) {
        guard try await node.servers()["named"] == "drain" else { throw TestSupportError("drain not applied") }
      }
      #expect(try await node.showProc().reloads == 2)
      await byAddress.close()
      await byName.close()
    }
  }

  @Test func jsonLogs() async throws {
    try await withNodes(extraArguments: ["--log-format", "json"]) { _, nodes, _ in
      let lines = nodes[0].log().split(separator: "\n").filter { $0.hasPrefix("{") }
      #expect(lines.count >= 2)
      for line in lines {
        let object = try JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any]
        #expect(object?["message"] is String && object?["level"] is String && object?["time"] is String)
      }
    }
  }
}

/// Zombie children of `pid`.
func zombies(under pid: Int32) -> [Int32] {
  let entries = (try? FileManager.default.contentsOfDirectory(atPath: "/proc")) ?? []
  return entries.compactMap { entry -> Int32? in
    guard let child = Int32(entry),
      let stat = try? String(contentsOfFile: "/proc/\(entry)/stat", encoding: .utf8),
      let close = stat.lastIndex(of: ")")
    else { return nil }
    let fields = stat[stat.index(after: close)...].split(separator: " ")
    guard fields.count > 2, fields[0] == "Z", Int32(fields[1]) == pid else { return nil }
    return child
  }
}

/// Counts of one-shot requests made by concurrent clients.
final class Tally: Sendable {
  let successes = Atomic(0)
  let failures = Mutex<[String]>([])
  let stopped = Atomic(false)
}
