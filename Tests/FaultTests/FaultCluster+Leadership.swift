import EtcdClient
import SwitchyardTestSupport

/// Which etcd member leads, and moving the leadership off a member before a scenario freezes it.
extension FaultCluster {
  /// The member that leads, asked of each member in turn.
  func leader(_ client: EtcdClient) async throws -> String {
    var found: String?
    try await retrying(timeout: .seconds(10), every: .milliseconds(200)) {
      for name in Self.etcdNames {
        let endpoint = try EtcdEndpoint(parsing: "http://\(lab.host(name).address):2379")
        guard let status = try? await client.status(of: endpoint) else { continue }
        if status.leader != 0 && status.leader == status.header.memberID {
          found = name
          return
        }
      }
      throw TestSupportError("no member says it leads")
    }
    return found ?? ""
  }

  /// Moves the Raft leadership off `member` (etcdctl move-leader) when it holds it, and waits until
  /// another member leads.
  ///
  /// A scenario that freezes one member for longer than a lease's TTL must not freeze the leader by
  /// chance: a leader resumed after SIGSTOP may still revoke every lease it saw expire, although they
  /// were renewed through the new leader (etcd-io/etcd#15247; measured on 3.5.16, where the member's
  /// `etcd_debugging_server_lease_expired_total` counted 5 of 6 leases after a 12 s freeze). The
  /// scenario that freezes the leader on purpose runs only when named (see its `openBug`).
  /// Returns the member that leads afterwards when leadership moved, else nil.
  func moveLeadership(off member: String, _ client: EtcdClient) async throws -> String? {
    guard try await leader(client) == member else { return nil }
    let target = Self.etcdNames.first { $0 != member }!
    let targetStatus = try await client.status(of: try EtcdEndpoint(parsing: "http://\(lab.host(target).address):2379"))
    try await ManagedProcess.run(
      EtcdCluster.defaultExecutable("etcdctl"),
      arguments: [
        "--endpoints=http://\(lab.host(member).address):2379", "move-leader",
        String(targetStatus.header.memberID, radix: 16),
      ],
      timeout: .seconds(10)
    )
    try await retrying(timeout: .seconds(10), every: .milliseconds(100)) {
      guard try await leader(client) != member else { throw TestSupportError("\(member) still leads") }
    }
    return try await leader(client)
  }
}
