import GRPCCore
import Logging
import Synchronization

// The stream side of the watch manager: one Watch stream at a time, reopened by the shared
// ``StreamReconnector``, and the watchdog that gives up on a member that stopped answering.
extension WatchManager {
  /// Makes `requests` the current stream's and queues every watcher's create on it, in id order.
  func beginStream(on endpoint: EtcdEndpoint, requests: AsyncStream<Etcdserverpb_WatchRequest>.Continuation) {
    let now = clock.now
    state.withLock { state in
      state.requests = requests
      state.endpoint = endpoint
      state.opens += 1
      state.lastMessage = now
      state.pendingCreates = []
      for id in state.watchers.keys.sorted() {
        guard let watcher = state.watchers[id] else { continue }
        state.watchers[id]?.fragments = []
        state.pendingCreates.append(id)
        requests.yield(Self.createRequest(id: id, watcher: watcher))
      }
    }
  }

  private struct MemberHung: Error, CustomStringConvertible {
    var cause: String
    var description: String { "the member stopped answering: \(cause)" }
  }

  private struct RefreshToken: Error, CustomStringConvertible {
    var description: String { "a watch create was refused with the stream's token" }
  }

  func run(client: EtcdClient) async {
    // Whatever broke, the member is suspect: resume on the next one.
    await StreamReconnector(backoff: client.configuration.backoff, clock: clock).run(
      members: ClientMembers(client: client),
      wakeups: wakeups,
      isShutdown: { isShutdown },
      hasWork: { state.withLock { !$0.watchers.isEmpty } },
      attempt: { await self.openStream(client: client, member: $0) }
    )
  }

  /// Runs one Watch stream on `member`, re-creating every watcher on it, until it breaks, its
  /// member hangs or etcd refuses its token.
  private func openStream(client: EtcdClient, member: MemberConnection) async -> StreamAttemptEnd {
    logger.debug("opening watch stream", metadata: ["etcd.endpoint": "\(member.endpoint)"])
    let (requests, continuation) = AsyncStream<Etcdserverpb_WatchRequest>.makeStream()
    let healthy = Flag()
    var refreshToken = false
    do {
      let metadata = try await client.streamMetadata(member: member)
      beginStream(on: member.endpoint, requests: continuation)
      try await withThrowingTaskGroup(of: Void.self) { group in
        group.addTask {
          try await member.watch.watch(
            metadata: metadata,
            options: client.callOptions(timeout: nil),
            requestProducer: { writer in
              for await request in requests {
                try await writer.write(request)
              }
            },
            onResponse: { response in
              for try await message in response.messages {
                self.logger.trace(
                  "watch response",
                  metadata: [
                    "etcd.watch_id": "\(message.watchID)", "etcd.revision": "\(message.header.revision)",
                    "etcd.events": "\(message.events.count)", "etcd.created": "\(message.created)",
                    "etcd.canceled": "\(message.canceled)",
                  ]
                )
                switch self.handle(message) {
                case .proceed: healthy.set()
                case .refreshToken: throw RefreshToken()
                }
              }
            }
          )
        }
        group.addTask { try await self.watchdog(client: client, member: member) }
        _ = try await group.next()
        group.cancelAll()
      }
    } catch is RefreshToken {
      refreshToken = true
    } catch {
      if let rpc = error as? RPCError, rpc.code == .unauthenticated {
        refreshToken = true
      }
      if !isShutdown {
        // Once per outage: a stream that never became healthy is one more try of the same one.
        logger.log(
          level: healthy.isSet ? .info : .debug,
          "watch stream broke; resuming on a healthy member",
          metadata: ["etcd.endpoint": "\(member.endpoint)", "error": "\(error)"]
        )
      }
    }
    state.withLock { $0.requests = nil }
    continuation.finish()
    return refreshToken ? .tokenRefused(healthy: healthy.isSet) : .broke(healthy: healthy.isSet)
  }

  /// Watches the stream's member while the stream is quiet, and throws when it stops answering, so
  /// that the stream moves to another member:
  /// - after `keepAliveInterval` of silence, an HTTP/2 PING must be acknowledged within
  ///   `keepAliveTimeout` (a dead connection, a frozen process, a network that drops everything);
  /// - after `watchProgressInterval` of silence, a progress request goes out (it only reports how
  ///   current the watches are: newer etcd releases may not answer it) and the member must answer a
  ///   status call within `min(dialTimeout, watchProgressInterval)`.
  private func watchdog(client: EtcdClient, member: MemberConnection) async throws {
    let configuration = client.configuration
    let interval = configuration.watchProgressInterval
    let tick = min(interval / 4, configuration.keepAliveInterval / 4, .seconds(1))
    var lastProbe: ContinuousClock.Instant?
    var lastPing: ContinuousClock.Instant?
    while true {
      try await Task.sleep(for: tick)
      let now = clock.now
      let silence = state.withLock { state -> Duration in
        guard let last = state.lastMessage, !state.watchers.isEmpty else { return .zero }
        return last.duration(to: now)
      }
      if silence > configuration.keepAliveInterval,
        lastPing.map({ $0.duration(to: now) > configuration.keepAliveInterval }) ?? true
      {
        lastPing = now
        guard await client.pool.ping(member, timeout: configuration.keepAliveTimeout) else {
          throw MemberHung(cause: "no HTTP/2 PING acknowledgement within \(configuration.keepAliveTimeout)")
        }
      }
      guard silence > interval, lastProbe.map({ $0.duration(to: now) > interval }) ?? true else { continue }
      lastProbe = now
      state.withLock { state in
        var request = Etcdserverpb_WatchRequest()
        request.progressRequest = Etcdserverpb_WatchProgressRequest()
        state.requests?.yield(request)
      }
      if let failure = await probe(client: client, member: member, timeout: min(configuration.dialTimeout, interval)) {
        throw MemberHung(cause: failure)
      }
    }
  }

  /// Asks `member` for its status; returns why it is considered hung, or nil when it answered
  /// (any reply from etcd, even an error, shows the process is alive).
  private func probe(client: EtcdClient, member: MemberConnection, timeout: Duration) async -> String? {
    do {
      _ = try await member.maintenance.status(
        Etcdserverpb_StatusRequest(), options: client.callOptions(timeout: timeout))
      return nil
    } catch let error as RPCError where error.code == .deadlineExceeded || error.code == .unavailable {
      return "\(error.code): \(error.message)"
    } catch {
      // Any other answer (an error from etcd, or our own cancellation) is no sign of a hung member.
      return nil
    }
  }
}
