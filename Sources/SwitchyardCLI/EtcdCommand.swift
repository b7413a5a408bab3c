import ArgumentParser
import EtcdClient
import Foundation

/// `switchyard etcd …`: direct access to etcd through Switchyard's own client, for inspection and
/// fault drills (like `etcdctl`, with the same endpoint, auth and TLS options as every command).
struct EtcdCommand: AsyncParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "etcd",
    abstract: "Read, write and watch etcd with Switchyard's etcd client.",
    subcommands: [
      Get.self, Put.self, Delete.self, Watch.self, Compact.self, Members.self, Status.self, LeaseCommand.self,
    ]
  )

  struct Get: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Print a key, or every key under a prefix.")

    @OptionGroup var etcd: EtcdOptions
    @Argument(help: "The key (or prefix, with --prefix).") var key: String
    @Flag(help: "Treat the key as a prefix.") var prefix = false
    @Flag(name: .customLong("keys-only"), help: "Print keys without values.") var keysOnly = false
    @Flag(name: .customLong("count-only"), help: "Print only the number of keys.") var countOnly = false
    @Option(help: "Print at most this many keys.") var limit: Int64 = 0
    @Option(name: .customLong("rev"), help: "Read at this revision (0: latest).") var revision: Int64 = 0
    @Flag(help: "Print JSON: the revision and each key-value.") var json = false

    func run() async throws {
      let options = GetOptions(limit: limit, revision: revision, keysOnly: keysOnly, countOnly: countOnly)
      let result = try await etcd.withClient(localClusterRoot: true) { client in
        try await client.get(prefix ? .prefix(key) : .key(key), options: options)
      }
      if json {
        let kvs = result.kvs.map { kv -> [String: Any] in
          [
            "key": kv.keyString, "value": kv.valueString, "create_revision": kv.createRevision,
            "mod_revision": kv.modRevision, "version": kv.version, "lease": kv.lease,
          ]
        }
        let object: [String: Any] = [
          "revision": result.header.revision, "count": result.count, "more": result.more, "kvs": kvs,
        ]
        let data = try JSONSerialization.data(withJSONObject: object, options: [.sortedKeys, .withoutEscapingSlashes])
        print(String(decoding: data, as: UTF8.self))
      } else if countOnly {
        print(result.count)
      } else {
        for kv in result.kvs {
          print(kv.keyString)
          if !keysOnly { print(kv.valueString) }
        }
      }
    }
  }

  struct Put: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Write a key.")

    @OptionGroup var etcd: EtcdOptions
    @Argument(help: "The key.") var key: String
    @Argument(help: "The value.") var value: String
    @Option(help: "Attach the key to this lease ID (decimal or hex with 0x).") var lease: String?

    func run() async throws {
      let leaseID = try lease.map(parseLeaseID) ?? 0
      let result = try await etcd.withClient(localClusterRoot: true) { client in
        try await client.put(key, value: value, options: PutOptions(lease: leaseID))
      }
      print("OK (revision \(result.header.revision))")
    }
  }

  struct Delete: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "del", abstract: "Delete a key or prefix.")

    @OptionGroup var etcd: EtcdOptions
    @Argument(help: "The key (or prefix, with --prefix).") var key: String
    @Flag(help: "Treat the key as a prefix.") var prefix = false

    func run() async throws {
      let result = try await etcd.withClient(localClusterRoot: true) { client in
        try await client.delete(prefix ? .prefix(key) : .key(key))
      }
      print(result.deleted)
    }
  }

  struct Watch: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Print changes to a key or prefix until interrupted.")

    @OptionGroup var etcd: EtcdOptions
    @Argument(help: "The key (or prefix, with --prefix).") var key: String
    @Flag(help: "Treat the key as a prefix.") var prefix = false
    @Option(name: .customLong("rev"), help: "Start at this revision (0: from now).") var revision: Int64 = 0
    @Flag(name: .customLong("prev-kv"), help: "Print each key's previous value too.") var prevKV = false

    func run() async throws {
      let options = WatchOptions(startRevision: revision, prevKV: prevKV)
      try await etcd.withClient(localClusterRoot: true) { client in
        for try await response in client.watch(prefix ? .prefix(key) : .key(key), options: options) {
          for event in response.events {
            print(event.kind == .put ? "PUT" : "DELETE")
            print(event.kv.keyString)
            if event.kind == .put { print(event.kv.valueString) }
            if let previous = event.prevKV { print("previous: \(previous.valueString)") }
          }
          fflush(nil)
        }
      }
    }
  }

  struct Compact: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Discard history before a revision.")

    @OptionGroup var etcd: EtcdOptions
    @Argument(help: "The revision.") var revision: Int64
    @Flag(help: "Wait until the space is reclaimed.") var physical = false

    func run() async throws {
      try await etcd.withClient(localClusterRoot: true) { client in
        _ = try await client.compact(revision: revision, physical: physical)
      }
      print("compacted revision \(revision)")
    }
  }

  struct Members: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "List the cluster's members.")

    @OptionGroup var etcd: EtcdOptions

    func run() async throws {
      let members = try await etcd.withClient(localClusterRoot: true) { client in try await client.members() }
      for member in members {
        let id = String(member.id, radix: 16)
        let peers = member.peerURLs.joined(separator: ",")
        let clients = member.clientURLs.joined(separator: ",")
        print("\(id), \(member.name), \(peers), \(clients), learner=\(member.isLearner)")
      }
    }
  }

  struct Status: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Print each endpoint's status.")

    @OptionGroup var etcd: EtcdOptions

    func run() async throws {
      let configuration = try etcd.makeConfiguration(localClusterRoot: true)
      let lines = try await etcd.withClient(localClusterRoot: true) { client in
        var lines: [String] = []
        for endpoint in configuration.endpoints {
          do {
            let status = try await client.status(of: endpoint)
            let leader = status.leader == status.header.memberID ? "leader" : "follower"
            lines.append(
              "\(endpoint), \(String(status.header.memberID, radix: 16)), \(status.version), "
                + "\(leader), revision \(status.header.revision), raft term \(status.raftTerm)"
            )
          } catch let error as EtcdError {
            lines.append("\(endpoint), unavailable: \(error.message)")
          }
        }
        return lines
      }
      for line in lines { print(line) }
    }
  }
}

/// Parses a lease ID written in decimal or as hex with `0x` (as etcdctl prints them).
func parseLeaseID(_ text: String) throws -> Int64 {
  let value: Int64?
  if text.hasPrefix("0x") {
    value = Int64(text.dropFirst(2), radix: 16)
  } else {
    value = Int64(text) ?? Int64(text, radix: 16)
  }
  guard let value, value > 0 else {
    throw ValidationError("\"\(text)\" is not a lease ID (decimal, or hex as etcdctl prints it)")
  }
  return value
}
