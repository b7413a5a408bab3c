import Foundation
import SwitchyardTestSupport
import Testing

@Suite(
  "Network lab: hosts in network namespaces", .serialized,
  .enabled(if: NetworkLab.isAvailable, "needs root and iproute2"))
struct NetworkLabTests {
  @Test("an etcd on one host is reached from the client and another host; cuts and partitions hold and heal")
  func reachCutPartitionHeal() async throws {
    let lab = try await NetworkLab.create(hosts: ["etcd1", "peer"])
    let etcdHost = lab.host("etcd1")
    let peer = lab.host("peer")
    let data = try TemporaryDirectory(prefix: "switchyard-lab")
    var etcd: ManagedProcess?
    do {
      let url = "http://\(etcdHost.address):2379"
      let (tool, arguments) = lab.command(
        on: etcdHost,
        EtcdCluster.defaultExecutable("etcd"),
        [
          "--name=lab", "--data-dir=\(data.path("lab.data"))", "--listen-client-urls=\(url)",
          "--advertise-client-urls=\(url)", "--listen-peer-urls=http://\(etcdHost.address):2380",
          "--initial-advertise-peer-urls=http://\(etcdHost.address):2380",
          "--initial-cluster=lab=http://\(etcdHost.address):2380",
        ]
      )
      etcd = try ManagedProcess(tool, arguments: arguments)
      let version = ["-s", "-m", "1", "\(url)/version"]
      // From the test process (the client host) and from the other host.
      try await retrying(timeout: .seconds(20)) {
        guard try await ManagedProcess.run("curl", arguments: version).contains("etcdserver") else {
          throw TestSupportError(.invalidState, "etcd does not answer yet")
        }
      }
      #expect(try await lab.run(on: peer, "curl", version).contains("etcdserver"))

      try await lab.partition(peer, etcdHost)
      await #expect(throws: (any Error).self) { try await lab.run(on: peer, "curl", version) }
      #expect(try await ManagedProcess.run("curl", arguments: version).contains("etcdserver"))
      try await lab.heal(peer, etcdHost)
      #expect(try await lab.run(on: peer, "curl", version).contains("etcdserver"))

      try await lab.cutOff(etcdHost)
      await #expect(throws: (any Error).self) { try await ManagedProcess.run("curl", arguments: version) }
      await #expect(throws: (any Error).self) { try await lab.run(on: peer, "curl", version) }
      try await lab.reconnect(etcdHost)
      try await retrying(timeout: .seconds(5)) {
        _ = try await ManagedProcess.run("curl", arguments: ["-sf", "-m", "1", "\(url)/version"])
      }
    } catch {
      etcd?.kill()
      await lab.shutdown()
      data.remove()
      throw error
    }
    etcd?.kill()
    await lab.shutdown()
    data.remove()
    let left = try await ManagedProcess.run("ip", arguments: ["netns", "list"])
    #expect(!left.contains(etcdHost.namespace) && !left.contains(peer.namespace), "namespaces left: \(left)")
  }
}
