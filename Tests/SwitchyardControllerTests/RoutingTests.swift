import EtcdClient
import Foundation
import SwitchyardTestSupport
import Testing

/// Registrations in etcd become servers in HAProxy, through a real `switchyard controller`.
@Suite(.serialized) struct RoutingTests {
  @Test func threeBackendsThenOneGoneThenNone() async throws {
    try await withNodes { _, nodes, etcd in
      let node = nodes[0]
      let servers = try await (1...3).asyncMap { try await HTTPTestServer.start(name: "b\($0)") }
      defer { Task { for server in servers { await server.close() } } }
      for (index, server) in servers.enumerated() { try await etcd.register("b\(index + 1)", port: server.port) }
      try await node.waitServing(["b1", "b2", "b3"])

      // Round robin: three requests in a row reach three different backends.
      var bodies: [String] = []
      for _ in 0..<3 { bodies.append(try await node.get().body) }
      #expect(Set(bodies).count == 3)

      try await etcd.deregister("b2")
      try await node.waitServing(["b1", "b3"])
      let before = servers[1].requestCount
      for _ in 0..<10 { _ = try await node.get() }
      #expect(servers[1].requestCount == before)

      try await etcd.deregister("b1")
      try await etcd.deregister("b3")
      try await node.waitServing([])
      // No stale server is kept once the last instance goes.
      try await retrying(timeout: .seconds(10)) {
        let left = try await node.servers()
        guard left.isEmpty else { throw TestSupportError("servers left: \(left)") }
      }
      // All of it through the Runtime API.
      #expect(try await node.showProc().reloads == 0)
      let state = try await node.state()
      #expect(state.services.first?.servers.isEmpty == true)
      #expect(state.appliedRevision > 0)
    }
  }
}
