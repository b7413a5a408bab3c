import EtcdClient
import Foundation
import SwitchyardTestSupport
import Testing

/// A controller that has no HAProxy running starts one from the last good config file only when etcd
/// cannot say what is current: the file may be older than what HAProxy ran.
@Suite(.serialized) struct LastGoodConfigTests {
  @Test func aControllerStartedWhileEtcdIsUnreachableServesTheLastGoodFile() async throws {
    try await withNodes { cluster, nodes, etcd in
      let node = nodes[0]
      let server = try await HTTPTestServer.start(name: "g1")
      let revision = try await etcd.register("g1", port: server.port)
      try await node.waitServing(["g1"])
      // The file follows the Runtime API change within a second, and is brought up to date when the
      // controller stops.
      try await node.waitApplied(revision)
      // SIGTERM stops HAProxy with the controller; the file stays.
      await node.stop()
      #expect((try? await node.get()) == nil, "nothing should serve while the node is down")
      try await cluster.stop(member: 0)

      try node.start()
      try await node.waitServing(["g1"], timeout: .seconds(20))
      // HAProxy serves a moment before the controller logs why it started it.
      let logged = await eventually(timeout: .seconds(5)) {
        node.log().contains("Started HAProxy from the last good configuration while etcd is unreachable")
      }
      #expect(logged, "\(node.log())")
      #expect(try await node.state().etcdConnected == false)
      try await cluster.start(member: 0)
      await server.close()
    }
  }

  @Test func aControllerStartedWhileEtcdAnswersNeverServesTheStaleFile() async throws {
    try await withNodes { _, nodes, etcd in
      let node = nodes[0]
      let before = try await HTTPTestServer.start(name: "g1")
      let after = try await HTTPTestServer.start(name: "g2")
      let revision = try await etcd.register("g1", port: before.port)
      try await node.waitServing(["g1"])
      try await node.waitApplied(revision)
      await node.stop()
      // While the node is down, g1 leaves and g2 comes: the file on disk is stale.
      try await etcd.deregister("g1")
      try await etcd.register("g2", port: after.port)

      // Passes that fail although etcd answers: this HAProxy rejects every configuration it checks.
      let rejecting = "\(node.directory.path)/haproxy-rejecting"
      let script = """
        #!/bin/sh
        for argument in "$@"; do
          if [ "$argument" = "-c" ]; then echo "rejected by the test" >&2; exit 1; fi
        done
        exec haproxy "$@"

        """
      try script.write(toFile: rejecting, atomically: true, encoding: .utf8)
      try FileManager.default.setAttributes([.posixPermissions: 0o755], ofItemAtPath: rejecting)
      try node.start(extraArguments: ["--haproxy", rejecting])
      try await retrying(timeout: .seconds(15)) {
        let state = try await node.state()
        guard state.etcdConnected, state.lastError != nil else {
          throw TestSupportError("no failed pass yet: \(state)")
        }
      }
      // A few more failed passes, none of which may start HAProxy from the stale file.
      try await Task.sleep(for: .seconds(2))
      let state = try await node.state()
      #expect(!state.haproxyRunning, "HAProxy started from the stale file")
      #expect((try? await node.get()) == nil, "something serves from the stale file")
      #expect(!node.log().contains("last good configuration"))

      // With an HAProxy that accepts the configuration, the node renders from etcd.
      await node.stop()
      try node.start()
      try await node.waitReady()
      try await node.waitServing(["g2"])
      await before.close()
      await after.close()
    }
  }
}

extension LBNode {
  /// Waits until the controller has applied `revision`, config file included.
  func waitApplied(_ revision: Int64) async throws {
    try await retrying(timeout: .seconds(10)) {
      guard try await state().appliedRevision >= revision else { throw TestSupportError("\(revision) not applied yet") }
    }
  }
}
