import GRPCCore
import Logging
import Synchronization

/// Renews every kept-alive lease of one client over a single LeaseKeepAlive stream.
///
/// A ticker sends each lease's renewal every TTL/3 and reports a lease whose TTL ran out without
/// a reply; the stream loop keeps one stream open on the preferred member and moves it to another
/// member when it breaks or stalls. A stream stalls when a renewal stays unanswered for
/// `min(dialTimeout, TTL/4)` of the shortest lease: a frozen member is left well before any lease
/// can run out. Leases are never dropped silently: each ends with an error.
final class KeepAliveManager: Sendable {
  private struct Entry {
    var lease: Lease
    var ttl: Int64
    var continuation: AsyncThrowingStream<LeaseRenewal, any Error>.Continuation
    var deadline: ContinuousClock.Instant
    var nextSend: ContinuousClock.Instant
  }

  private struct State {
    var entries: [Int: Entry] = [:]
    var nextToken = 0
    var requests: AsyncStream<Int64>.Continuation?
    var endpoint: EtcdEndpoint?
    var opens = 0
    /// When a renewal was sent on the current stream and not yet answered.
    var oldestUnanswered: ContinuousClock.Instant?
    var isShutdown = false
  }

  private let state = Mutex(State())
  private let logger: Logger
  private let wakeups: AsyncStream<Void>
  private let wake: AsyncStream<Void>.Continuation
  private let clock = ContinuousClock()

  init(logger: Logger) {
    self.logger = logger
    (wakeups, wake) = AsyncStream.makeStream(bufferingPolicy: .bufferingNewest(1))
  }

  func add(lease: Lease, continuation: AsyncThrowingStream<LeaseRenewal, any Error>.Continuation) -> Int {
    let now = clock.now
    let (token, shutdown) = state.withLock { state -> (Int, Bool) in
      let token = state.nextToken
      state.nextToken += 1
      guard !state.isShutdown else { return (token, true) }
      state.entries[token] = Entry(
        lease: lease,
        ttl: lease.ttl,
        continuation: continuation,
        deadline: now.advanced(by: .seconds(max(lease.ttl, 1))),
        nextSend: now
      )
      return (token, false)
    }
    if shutdown {
      continuation.finish(throwing: EtcdError(code: .cancelled, message: "the client is shut down"))
    }
    wake.yield()
    return token
  }

  var streamStatus: StreamStatus {
    state.withLock { StreamStatus(endpoint: $0.requests == nil ? nil : $0.endpoint, opens: $0.opens) }
  }

  /// How long a renewal may stay unanswered before the stream is given up on.
  func stallTimeout(dialTimeout: Duration) -> Duration {
    let shortestTTL = state.withLock { $0.entries.values.map(\.ttl).min() } ?? 0
    guard shortestTTL > 0 else { return dialTimeout }
    return min(dialTimeout, .milliseconds(shortestTTL * 1000 / 4))
  }

  func remove(_ token: Int) {
    state.withLock { _ = $0.entries.removeValue(forKey: token) }
  }

  func shutdown() {
    let entries = state.withLock { state -> [Entry] in
      state.isShutdown = true
      state.requests?.finish()
      defer { state.entries = [:] }
      return Array(state.entries.values)
    }
    for entry in entries {
      entry.continuation.finish(throwing: EtcdError(code: .cancelled, message: "the client is shut down"))
    }
    wake.finish()
  }

  private var isShutdown: Bool { state.withLock { $0.isShutdown } }

  func run(client: EtcdClient) async {
    await withDiscardingTaskGroup { group in
      group.addTask { await self.tick() }
      group.addTask { await self.streamLoop(client: client) }
    }
  }

  /// Sends due renewals and expires leases whose deadline passed.
  private func tick() async {
    while !isShutdown {
      let now = clock.now
      let expired = state.withLock { state -> [(Entry, Int)] in
        var expired: [(Entry, Int)] = []
        for (token, var entry) in state.entries {
          if now >= entry.deadline {
            expired.append((entry, token))
            continue
          }
          if now >= entry.nextSend, let requests = state.requests {
            requests.yield(entry.lease.id)
            if state.oldestUnanswered == nil { state.oldestUnanswered = now }
            // Without a reply, try again soon; a reply moves this to TTL/3.
            entry.nextSend = now.advanced(by: .milliseconds(500))
            state.entries[token] = entry
          }
        }
        for (_, token) in expired { state.entries.removeValue(forKey: token) }
        return expired
      }
      for (entry, _) in expired {
        logger.warning(
          "lease renewal deadline passed",
          metadata: ["etcd.lease": "\(entry.lease.id)", "etcd.ttl": "\(entry.ttl)"]
        )
        entry.continuation.finish(
          throwing: EtcdError(
            code: .leaseRenewalDeadlinePassed,
            message: "no keepalive reply for lease \(entry.lease.id) within its TTL of \(entry.ttl) s; it may be lost",
            call: "Lease.LeaseKeepAlive",
            leaseID: entry.lease.id
          )
        )
      }
      try? await Task.sleep(for: .milliseconds(100))
    }
  }

  private func handle(_ reply: Etcdserverpb_LeaseKeepAliveResponse) {
    let now = clock.now
    let (renewed, expired) = state.withLock { state -> ([Entry], [Entry]) in
      state.oldestUnanswered = nil
      var renewed: [Entry] = []
      var expired: [Entry] = []
      for (token, var entry) in state.entries where entry.lease.id == reply.id {
        if reply.ttl <= 0 {
          expired.append(entry)
          state.entries.removeValue(forKey: token)
        } else {
          entry.ttl = reply.ttl
          entry.deadline = now.advanced(by: .seconds(reply.ttl))
          entry.nextSend = now.advanced(by: .milliseconds(max(reply.ttl * 1000 / 3, 100)))
          state.entries[token] = entry
          renewed.append(entry)
        }
      }
      return (renewed, expired)
    }
    let renewal = LeaseRenewal(id: reply.id, ttl: reply.ttl, revision: reply.header.revision)
    for entry in renewed { entry.continuation.yield(renewal) }
    for entry in expired {
      entry.continuation.finish(
        throwing: EtcdError(
          code: .leaseExpired,
          message: "etcd reports lease \(reply.id) expired or revoked",
          call: "Lease.LeaseKeepAlive",
          leaseID: reply.id
        )
      )
    }
  }

  private struct Stalled: Error, CustomStringConvertible {
    var after: Duration
    var description: String { "a renewal stayed unanswered for \(after)" }
  }

  private func streamLoop(client: EtcdClient) async {
    // Whatever ends the stream (a stall, a broken connection, a member without a leader), the
    // member is suspect: the next stream opens on another one.
    await StreamReconnector(backoff: client.configuration.backoff, clock: clock).run(
      members: ClientMembers(client: client),
      wakeups: wakeups,
      isShutdown: { isShutdown },
      hasWork: { state.withLock { !$0.entries.isEmpty } },
      attempt: { await self.openStream(client: client, member: $0) }
    )
  }

  /// Runs one LeaseKeepAlive stream on `member` until it breaks or stalls.
  private func openStream(client: EtcdClient, member: MemberConnection) async -> StreamAttemptEnd {
    let (requests, continuation) = AsyncStream<Int64>.makeStream()
    let answered = Flag()
    do {
      let metadata = try await client.streamMetadata(member: member)
      state.withLock { state in
        state.requests = continuation
        state.endpoint = member.endpoint
        state.opens += 1
        state.oldestUnanswered = nil
        let now = clock.now
        for token in state.entries.keys { state.entries[token]?.nextSend = now }
      }
      try await withThrowingTaskGroup(of: Void.self) { group in
        group.addTask {
          try await member.lease.leaseKeepAlive(
            metadata: metadata,
            options: client.callOptions(timeout: nil),
            requestProducer: { writer in
              for await id in requests {
                var request = Etcdserverpb_LeaseKeepAliveRequest()
                request.id = id
                try await writer.write(request)
              }
            },
            onResponse: { response in
              for try await reply in response.messages {
                answered.set()
                self.handle(reply)
              }
            }
          )
        }
        group.addTask {
          // A stream that takes renewals but never answers is as good as dead: its member hangs.
          while true {
            try await Task.sleep(for: .milliseconds(100))
            let stallTimeout = self.stallTimeout(dialTimeout: client.configuration.dialTimeout)
            let since = self.state.withLock { $0.oldestUnanswered }
            if let since, since.duration(to: self.clock.now) > stallTimeout { throw Stalled(after: stallTimeout) }
          }
        }
        _ = try await group.next()
        group.cancelAll()
      }
    } catch {
      // The token is dropped here, but the stream still counts as broken: the next one opens on
      // another member after a backoff.
      if let rpc = error as? RPCError, rpc.code == .unauthenticated {
        await ClientMembers(client: client).dropToken(of: member)
      }
      if !isShutdown {
        // Once per outage: a stream that never became healthy is one more try of the same one.
        logger.log(
          level: answered.isSet ? .info : .debug,
          "lease keepalive stream broke; moving to another member",
          metadata: ["etcd.endpoint": "\(member.endpoint)", "error": "\(error)"]
        )
      }
    }
    state.withLock { $0.requests = nil }
    continuation.finish()
    return .broke(healthy: answered.isSet)
  }
}
