import EtcdClient
import Foundation
import SwitchyardTestSupport
import Testing

/// The controller against etcd restarts, compaction and a second controller.
@Suite(.serialized) struct EtcdFailureTests {
  @Test func etcdRestartWhileRegistrationsChange() async throws {
    try await withNodes { cluster, nodes, etcd in
      let node = nodes[0]
      let servers = try await (1...3).asyncMap { try await HTTPTestServer.start(name: "r\($0)") }
      try await etcd.register("r1", port: servers[0].port)
      try await node.waitServing(["r1"])
      let load = try HTTPLoadClient.start(url: node.url, connections: 4)

      // Just before the restart.
      try await etcd.register("r2", port: servers[1].port)
      try await cluster.stop(member: 0)
      try await retrying(timeout: .seconds(15)) {
        let (status, _) = try await HTTPLoadClient.get("\(node.adminURL)/readyz")
        guard status == 503 else { throw TestSupportError("still ready") }
      }
      try await Task.sleep(for: .seconds(1))
      try await cluster.start(member: 0)
      // Just after.
      try await retrying(timeout: .seconds(10)) {
        try await etcd.register("r3", port: servers[2].port)
        try await etcd.deregister("r1")
      }
      try await node.waitReady(timeout: .seconds(30))
      try await node.waitServing(["r2", "r3"], timeout: .seconds(15))
      let report = await load.stop()
      #expect(report.failures == 0, "HAProxy must keep serving while etcd restarts: \(report)")
      let revision = try await etcd.get(.prefix("/services/")).header.revision
      try await retrying(timeout: .seconds(5)) {
        guard try await node.state().appliedRevision >= revision else { throw TestSupportError("behind") }
      }
      for server in servers { await server.close() }
    }
  }

  @Test func compactionPastTheWatchIsNoticedAndFullStateIsReadAgain() async throws {
    let cluster = try await EtcdCluster.start(members: 3)
    let node = try LBNode(name: "lb1", endpoints: [cluster.endpoint(of: 0)])
    let servers = try await (1...4).asyncMap { try await HTTPTestServer.start(name: "c\($0)") }
    do {
      try node.start()
      try await node.waitReady()
      var configuration = try EtcdConfiguration(endpoints: "\(cluster.endpoint(of: 1)),\(cluster.endpoint(of: 2))")
      configuration.requestTimeout = .seconds(5)
      try await withEtcdClient(configuration: configuration, logger: quietLogger) { etcd in
        try await etcd.register("c1", port: servers[0].port)
        try await etcd.register("c2", port: servers[1].port)
        try await node.waitServing(["c1", "c2"])

        try await cluster.stop(member: 0)
        try await etcd.deregister("c1")
        try await etcd.register("c3", port: servers[2].port)
        try await etcd.register("c4", port: servers[3].port)
        try await etcd.deregister("c4")
        let revision = try await etcd.put("/other/key", value: "x").header.revision
        _ = try await etcd.compact(revision: revision, physical: true)
        try await cluster.start(member: 0)

        try await node.waitServing(["c2", "c3"], timeout: .seconds(30))
        try await node.waitReady(timeout: .seconds(30))
        #expect(node.log().contains("compacted"), "the controller should have seen the compaction")
        // HAProxy has the servers before the pass that put them there records its revision.
        try await retrying(timeout: .seconds(5)) {
          guard try await node.state().appliedRevision >= revision else { throw TestSupportError("behind") }
        }
      }
    } catch {
      Issue.record("lb1 log:\n\(node.log())")
      await node.cleanup()
      for server in servers { await server.close() }
      await cluster.shutdown()
      throw error
    }
    await node.cleanup()
    for server in servers { await server.close() }
    await cluster.shutdown()
  }

  @Test func twoControllersServeTheSameBackends() async throws {
    try await withNodes(count: 2) { _, nodes, etcd in
      let servers = try await (1...3).asyncMap { try await HTTPTestServer.start(name: "t\($0)") }
      for server in servers { try await etcd.register(server.name, port: server.port) }
      for node in nodes { try await node.waitServing(["t1", "t2", "t3"]) }
      try await etcd.deregister("t2")
      for node in nodes { try await node.waitServing(["t1", "t3"]) }
      let states = try await nodes.asyncMap { try await $0.state() }
      #expect(states[0].services.map(\.servers.count) == states[1].services.map(\.servers.count))
      #expect(states.map(\.node) == ["lb1", "lb2"])
      for server in servers { await server.close() }
    }
  }
}
