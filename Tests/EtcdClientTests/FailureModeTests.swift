import EtcdClient
import Foundation
import SwitchyardTestSupport
import Testing

/// The client under the ways etcd fails in production: refused watches, hung members, big replies,
/// tokens that expire or go stale. Each test fails without the behaviour it names.
@Suite("Failure modes against a real etcd", .serialized, .timeLimit(.minutes(2)))
struct FailureModeTests {
  // MARK: - Refused watches and tokens

  @Test("a watch idle past its token's TTL, whose stream then breaks, still delivers every later event")
  func watchSurvivesTokenExpiry() async throws {
    // Simple tokens expire after --auth-token-ttl seconds without use, and a restarted member forgets
    // them all: the re-created watch is refused unless the client fetches a new token.
    try await EtcdCluster.with(members: 1, options: .init(extraArguments: ["--auth-token-ttl", "1"])) { cluster in
      try await cluster.enableAuth(rootPassword: "pw")
      try await withTestClient(endpoints: cluster.endpoints) {
        $0.credentials = .init(username: "root", password: "pw")
      } _: { etcd in
        let start = try await etcd.put("/tok/0", value: "0").header.revision + 1
        let watch = etcd.watch(.prefix("/tok/k"), options: WatchOptions(startRevision: start))
        let collector = Task { try await collect(watch, timeout: .seconds(60)) { $0.count >= 5 } }
        try await etcd.put("/tok/k1", value: "1")
        try await Task.sleep(for: .seconds(3))
        try await cluster.stop(member: 0)
        try await cluster.start(member: 0)
        for index in 2...5 {
          try await etcd.put("/tok/k\(index)", value: "\(index)")
        }
        let events = try await collector.value
        #expect(events.map(\.kv.keyString) == (1...5).map { "/tok/k\($0)" })
      }
    }
  }

  @Test("a user who may not read the range gets permissionDenied at once, not a silent watch")
  func watchPermissionDenied() async throws {
    try await EtcdCluster.with(members: 1) { cluster in
      try await enableAuth(cluster, user: "reader", password: "pw2", may: "read", prefix: "/open/")
      try await withTestClient(endpoints: cluster.endpoints) {
        $0.credentials = .init(username: "reader", password: "pw2")
      } _: { etcd in
        let clock = ContinuousClock()
        let started = clock.now
        do {
          for try await _ in etcd.watch(.prefix("/secret/")) {
            Issue.record("a refused watch delivered a response")
          }
          Issue.record("a refused watch ended without an error")
        } catch let error as EtcdError {
          #expect(error.code == .permissionDenied)
        }
        #expect(started.duration(to: clock.now) < .seconds(5))
        // The same client's permitted watch works.
        let allowed = etcd.watch(.prefix("/open/"), options: WatchOptions(notifyCreated: true))
        var iterator = allowed.makeAsyncIterator()
        #expect(try await iterator.next()?.isCreated == true)
      }
    }
  }

  @Test("a change to users or roles (auth store revision) refreshes the token for calls and new watches")
  func staleAuthRevision() async throws {
    // JWT tokens carry the auth store's revision (simple tokens are looked up afresh), so a change to
    // users or roles makes every token issued before it "old".
    let keys = try TemporaryDirectory()
    defer { keys.remove() }
    let privateKey = keys.path("jwt.key")
    let publicKey = keys.path("jwt.pub")
    try await ManagedProcess.run("openssl", arguments: ["genrsa", "-out", privateKey, "2048"])
    try await ManagedProcess.run("openssl", arguments: ["rsa", "-in", privateKey, "-pubout", "-out", publicKey])
    let jwt = "jwt,pub-key=\(publicKey),priv-key=\(privateKey),sign-method=RS256,ttl=10m"
    try await EtcdCluster.with(members: 1, options: .init(extraArguments: ["--auth-token", jwt])) { cluster in
      try await enableAuth(cluster, user: "app", password: "pw3", may: "readwrite", prefix: "/app/")
      try await withTestClient(endpoints: cluster.endpoints) {
        $0.credentials = .init(username: "app", password: "pw3")
      } _: { etcd in
        try await etcd.put("/app/1", value: "1")
        let first = etcd.watch(.prefix("/app/w"), options: WatchOptions(notifyCreated: true))
        var firstIterator = first.makeAsyncIterator()
        #expect(try await firstIterator.next()?.isCreated == true)
        // Any change to the auth store makes every token issued before it "old".
        try await cluster.addUser(name: "someone-else", password: "x")
        try await etcd.put("/app/2", value: "2")
        #expect(try await etcd.value(of: "/app/2")?.valueString == "2")
        // A watch created now goes out on the stream opened with the old token.
        let second = etcd.watch(.prefix("/app/w"), options: WatchOptions(notifyCreated: true))
        let collector = Task {
          var events: [String] = []
          for try await response in second {
            events += response.events.map(\.kv.keyString)
            if !events.isEmpty { return events }
          }
          return events
        }
        // Give the second watch's create time to be refused and sent again with a new token.
        try await Task.sleep(for: .milliseconds(500))
        try await etcd.put("/app/w1", value: "x")
        #expect(try await firstIterator.next()?.events.map(\.kv.keyString) == ["/app/w1"])
        #expect(try await collector.value == ["/app/w1"])
      }
    }
  }

  /// Enables authentication (root's password `pw`) and adds `user` with a role that may `permission`
  /// (`read`, `readwrite`) the keys under `prefix`.
  private func enableAuth(
    _ cluster: EtcdCluster,
    user: String,
    password: String,
    may permission: String,
    prefix: String
  ) async throws {
    try await cluster.enableAuth(rootPassword: "pw")
    let root = EtcdCluster.Credentials(user: "root", password: "pw")
    let role = "\(user)-role"
    try await cluster.etcdctl(["role", "add", role], user: root)
    try await cluster.etcdctl(["role", "grant-permission", role, permission, prefix, "--prefix"], user: root)
    try await cluster.addUser(name: user, password: password, roles: [role])
  }

  // MARK: - Hung members

  @Test("freezing the member of the keepalive stream right after a renewal: the 10 s lease lives on")
  func keepAliveMovesOffFrozenMember() async throws {
    try await EtcdCluster.with(members: 3) { cluster in
      // A 5 s dial timeout leaves TTL/4 (2.5 s) as the stall limit.
      try await withTestClient(endpoints: cluster.endpoints, configure: { $0.dialTimeout = .seconds(5) }) { etcd in
        let lease = try await etcd.grantLease(ttl: 10)
        try await etcd.put("/frozen/key", value: "x", options: PutOptions(lease: lease.id))
        let renewals = etcd.keepAlive(lease)
        var iterator = renewals.makeAsyncIterator()
        _ = try await iterator.next()
        let keeper = Task { while try await iterator.next() != nil {} }
        defer { keeper.cancel() }
        let endpoint = try #require(etcd.keepAliveStream.endpoint)
        let frozen = try #require(cluster.endpoints.firstIndex(of: endpoint.description))
        try await cluster.whilePaused(member: frozen) { () async throws in
          try await Task.sleep(for: .seconds(20))
          let others = cluster.endpoints.indices.filter { $0 != frozen }.map { cluster.endpoints[$0] }
          try await withTestClient(endpoints: others) { observer in
            let info = try await observer.timeToLive(lease: lease.id)
            #expect(info.ttl > 0, "the lease expired while two members were healthy")
            #expect(try await observer.value(of: "/frozen/key") != nil)
          }
          #expect(etcd.keepAliveStream.endpoint != endpoint)
        }
      }
    }
  }

  @Test("a frozen member under a watch is found by HTTP/2 pings alone; the watch moves with no gap")
  func watchLeavesFrozenMemberByPings() async throws {
    try await watchLeavesFrozenMember(within: .seconds(25)) {
      // Progress requests and probes are out of the picture: only keepalive pings can tell.
      $0.watchProgressInterval = .seconds(600)
      $0.keepAliveInterval = .seconds(5)
      $0.keepAliveTimeout = .seconds(3)
    }
  }

  @Test("a frozen member under a quiet watch is found by the status probe after a silent spell")
  func watchLeavesFrozenMemberByProbe() async throws {
    try await watchLeavesFrozenMember(within: .seconds(12)) {
      $0.watchProgressInterval = .seconds(1)
      $0.keepAliveInterval = .seconds(600)
    }
  }

  private func watchLeavesFrozenMember(
    within limit: Duration,
    configure: @escaping (inout EtcdConfiguration) -> Void
  ) async throws {
    try await EtcdCluster.with(members: 3) { cluster in
      try await withTestClient(endpoints: cluster.endpoints, configure: configure) { etcd in
        let start = try await etcd.put("/hang/start", value: "").header.revision + 1
        let watch = etcd.watch(.prefix("/hang/k"), options: WatchOptions(startRevision: start))
        let collector = Task { try await collect(watch, timeout: limit) { $0.count >= 10 } }
        try await etcd.put("/hang/k00", value: "0")
        _ = await eventually(timeout: .seconds(5)) { etcd.watchStream.endpoint != nil }
        let endpoint = try #require(etcd.watchStream.endpoint)
        let frozen = try #require(cluster.endpoints.firstIndex(of: endpoint.description))
        try await cluster.whilePaused(member: frozen) { () async throws in
          let others = cluster.endpoints.indices.filter { $0 != frozen }.map { cluster.endpoints[$0] }
          // If the frozen member led, the test's own writes must wait for the election.
          try await cluster.waitHealthy(member: frozen == 0 ? 1 : 0)
          try await withTestClient(endpoints: others) { writer in
            for index in 1..<10 { try await writer.put("/hang/k0\(index)", value: "\(index)") }
          }
          let events = try await collector.value
          #expect(events.map(\.kv.keyString) == (0..<10).map { "/hang/k0\($0)" })
          #expect(etcd.watchStream.endpoint != endpoint)
        }
      }
    }
  }

  @Test("a quiet watch on a quiet cluster keeps its one stream")
  func quietWatchKeepsItsStream() async throws {
    try await EtcdCluster.with(members: 1) { cluster in
      try await withTestClient(endpoints: cluster.endpoints, configure: { $0.watchProgressInterval = .seconds(1) }) {
        etcd in
        let next = try await etcd.put("/quiet/x", value: "").header.revision + 1
        let watch = etcd.watch(.prefix("/quiet/k"), options: WatchOptions(startRevision: next))
        let holder = Task { for try await _ in watch {} }
        defer { holder.cancel() }
        try await Task.sleep(for: .seconds(6))
        #expect(etcd.watchStream.opens == 1)
      }
    }
  }

  @Test("a read on a member that answered before and then hangs moves on within the call's budget")
  func hungHealthyMember() async throws {
    try await EtcdCluster.with(members: 3) { cluster in
      try await withTestClient(endpoints: cluster.endpoints) { etcd in
        try await etcd.put("/hung/k", value: "v")
        let preferred = try await etcd.status().endpoint
        let frozen = try #require(cluster.endpoints.firstIndex(of: preferred.description))
        try await cluster.whilePaused(member: frozen) { () async throws in
          // The whole call has a 10 s budget; the hung member may take only part of it.
          #expect(try await etcd.value(of: "/hung/k")?.valueString == "v")
          #expect(try await etcd.status().endpoint != preferred)
        }
      }
    }
  }

  // MARK: - Big replies and watches from now

  @Test("replies over 4 MiB are read whole, and in pages at one revision")
  func bigValues() async throws {
    try await EtcdCluster.with(members: 1) { cluster in
      try await withTestClient(endpoints: cluster.endpoints) { etcd in
        let big = String(repeating: "x", count: 1_500_000)
        for index in 1...3 { try await etcd.put("/big/huge-\(index)", value: big) }
        for index in 1...5 { try await etcd.put("/big/small-\(index)", value: "\(index)") }
        let whole = try await etcd.get(.prefix("/big/"))
        #expect(whole.kvs.count == 8)

        let revision = whole.header.revision
        try await etcd.put("/big/later", value: "not in the snapshot")
        let paged = try await etcd.getPaginated(.prefix("/big/"), pageSize: 2, options: GetOptions(revision: revision))
        #expect(paged.kvs.map(\.keyString) == whole.kvs.map(\.keyString))
        #expect(!paged.more)
        #expect(paged.kvs.filter { $0.value.count == 1_500_000 }.count == 3)
        let latest = try await etcd.getPaginated(.prefix("/big/"), pageSize: 3)
        #expect(latest.kvs.count == 9)
        let limited = try await etcd.getPaginated(.prefix("/big/"), pageSize: 2, options: GetOptions(limit: 5))
        #expect(limited.kvs.count == 5 && limited.more)
      }
    }
  }

  @Test("a watch from now can be awaited until it is created; the next write is delivered")
  func watchFromNowCreatedNotify() async throws {
    try await EtcdCluster.with(members: 1) { cluster in
      try await withTestClient(endpoints: cluster.endpoints) { etcd in
        let watch = etcd.watch(.prefix("/now/"), options: WatchOptions(notifyCreated: true))
        var iterator = watch.makeAsyncIterator()
        let created = try #require(try await iterator.next())
        #expect(created.isCreated && created.events.isEmpty && !created.isProgressNotification)
        try await etcd.put("/now/a", value: "1")
        #expect(try await iterator.next()?.events.map(\.kv.keyString) == ["/now/a"])
      }
    }
  }
}
