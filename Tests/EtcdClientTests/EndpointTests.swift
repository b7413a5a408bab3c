import GRPCCore
import Testing

@testable import EtcdClient

@Suite("Endpoints, key ranges and backoff")
struct EndpointTests {
  @Test(
    "parses the endpoint forms operators write",
    arguments: [
      ("127.0.0.1:2379", "127.0.0.1", 2379, false),
      ("http://127.0.0.1:22379", "127.0.0.1", 22379, false),
      ("https://etcd.example:2379/", "etcd.example", 2379, true),
      ("[::1]:32379", "::1", 32379, false),
      ("https://[::1]", "::1", 2379, true),
      (" localhost ", "localhost", 2379, false),
    ]
  )
  func parsesEndpoints(text: String, host: String, port: Int, tls: Bool) throws {
    let endpoint = try EtcdEndpoint(parsing: text)
    #expect(endpoint.host == host)
    #expect(endpoint.port == port)
    #expect(endpoint.usesTLS == tls)
  }

  @Test(
    "rejects malformed endpoints with a reason",
    arguments: ["", "ftp://host:1", "host:0", "host:70000", "host:abc", "[::1", "[::1]x", "http://", "a b:1"]
  )
  func rejectsBadEndpoints(text: String) {
    #expect(throws: EtcdError.self) { try EtcdEndpoint(parsing: text) }
    do {
      _ = try EtcdEndpoint(parsing: text)
    } catch {
      #expect(error.code == .invalidArgument)
      #expect(!error.message.isEmpty)
    }
  }

  @Test("parses comma-separated lists and refuses an empty one")
  func parsesLists() throws {
    let endpoints = try EtcdEndpoint.parseList("127.0.0.1:2379, http://127.0.0.1:22379,,127.0.0.1:32379")
    #expect(endpoints.map(\.port) == [2379, 22379, 32379])
    #expect(throws: EtcdError.self) { try EtcdEndpoint.parseList(" , ") }
  }

  @Test("prefix ranges end just past the prefix")
  func prefixEnd() {
    #expect(KeyRange.prefix("/a").rangeEnd == Array("/b".utf8))
    #expect(KeyRange.prefixEnd([0x61, 0xff]) == [0x62])
    #expect(KeyRange.prefixEnd([0xff, 0xff]) == [0])
    #expect(KeyRange.prefix("") == KeyRange(key: [0], rangeEnd: [0]))
    #expect(KeyRange.key("k").rangeEnd.isEmpty)
  }

  @Test("a TCP connection attempt ends just past the kernel's first SYN resend, within the dial timeout")
  func connectAttemptLimit() {
    #expect(EndpointPool.connectAttemptLimit(dialTimeout: .seconds(2)) == .milliseconds(1_100))
    #expect(EndpointPool.connectAttemptLimit(dialTimeout: .seconds(5)) == .milliseconds(2_500))
    #expect(EndpointPool.connectAttemptLimit(dialTimeout: .seconds(1)) == .seconds(1))
  }

  @Test("backoff doubles up to its cap and jitters within bounds")
  func backoff() {
    let backoff = Backoff(initial: .milliseconds(100), maximum: .seconds(1), multiplier: 2, jitter: 0.2)
    #expect(backoff.baseDelay(attempt: 0) == .milliseconds(100))
    #expect(backoff.baseDelay(attempt: 2) == .milliseconds(400))
    #expect(backoff.baseDelay(attempt: 10) == .seconds(1))
    for attempt in 0..<20 {
      let delay = backoff.delay(attempt: attempt)
      let base = backoff.baseDelay(attempt: attempt)
      #expect(delay >= base * 0.8 - .microseconds(1) && delay <= base * 1.2 + .microseconds(1))
    }
  }

  @Test("a stream attempt that already waited out its delay goes again at once; one that failed at once waits")
  func remainingDelay() {
    let backoff = Backoff(initial: .milliseconds(100), maximum: .seconds(1), multiplier: 2, jitter: 0)
    #expect(backoff.remainingDelay(attempt: 10, after: .zero) == .seconds(1))
    #expect(backoff.remainingDelay(attempt: 10, after: .milliseconds(300)) == .milliseconds(700))
    #expect(backoff.remainingDelay(attempt: 10, after: .seconds(2)) == .zero)
    #expect(backoff.remainingDelay(attempt: 0, after: .milliseconds(30)) == .milliseconds(70))
    let jittered = Backoff(initial: .milliseconds(100), maximum: .seconds(1), multiplier: 2, jitter: 0.2)
    for _ in 0..<20 {
      let left = jittered.remainingDelay(attempt: 10, after: .milliseconds(500))
      #expect(left >= .milliseconds(300) - .microseconds(1) && left <= .milliseconds(700) + .microseconds(1))
      #expect(jittered.remainingDelay(attempt: 10, after: .milliseconds(1_300)) == .zero)
    }
  }

  @Test("only failures before sending make a mutation safe to resend")
  func retryClassification() {
    let notSent = RPCErrorFixtures.transientFailure
    let broken = RPCErrorFixtures.streamClosed
    #expect(EtcdClient.shouldRetry(notSent, policy: .mutation, knownHealthy: true))
    #expect(!EtcdClient.shouldRetry(broken, policy: .mutation, knownHealthy: true))
    #expect(EtcdClient.shouldRetry(broken, policy: .idempotent, knownHealthy: true))
    // A read that timed out on a hung member goes on to the next one; a write never does.
    #expect(EtcdClient.shouldRetry(RPCErrorFixtures.timeout, policy: .idempotent, knownHealthy: true))
    #expect(EtcdClient.shouldRetry(RPCErrorFixtures.timeout, policy: .idempotent, knownHealthy: false))
    #expect(!EtcdClient.shouldRetry(RPCErrorFixtures.timeout, policy: .mutation, knownHealthy: false))
    for message in [
      "subchannel isn't ready", "channel is shutdown", "Channel isn't ready, no subchannel available.",
      "Subchannel shutdown and 'wait for ready' isn't enabled.",
    ] {
      #expect(EtcdClient.neverSent(RPCError(code: .unavailable, message: message)), "\(message)")
    }
    #expect(!EtcdClient.neverSent(RPCError(code: .unavailable, message: "connection closed")))
  }

  @Test("writes, transactions and compaction are mutations; reads and lease calls are idempotent")
  func retryPolicies() {
    for call in ["KV.Put", "KV.DeleteRange", "KV.Txn", "KV.Compact"] {
      #expect(EtcdClient.retryPolicy(for: call) == .mutation, "\(call)")
    }
    for call in ["KV.Range", "Lease.LeaseTimeToLive", "Cluster.MemberList", "Maintenance.Status"] {
      #expect(EtcdClient.retryPolicy(for: call) == .idempotent, "\(call)")
    }
  }

  @Test("etcd's error messages map to typed codes")
  func errorMapping() {
    let compacted = EtcdError(
      rpcError: .init(code: .outOfRange, message: "etcdserver: mvcc: required revision has been compacted"),
      endpoint: nil,
      call: "KV.Range"
    )
    #expect(compacted.code == .compacted)
    let lease = EtcdError(
      rpcError: .init(code: .notFound, message: "etcdserver: requested lease not found"),
      endpoint: EtcdEndpoint(host: "127.0.0.1", port: 2379),
      call: "Lease.LeaseRevoke"
    )
    #expect(lease.code == .leaseNotFound)
    #expect(lease.description.contains("Lease.LeaseRevoke via 127.0.0.1:2379"))
    for message in [
      "etcdserver: invalid auth token", "etcdserver: revision of auth store is old", "etcdserver: user name is empty",
      "auth: revision in header is old",
    ] {
      let code: RPCError.Code =
        message.contains("invalid auth token")
        ? .unauthenticated : message.hasPrefix("auth:") ? .unknown : .invalidArgument
      let error = EtcdError(rpcError: .init(code: code, message: message), endpoint: nil, call: "KV.Put")
      #expect(error.code == .invalidToken, "\(message)")
    }
  }
}
