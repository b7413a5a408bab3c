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
      // The outage is seen once when it begins and once when it ends, not once per retry.
      try await retrying(timeout: .seconds(5)) {
        guard node.log().contains("etcd answers again") else { throw TestSupportError("no end of the outage logged") }
      }
      let lines = node.log().split(separator: "\n")
      #expect(lines.filter { $0.contains("No word from etcd") }.count == 1, "\(node.log())")
      #expect(lines.filter { $0.contains("etcd answers again") }.count == 1)
      #expect(try await node.metric("switchyard_etcd_outages_total") == 1)
      // The client's reconnects say so once per outage at info, not once per try (about one a second).
      #expect(lines.filter { $0.contains("watch stream broke") }.count <= 2, "\(node.log())")
      let revision = try await etcd.get(.prefix("/services/")).header.revision
      try await retrying(timeout: .seconds(5)) {
        guard try await node.state().appliedRevision >= revision else { throw TestSupportError("behind") }
      }
      for server in servers { await server.close() }
    }
  }

  @Test func aFrozenMemberUnderTheWatchesHoldsNoChangeBackAndCostsNoRegistration() async throws {
    try await withNodes(count: 2, members: 3) { cluster, nodes, etcd in
      let servers = try await (1...3).asyncMap { try await HTTPTestServer.start(name: "z\($0)") }
      // Registrations held by a 10 s lease that the test's client keeps alive, as a backend does.
      let lease = try await etcd.grantLease(ttl: 10)
      let keeper = Task { for try await _ in etcd.keepAlive(lease) {} }
      defer { keeper.cancel() }
      for server in servers.prefix(2) {
        try await etcd.register(server.name, port: server.port, lease: lease.id)
      }
      for node in nodes { try await node.waitServing(["z1", "z2"]) }
      let loads = try nodes.map { try HTTPLoadClient.start(url: $0.url, connections: 2) }

      // Freeze the member the first node watches from.
      var watched: String?
      try await retrying(timeout: .seconds(10)) {
        watched = try await nodes[0].state().etcdWatchEndpoint
        guard watched != nil else { throw TestSupportError("no watch endpoint in /state yet") }
      }
      let frozen = try #require(cluster.endpoints.firstIndex(of: watched ?? ""))
      try await cluster.whilePaused(member: frozen) { () async throws in
        try await Task.sleep(for: .seconds(1))
        // If the frozen member led, the test's own write must wait for the election.
        try await cluster.waitHealthy(member: frozen == 0 ? 1 : 0)
        // The change goes to a healthy member, as a backend's write would once its client moved.
        var others = try EtcdConfiguration(
          endpoints: cluster.endpoints.indices.filter { $0 != frozen }.map { cluster.endpoints[$0] }.joined(
            separator: ",")
        )
        others.requestTimeout = .seconds(5)
        try await withEtcdClient(configuration: others, logger: quietLogger) { writer in
          _ = try await writer.register("z3", port: servers[2].port, lease: lease.id)
        }
        let clock = ContinuousClock()
        let written = clock.now
        var applied: [Duration] = []
        for node in nodes {
          try await node.waitServing(["z1", "z2", "z3"], timeout: .seconds(10))
          applied.append(written.duration(to: clock.now))
        }
        print("a change made during the freeze was served by both nodes after \(applied)")
        #expect(applied.allSatisfy { $0 < .seconds(3) }, "both nodes should apply a change within 3 s: \(applied)")
        // Past the lease's TTL: no live registration may be lost.
        try await Task.sleep(for: .seconds(12))
        #expect(try await etcd.get(.prefix("/services/backend/")).kvs.count == 3)
        for node in nodes { try await node.waitServing(["z1", "z2", "z3"], timeout: .seconds(2)) }
      }
      for load in loads {
        let report = await load.stop()
        #expect(report.failures == 0, "\(report)")
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
      // t2 leaves each node once its pooled idle connections are closed.
      try await retrying(timeout: .seconds(10)) {
        let states = try await nodes.asyncMap { try await $0.state() }
        guard states.allSatisfy({ $0.services.map(\.servers.count) == [2] }) else {
          throw TestSupportError("servers per node: \(states.map { $0.services.map(\.servers.count) })")
        }
        #expect(states.map(\.node) == ["lb1", "lb2"])
      }
      for server in servers { await server.close() }
    }
  }
}
