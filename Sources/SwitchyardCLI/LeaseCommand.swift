import ArgumentParser
import EtcdClient

/// `switchyard etcd lease …`
struct LeaseCommand: AsyncParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "lease",
    abstract: "Grant, revoke, inspect and keep alive leases.",
    subcommands: [Grant.self, Revoke.self, TimeToLive.self, List.self, KeepAlive.self]
  )

  struct Grant: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Grant a lease; prints its ID in hex.")
    @OptionGroup var etcd: EtcdOptions
    @Argument(help: "TTL in seconds.") var ttl: Int64

    func validate() throws {
      guard ttl > 0 else { throw ValidationError("TTL must be a positive number of seconds") }
    }

    func run() async throws {
      let lease = try await etcd.withClient(localClusterRoot: true) { client in try await client.grantLease(ttl: ttl) }
      print("lease \(String(lease.id, radix: 16)) granted with TTL(\(lease.ttl)s)")
    }
  }

  struct Revoke: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Revoke a lease and delete its keys.")
    @OptionGroup var etcd: EtcdOptions
    @Argument(help: "Lease ID (hex as printed by grant, or decimal).") var id: String

    func run() async throws {
      let leaseID = try parseLeaseID(id)
      try await etcd.withClient(localClusterRoot: true) { client in try await client.revokeLease(leaseID) }
      print("lease \(String(leaseID, radix: 16)) revoked")
    }
  }

  struct TimeToLive: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "ttl", abstract: "Print a lease's remaining TTL.")
    @OptionGroup var etcd: EtcdOptions
    @Argument(help: "Lease ID.") var id: String
    @Flag(help: "List the keys attached.") var keys = false

    func run() async throws {
      let leaseID = try parseLeaseID(id)
      let info = try await etcd.withClient(localClusterRoot: true) { client in
        try await client.timeToLive(lease: leaseID, keys: keys)
      }
      if info.ttl < 0 {
        print("lease \(String(leaseID, radix: 16)) already expired")
      } else {
        print("lease \(String(leaseID, radix: 16)) granted with TTL(\(info.grantedTTL)s), remaining(\(info.ttl)s)")
        for key in info.keys { print(String(decoding: key, as: UTF8.self)) }
      }
    }
  }

  struct List: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "List live leases.")
    @OptionGroup var etcd: EtcdOptions

    func run() async throws {
      let leases = try await etcd.withClient(localClusterRoot: true) { client in try await client.leases() }
      for lease in leases { print(String(lease, radix: 16)) }
    }
  }

  struct KeepAlive: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
      commandName: "keep-alive",
      abstract: "Renew a lease until interrupted or it expires."
    )
    @OptionGroup var etcd: EtcdOptions
    @Argument(help: "Lease ID.") var id: String

    func run() async throws {
      let leaseID = try parseLeaseID(id)
      try await etcd.withClient(localClusterRoot: true) { client in
        let ttl = try await client.timeToLive(lease: leaseID)
        guard ttl.ttl > 0 else { throw ValidationError("lease \(id) has expired") }
        for try await renewal in client.keepAlive(Lease(id: leaseID, ttl: ttl.grantedTTL)) {
          print("lease \(String(renewal.id, radix: 16)) keepalived with TTL(\(renewal.ttl))")
        }
      }
    }
  }
}
