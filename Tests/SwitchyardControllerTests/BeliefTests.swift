import Foundation
import HAProxyKit
import SwitchyardTestSupport
import Testing

/// A pass for a few instances of a backend plans them against what the controller believes HAProxy runs,
/// without looking at the backend: where HAProxy is otherwise, it is noticed and put right.
@Suite(.serialized) struct BeliefTests {
  @Test("a command refused because HAProxy is not what the controller believed: it looks again and repairs, no reload")
  func aRefusedCommandMakesThePassLookAgain() async throws {
    // No resync to help: the pass itself must notice.
    try await withNodes(extraArguments: ["--resync-interval", "3600"]) { _, nodes, etcd in
      let node = nodes[0]
      let servers = try await ["d1", "d2"].asyncMap { try await HTTPTestServer.start(name: $0) }
      defer { Task { for server in servers { await server.close() } } }
      for server in servers { try await etcd.register(server.name, port: server.port) }
      try await node.waitServing(["d1", "d2"])
      let failuresBefore = try await node.metric("switchyard_runtime_command_failures_total") ?? 0
      // An operator deletes d2 by hand, and d2's registration changes right after (its weight): the
      // controller, believing d2 is there, plans a weight change that HAProxy refuses.
      let api = RuntimeAPI(socketPath: "\(node.stateDirectory)/admin.sock", logger: quietLogger)
      try await api.setServerState(backend: "svc_backend", server: "d2", state: .maint)
      try await retrying(timeout: .seconds(5), every: .milliseconds(20)) {
        try await api.deleteServer(backend: "svc_backend", server: "d2")
      }
      try await etcd.register("d2", port: servers[1].port, weight: 50)
      let repaired = await eventually(timeout: .seconds(6)) { (try? await node.runtimeWeight(of: "d2")) == 50 }
      #expect(repaired, "d2 should be back with its new weight:\n\(node.log())")
      try await node.waitServing(["d1", "d2"])
      #expect(try await node.metric("switchyard_runtime_command_failures_total") ?? 0 > failuresBefore)
      #expect(try await node.showProc().reloads == 0)
    }
  }

  @Test("a weight changed by hand is put right by the drift detector, which compares HAProxy with the belief")
  func aHandChangedWeightIsRepairedWithoutTheResync() async throws {
    try await withNodes(extraArguments: ["--resync-interval", "3600"]) { _, nodes, etcd in
      let node = nodes[0]
      let restored = try await node.handChangedWeightComesBack(etcd: etcd)
      #expect(restored, "the weight from etcd should be back:\n\(node.log())")
      #expect(try await node.showProc().reloads == 0)
    }
  }

  @Test("changes beside many servers of one backend are applied server by server and publish /state in place")
  func changesInALargeBackend() async throws {
    try await withNodes(extraArguments: ["--resync-interval", "3600"]) { _, nodes, etcd in
      let node = nodes[0]
      let server = try await HTTPTestServer.start(name: "many")
      defer { Task { await server.close() } }
      for index in 0..<200 { try await etcd.register("m\(index)", port: server.port) }
      let all = await eventually(timeout: .seconds(20)) { (try? await node.servers().count) == 200 }
      #expect(all)
      // One add, one weight change, one delete, each in a pass of its own.
      let probe = try await HTTPTestServer.start(name: "probe")
      defer { Task { await probe.close() } }
      try await etcd.register("probe", port: probe.port)
      let added = await eventually(timeout: .seconds(10)) { (try? await node.servers())?["probe"] == "ready" }
      #expect(added)
      try await etcd.register("m1", port: server.port, weight: 30)
      try await etcd.deregister("m2")
      let applied = await eventually(timeout: .seconds(10)) {
        guard let servers = try? await node.servers(), let weight = try? await node.runtimeWeight(of: "m1") else {
          return false
        }
        return servers.count == 200 && servers["probe"] != nil && servers["m2"] == nil && weight == 30
      }
      #expect(applied, "HAProxy should have probe, m1 at weight 30 and no m2:\n\(node.log())")
      let published = await eventually(timeout: .seconds(5)) {
        guard let state = try? await node.state(), let backend = state.services.first(where: { $0.name == "backend" })
        else { return false }
        let names = backend.servers.map(\.name)
        return names == names.sorted() && names.count == 200 && names.contains("probe") && !names.contains("m2")
          && backend.servers.first { $0.name == "m1" }?.weight == 30
      }
      #expect(published, "/state should list the backend's servers as HAProxy runs them, in order")
      #expect(try await node.showProc().reloads == 0)
    }
  }
}
