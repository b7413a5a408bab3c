import EtcdClient
import Foundation
import SwitchyardTestSupport
import Testing

/// `--update-strategy reload` is the original demo's way (rewrite and reload on every change), kept so that
/// the benchmark can compare it with the Runtime API in the same run.
@Suite(.serialized) struct UpdateStrategyTests {
  @Test("with --update-strategy reload every server change is a reload, and the servers still follow etcd")
  func reloadStrategyReloadsOnEveryChange() async throws {
    try await withNodes(extraArguments: ["--update-strategy", "reload"]) { _, nodes, etcd in
      let node = nodes[0]
      let servers = try await (1...2).asyncMap { try await HTTPTestServer.start(name: "r\($0)") }
      defer { Task { for server in servers { await server.close() } } }
      let reloadsAtStart = try await node.showProc().reloads
      try await etcd.register("r1", port: servers[0].port, checkPath: "/")
      try await node.waitServing(["r1"])
      let afterFirst = try await node.showProc().reloads
      #expect(afterFirst > reloadsAtStart)
      try await etcd.register("r2", port: servers[1].port, checkPath: "/")
      try await node.waitServing(["r1", "r2"])
      try await etcd.deregister("r1")
      try await node.waitServing(["r2"])
      let afterAll = try await node.showProc().reloads
      #expect(afterAll >= afterFirst + 2, "reloads: \(reloadsAtStart) → \(afterFirst) → \(afterAll)")
      // The counter goes up once the reload command returns, which can be just after HAProxy serves the
      // new configuration: read it until it has caught up.
      let metric = "switchyard_haproxy_reloads_total{reason=\"update-strategy\"}"
      var counted = 0.0
      try? await retrying(timeout: .seconds(5)) {
        counted = try await node.metric(metric) ?? 0
        guard counted >= 3 else { throw TestSupportError("\(metric) is \(counted)") }
      }
      #expect(counted >= 3, "\(metric) is \(counted)")
    }
  }

  @Test("an unknown --update-strategy is refused, naming the flag")
  func unknownStrategyIsRefused() async throws {
    let process = try ManagedProcess(
      switchyardBinary,
      arguments: ["controller", "--node-id", "x", "--state-dir", "/tmp/unused", "--update-strategy", "sometimes"])
    #expect(await process.waitForExit(timeout: .seconds(10)) != 0)
    #expect(process.logContents().contains("--update-strategy must be runtime or reload"), "\(process.logContents())")
  }
}
