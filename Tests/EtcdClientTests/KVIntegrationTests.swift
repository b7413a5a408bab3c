import EtcdClient
import SwitchyardTestSupport
import Testing

@Suite("KV against a real etcd", .serialized)
struct KVIntegrationTests {
  @Test("put, get, prefix reads with options, delete with prev_kv")
  func basicKV() async throws {
    try await EtcdCluster.with(members: 1) { cluster in
      try await withTestClient(endpoints: cluster.endpoints) { etcd in
        let first = try await etcd.put("/kv/a", value: "1")
        try await etcd.put("/kv/b", value: "2")
        try await etcd.put("/kv/c", value: [0, 255, 10])
        let overwrite = try await etcd.put("/kv/a", value: "one", options: PutOptions(prevKV: true))
        #expect(overwrite.prevKV?.valueString == "1")
        #expect(overwrite.header.revision > first.header.revision)

        let all = try await etcd.get(.prefix("/kv/"))
        #expect(all.kvs.map(\.keyString) == ["/kv/a", "/kv/b", "/kv/c"])
        #expect(all.kvs[0].valueString == "one")
        #expect(all.kvs[0].version == 2)
        #expect(all.kvs[2].value == [0, 255, 10])

        let limited = try await etcd.get(.prefix("/kv/"), options: GetOptions(limit: 2))
        #expect(limited.kvs.count == 2 && limited.more && limited.count == 3)
        let keysOnly = try await etcd.get(.prefix("/kv/"), options: GetOptions(keysOnly: true))
        #expect(keysOnly.kvs.allSatisfy { $0.value.isEmpty })
        let counted = try await etcd.get(.prefix("/kv/"), options: GetOptions(countOnly: true))
        #expect(counted.kvs.isEmpty && counted.count == 3)
        let old = try await etcd.get(.key("/kv/a"), options: GetOptions(revision: first.header.revision))
        #expect(old.kvs.first?.valueString == "1")
        let serializable = try await etcd.get(.key("/kv/b"), options: GetOptions(serializable: true))
        #expect(serializable.kvs.first?.valueString == "2")
        #expect(try await etcd.value(of: "/kv/missing") == nil)

        let deleted = try await etcd.delete(.prefix("/kv/"), prevKV: true)
        #expect(deleted.deleted == 3)
        #expect(Set(deleted.prevKVs.map(\.keyString)) == ["/kv/a", "/kv/b", "/kv/c"])
        #expect(try await etcd.get(.prefix("/kv/")).count == 0)
      }
    }
  }

  @Test("put with ignore_value moves a key to a lease; ignore_lease changes the value and keeps the lease")
  func ignoreValueAndLease() async throws {
    try await EtcdCluster.with(members: 1) { cluster in
      try await withTestClient(endpoints: cluster.endpoints) { etcd in
        let lease = try await etcd.grantLease(ttl: 60)
        try await etcd.put("/ignore/k", value: "original")
        try await etcd.put("/ignore/k", value: "", options: PutOptions(lease: lease.id, ignoreValue: true))
        var kv = try #require(try await etcd.value(of: "/ignore/k"))
        #expect(kv.valueString == "original" && kv.lease == lease.id)
        try await etcd.put("/ignore/k", value: "changed", options: PutOptions(ignoreLease: true))
        kv = try #require(try await etcd.value(of: "/ignore/k"))
        #expect(kv.valueString == "changed" && kv.lease == lease.id)
      }
    }
  }

  @Test("transactions compare on value, version, revisions and lease, with nested ops")
  func transactions() async throws {
    try await EtcdCluster.with(members: 1) { cluster in
      try await withTestClient(endpoints: cluster.endpoints) { etcd in
        // Create only if absent.
        let create = Txn(
          compare: [.version("/txn/k", .equal, 0)],
          success: [.put("/txn/k", "v1")],
          failure: [.get(.key("/txn/k"))]
        )
        let created = try await etcd.txn(create)
        #expect(created.succeeded)
        let again = try await etcd.txn(create)
        #expect(!again.succeeded)
        guard case .get(let range)? = again.responses.first else {
          Issue.record("expected a range response, got \(again.responses)")
          return
        }
        #expect(range.kvs.first?.valueString == "v1")

        let modRevision = try #require(try await etcd.value(of: "/txn/k")).modRevision
        let compareAndSwap = try await etcd.txn(
          Txn(
            compare: [.value("/txn/k", .equal, "v1"), .modRevision("/txn/k", .equal, modRevision)],
            success: [.put("/txn/k", "v2"), .delete(.key("/txn/other"))]
          )
        )
        #expect(compareAndSwap.succeeded)
        #expect(try await etcd.value(of: "/txn/k")?.valueString == "v2")

        let lease = try await etcd.grantLease(ttl: 30)
        try await etcd.put("/txn/leased", value: "x", options: PutOptions(lease: lease.id))
        let leaseCheck = try await etcd.txn(
          Txn(
            compare: [.lease("/txn/leased", .equal, lease.id), .createRevision("/txn/k", .greater, 0)],
            success: [.txn(Txn(success: [.put("/txn/nested", "yes")]))]
          )
        )
        #expect(leaseCheck.succeeded)
        guard case .txn(let nested)? = leaseCheck.responses.first else {
          Issue.record("expected a nested txn response")
          return
        }
        #expect(nested.succeeded)
        #expect(try await etcd.value(of: "/txn/nested")?.valueString == "yes")
        let notEqual = try await etcd.txn(Txn(compare: [.value("/txn/k", .notEqual, "v2")]))
        #expect(!notEqual.succeeded)
      }
    }
  }

  @Test("member list, status and compaction; reads below the compaction fail with a typed error")
  func clusterAndCompaction() async throws {
    try await EtcdCluster.with(members: 1) { cluster in
      try await withTestClient(endpoints: cluster.endpoints) { etcd in
        let members = try await etcd.members()
        #expect(members.count == 1)
        let status = try await etcd.status()
        #expect(status.version.hasPrefix("3."))
        #expect(status.leader == status.header.memberID)
        // The member runs the etcd that SWITCHYARD_ETCD_DIR (or PATH) names: `make test` runs this
        // suite against two etcd versions, and this shows which one answered.
        let binary = try await ManagedProcess.run(EtcdCluster.defaultExecutable("etcd"), arguments: ["--version"])
        #expect(binary.contains("etcd Version: \(status.version)"))
        print("etcd under test: \(status.version)")

        var last: Int64 = 0
        for index in 0..<5 { last = try await etcd.put("/compact/k", value: "\(index)").header.revision }
        try await etcd.compact(revision: last - 1)
        do {
          _ = try await etcd.get(.key("/compact/k"), options: GetOptions(revision: last - 3))
          Issue.record("read below the compaction revision succeeded")
        } catch let error as EtcdError {
          #expect(error.code == .compacted)
          #expect(error.call == "KV.Range")
        }
      }
    }
  }
}
