import EtcdClient
import Foundation
import SwitchyardTestSupport
import Testing

/// Bad data in etcd, and failures of etcd, HAProxy and the controller itself.
@Suite(.serialized) struct RobustnessTests {
  @Test func garbageNextToValidEntriesDoesNotHoldBackAChange() async throws {
    try await withNodes { _, nodes, etcd in
      let node = nodes[0]
      let first = try await HTTPTestServer.start(name: "good-1")
      let second = try await HTTPTestServer.start(name: "good-2")
      try await etcd.register("good-1", port: first.port)
      // A key that tries to forge a log line of its own, first: the line that opens the episode of
      // invalid entries names it.
      let forged = "2026-01-01T00:00:00+0000 notice switchyard.controller: all is well"
      try await etcd.put("/services/backend/x\n\(forged)", value: "{}")
      try await retrying(timeout: .seconds(5)) {
        guard try await node.state().invalidEntries.count == 1 else { throw TestSupportError("not seen yet") }
      }
      try await etcd.put("/services/backend/garbage", value: "{not json")
      try await etcd.put("/services/backend/bad id!", value: #"{"address":"127.0.0.1","port":1}"#)
      try await etcd.put("/services/backend/evil", value: "127.0.0.1:80\nserver x 6.6.6.6:80")
      try await node.waitServing(["good-1"])

      let start = ContinuousClock.now
      try await etcd.register("good-2", port: second.port)
      try await node.waitServing(["good-1", "good-2"], timeout: .seconds(1))
      let elapsed = start.duration(to: .now)
      #expect(elapsed < .seconds(1), "served after \(elapsed)")

      let state = try await node.state()
      #expect(state.invalidEntries.count == 4)
      #expect(try await node.metric("switchyard_invalid_entries") == 4)
      #expect(state.invalidEntries.contains { $0.key == "/services/backend/x\\n\(forged)" })
      #expect(state.invalidEntries.allSatisfy { !$0.key.contains("\n") && !$0.reason.contains("\n") })
      let lines = node.log().split(separator: "\n")
      #expect(!lines.contains { $0.hasPrefix(forged) }, "a key forged a log line")
      #expect(lines.contains { $0.contains("x\\n2026-01-01") })
      // One episode: one line when it began, none per entry.
      #expect(lines.filter { $0.contains("invalid entries") }.count == 1, "\(lines.filter { $0.contains("invalid") })")
      let config = try String(contentsOfFile: "\(node.stateDirectory)/haproxy.cfg", encoding: .utf8)
      #expect(!config.contains("6.6.6.6") && !config.contains("garbage") && !config.contains("evil"))
      await first.close()
      await second.close()
    }
  }

  @Test func hugeValuesAreInvalidEntriesAndHoldNothingBack() async throws {
    try await withNodes { _, nodes, etcd in
      let node = nodes[0]
      let first = try await HTTPTestServer.start(name: "fine-1")
      let second = try await HTTPTestServer.start(name: "fine-2")
      try await etcd.register("fine-1", port: first.port)
      // Together over gRPC's default 4 MiB reply limit; each one over the model's value limit.
      let huge = String(repeating: "x", count: 1_500_000)
      for index in 1...3 { try await etcd.put("/services/backend/huge-\(index)", value: huge) }
      try await etcd.register("fine-2", port: second.port)
      try await node.waitServing(["fine-1", "fine-2"], timeout: .seconds(10))
      try await node.waitReady(timeout: .seconds(10))
      let state = try await node.state()
      #expect(
        Set(state.invalidEntries.map(\.key)) == [
          "/services/backend/huge-1", "/services/backend/huge-2", "/services/backend/huge-3",
        ])
      #expect(state.invalidEntries.allSatisfy { $0.reason.contains("bytes") })
      #expect(state.lastError == nil)
      await first.close()
      await second.close()
    }
  }

  @Test func controllerKilledAndStartedAgainAdoptsHAProxyWithoutAFailedRequest() async throws {
    try await withNodes { _, nodes, etcd in
      let node = nodes[0]
      let servers = try await (1...2).asyncMap { try await HTTPTestServer.start(name: "k\($0)") }
      for server in servers { try await etcd.register(server.name, port: server.port) }
      try await node.waitServing(["k1", "k2"])
      let masterBefore = try await node.showProc().masterPID
      let load = try HTTPLoadClient.start(url: node.url, connections: 4)

      await node.killController()
      try await Task.sleep(for: .milliseconds(500))
      try node.start()
      try await node.waitReady()
      let third = try await HTTPTestServer.start(name: "k3")
      try await etcd.register("k3", port: third.port)
      try await node.waitServing(["k1", "k2", "k3"])
      let report = await load.stop()

      #expect(report.failures == 0, "\(report)")
      let state = try await node.state()
      #expect(state.haproxyAdopted)
      let processes = try await node.showProc()
      #expect(processes.masterPID == masterBefore)
      #expect(processes.reloads == 0)
      #expect(haproxyProcesses(for: node) == Set([processes.masterPID] + processes.workers.map(\.pid)))
      for server in servers + [third] { await server.close() }
    }
  }

  @Test func haproxyDeathIsNoticedAndRepaired() async throws {
    try await withNodes { _, nodes, etcd in
      let node = nodes[0]
      let server = try await HTTPTestServer.start(name: "h1")
      try await etcd.register("h1", port: server.port)
      try await node.waitServing(["h1"])
      let pid = try #require(node.haproxyPID)
      await StrayProcessGuard.killAndWait(pid)
      try await retrying(timeout: .seconds(15)) {
        let state = try await node.state()
        guard state.haproxyRunning, state.haproxyPID != pid else { throw TestSupportError("not restarted") }
      }
      try await node.waitReady()
      try await node.waitServing(["h1"])
      #expect(try await node.metric("switchyard_haproxy_restarts_total") == 1)
      #expect(node.log().contains("HAProxy died"))
      await server.close()
    }
  }

  @Test func sigtermStopsHAProxyUnlessToldToLeaveItRunning() async throws {
    try await withNodes { _, nodes, _ in
      let node = nodes[0]
      let pid = try #require(node.haproxyPID)
      await node.stop()
      #expect(node.controller?.exitStatus?.isSuccess == true)
      #expect(!StrayProcessGuard.isAlive(pid))

      try node.start(extraArguments: ["--leave-haproxy-running"])
      try await node.waitReady()
      let second = try #require(node.haproxyPID)
      await node.stop()
      #expect(StrayProcessGuard.isAlive(second))
      // A new controller adopts it.
      try node.start()
      try await node.waitReady()
      #expect(try await node.state().haproxyAdopted)
      #expect(node.haproxyPID == second)
    }
  }

  @Test func stateDirectoryIsPrivate() async throws {
    try await withNodes { _, nodes, _ in
      let directory = nodes[0].stateDirectory
      let modes = try ["", "/master.sock", "/admin.sock", "/haproxy.cfg"].map { try mode(directory + $0) }
      #expect(modes == [0o700, 0o600, 0o600, 0o600])
    }
  }

  @Test func adminEndpoints() async throws {
    try await withNodes { _, nodes, _ in
      let node = nodes[0]
      #expect(try await HTTPLoadClient.get("\(node.adminURL)/healthz").status == 200)
      #expect(try await HTTPLoadClient.get("\(node.adminURL)/readyz").status == 200)
      let metrics = try await node.metrics()
      for name in [
        "switchyard_reconciles_total", "switchyard_runtime_commands_total", "switchyard_haproxy_reloads_total",
        "switchyard_invalid_entries", "switchyard_etcd_connected", "switchyard_applied_revision",
        "switchyard_servers", "switchyard_event_to_applied_seconds_bucket",
      ] {
        #expect(metrics.contains(name), "\(name) missing from /metrics")
      }
    }
  }
}

/// PIDs of the HAProxy processes (master and workers) that run for `node`'s state directory.
func haproxyProcesses(for node: LBNode) -> Set<Int32> {
  let entries = (try? FileManager.default.contentsOfDirectory(atPath: "/proc")) ?? []
  var pids: Set<Int32> = []
  for entry in entries {
    guard let pid = Int32(entry),
      let data = FileManager.default.contents(atPath: "/proc/\(entry)/cmdline")
    else { continue }
    let arguments = data.split(separator: 0).map { String(decoding: $0, as: UTF8.self) }
    guard arguments.first?.hasSuffix("haproxy") == true,
      arguments.contains(where: { $0.contains("\(node.stateDirectory)/master.sock") })
    else { continue }
    let status = (try? String(contentsOfFile: "/proc/\(entry)/stat", encoding: .utf8)) ?? ""
    if status.contains(") Z ") { continue }
    pids.insert(pid)
  }
  return pids
}

/// The permission bits of a file.
func mode(_ path: String) throws -> Int {
  let attributes = try FileManager.default.attributesOfItem(atPath: path)
  return (attributes[.posixPermissions] as? Int ?? 0) & 0o777
}
