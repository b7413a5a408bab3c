import Foundation
import HAProxyKit
import SwitchyardTestSupport
import Testing

/// Passes that work on the services a change touched, with the full pass as the safety net.
@Suite(.serialized) struct IncrementalPassTests {
  @Test("a change is applied by a pass over its own service; the others keep theirs and the file follows")
  func aChangeTouchesItsServiceOnly() async throws {
    try await withNodes(extraArguments: ["--service", "backend", "--service", "api"]) { _, nodes, etcd in
      let node = nodes[0]
      let servers = try await ["a1", "b1", "b2"].asyncMap { try await HTTPTestServer.start(name: $0) }
      defer { Task { for server in servers { await server.close() } } }
      let passesAtStart = try await node.metric("switchyard_incremental_passes_total") ?? 0
      try await etcd.register("a1", port: servers[0].port, service: "api")
      try await etcd.register("b1", port: servers[1].port)
      try await node.waitServing(["b1"])
      let state = try await node.state()
      let names = Dictionary(uniqueKeysWithValues: state.services.map { ($0.backend, $0.servers.map(\.name)) })
      #expect(names == ["svc_backend": ["b1"], "svc_api": ["a1"]])
      #expect(state.services.map(\.backend) == ["svc_backend", "svc_api"], "in the node's order")
      #expect(try await node.metric("switchyard_incremental_passes_total") ?? 0 > passesAtStart)
      #expect(try await node.metric("switchyard_servers{service=\"api\",state=\"up\"}") == 1)

      // The file follows within a second or so, without a pass of its own for each change.
      let configPath = "\(node.stateDirectory)/haproxy.cfg"
      let written = await eventually(timeout: .seconds(5)) {
        let text = (try? String(contentsOfFile: configPath, encoding: .utf8)) ?? ""
        return text.contains("server a1 127.0.0.1:\(servers[0].port) ")
          && text.contains("server b1 127.0.0.1:\(servers[1].port) ")
      }
      #expect(written, "haproxy.cfg lacks a1 or b1")

      // A removal in one service drains and deletes there, followed up while the other changes.
      try await etcd.deregister("a1", service: "api")
      try await etcd.register("b2", port: servers[2].port)
      try await node.waitServing(["b1", "b2"])
      let gone = await eventually(timeout: .seconds(10)) {
        let api = try? await node.state().services.first { $0.backend == "svc_api" }
        let text = (try? String(contentsOfFile: configPath, encoding: .utf8)) ?? ""
        return api?.servers.isEmpty == true && !text.contains("server a1 ")
      }
      #expect(gone, "a1 should leave HAProxy, /state and the file")
      #expect(try await node.showProc().reloads == 0)
    }
  }

  @Test("the full pass every --resync-interval puts right what passes over single services do not look at")
  func theResyncIsTheSafetyNet() async throws {
    try await withNodes(extraArguments: ["--resync-interval", "2"]) { _, nodes, etcd in
      let restored = try await nodes[0].handChangedWeightComesBack(etcd: etcd)
      #expect(restored, "the full pass should set the weight from etcd again")
    }
  }
}
