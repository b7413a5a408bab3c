import EtcdClient
import Foundation
import SwitchyardModel
import SwitchyardTestSupport
import Testing

/// Operators drain and disable instances through `/switchyard/overrides/`, with `switchyard drain`,
/// `disable` and `enable`, against a real etcd, controller and HAProxy.
@Suite(.serialized) struct OverrideTests {
  @Test(
    "drain and disable through etcd: the stricter state wins, a registrar rewriting its key does not undo it, enable ends it; all through the Runtime API"
  )
  func drainDisableEnable() async throws {
    try await withNodes { cluster, nodes, etcd in
      let node = nodes[0]
      let servers = try await (1...2).asyncMap { try await HTTPTestServer.start(name: "b\($0)") }
      defer { Task { for server in servers { await server.close() } } }
      for (index, server) in servers.enumerated() { try await etcd.register("b\(index + 1)", port: server.port) }
      try await node.waitServing(["b1", "b2"])
      let endpoints = ["--etcd-endpoints", cluster.endpoints.joined(separator: ",")]

      let drained = try await switchyardStatus(["drain", "backend/b1", "--reason", "kernel update"] + endpoints)
      #expect(drained.status == 0, "\(drained.output)")
      #expect(drained.output.contains("backend/b1: drain"))
      try await node.waitServing(["b2"])
      #expect(try await node.servers()["b1"] == "drain")

      // The registrar writes its key again (as after a lease scare): the override still holds.
      try await etcd.register("b1", port: servers[0].port)
      try await Task.sleep(for: .milliseconds(500))
      #expect(try await node.servers()["b1"] == "drain")
      let state = try await node.state()
      #expect(
        state.overrides == [.init(service: "backend", instance: "b1", state: "drain", reason: "kernel update")])
      #expect(try await node.metric("switchyard_overrides") == 1)

      // An instance that registers itself as draining stays in maintenance under a disable.
      let disabled = try await switchyardStatus(["disable", "backend/b1"] + endpoints)
      #expect(disabled.status == 0, "\(disabled.output)")
      try await retrying(timeout: .seconds(5)) {
        guard try await node.servers()["b1"] == "maint" else { throw TestSupportError("b1 is not in maintenance") }
      }
      try await etcd.register("b1", port: servers[0].port, state: .drain)
      try await Task.sleep(for: .milliseconds(500))
      #expect(try await node.servers()["b1"] == "maint")

      // `undrain` is `enable`: the registration's own state (drain, written above) applies again.
      let enabled = try await switchyardStatus(["undrain", "backend/b1"] + endpoints)
      #expect(enabled.status == 0, "\(enabled.output)")
      try await retrying(timeout: .seconds(5)) {
        guard try await node.servers()["b1"] == "drain" else { throw TestSupportError("b1 is not draining") }
      }
      try await etcd.register("b1", port: servers[0].port)
      try await node.waitServing(["b1", "b2"])
      #expect(try await node.state().overrides == [])
      #expect(try await node.metric("switchyard_overrides") == 0)
      #expect(try await node.showProc().reloads == 0, "overrides go through the Runtime API")
      let log = node.log()
      #expect(log.contains("Operator override: backend/b1 is drain"))
      #expect(log.contains("Operator override of backend/b1 (maint) ended"))
    }
  }

  @Test("an override of an unregistered instance waits for it; a bad override is refused and listed, not applied")
  func waitingAndInvalid() async throws {
    try await withNodes { cluster, nodes, etcd in
      let node = nodes[0]
      let server = try await HTTPTestServer.start(name: "late")
      defer { Task { await server.close() } }
      let endpoints = ["--etcd-endpoints", cluster.endpoints.joined(separator: ",")]
      let early = try await switchyardStatus(["disable", "backend/late"] + endpoints)
      #expect(early.output.contains("not registered now"), "\(early.output)")
      _ = try await etcd.put("/switchyard/overrides/backend/bad", value: #"{"state":"up"}"#)
      try await etcd.register("late", port: server.port)
      try await retrying(timeout: .seconds(5)) {
        guard try await node.servers()["late"] == "maint" else { throw TestSupportError("late is not in maintenance") }
      }
      let state = try await node.state()
      #expect(state.invalidEntries.contains { $0.key == "/switchyard/overrides/backend/bad" })

      let refused = try await switchyardStatus(["drain", "backend/a/b"] + endpoints)
      #expect(refused.status != 0)
      #expect(refused.output.contains("is not SERVICE/ID"), "\(refused.output)")
      let newline = try await switchyardStatus(["drain", "backend/late", "--reason", "two\nlines"] + endpoints)
      #expect(newline.status != 0)
      #expect(newline.output.contains("--reason"), "\(newline.output)")
    }
  }
}
