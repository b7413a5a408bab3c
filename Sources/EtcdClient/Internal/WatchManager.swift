import Foundation
import GRPCCore
import Logging
import Synchronization

/// Multiplexes every watch of one client over a single Watch stream.
///
/// Each watcher remembers the next revision it needs. When the stream breaks or stalls, a new one
/// is opened on a healthy member and every watcher is re-created from that revision, so delivery
/// is exactly once and in order across reconnects. The stream carries etcd's `hasleader`
/// requirement, so a member cut off from its cluster ends the stream instead of holding it
/// silently.
final class WatchManager: Sendable {
  struct Watcher {
    var range: KeyRange
    var options: WatchOptions
    var continuation: AsyncThrowingStream<WatchResponse, any Error>.Continuation
    /// Next revision to deliver; 0 until the first creation tells us "now".
    var nextRevision: Int64
    var fragments: [WatchEvent] = []
  }

  private struct State {
    var watchers: [Int64: Watcher] = [:]
    var nextID: Int64 = 1
    var requests: AsyncStream<Etcdserverpb_WatchRequest>.Continuation?
    var endpoint: EtcdEndpoint?
    var lastMessage: ContinuousClock.Instant?
    var progressRequestedAt: ContinuousClock.Instant?
    /// Set by a caller's progress request: the next broadcast notification goes to every watcher,
    /// not only to those that asked for progress notifications.
    var progressRequestedByCaller = false
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

  func add(
    range: KeyRange,
    options: WatchOptions,
    continuation: AsyncThrowingStream<WatchResponse, any Error>.Continuation
  ) -> Int64 {
    let (id, shutdown) = state.withLock { state -> (Int64, Bool) in
      let id = state.nextID
      state.nextID += 1
      guard !state.isShutdown else { return (id, true) }
      let watcher = Watcher(
        range: range,
        options: options,
        continuation: continuation,
        nextRevision: options.startRevision
      )
      state.watchers[id] = watcher
      state.requests?.yield(Self.createRequest(id: id, watcher: watcher))
      return (id, false)
    }
    if shutdown {
      continuation.finish(throwing: EtcdError(code: .cancelled, message: "the client is shut down", call: "Watch"))
    }
    wake.yield()
    return id
  }

  func remove(_ id: Int64) {
    state.withLock { state in
      guard state.watchers.removeValue(forKey: id) != nil else { return }
      var request = Etcdserverpb_WatchRequest()
      request.cancelRequest.watchID = id
      state.requests?.yield(request)
    }
  }

  func requestProgress() {
    state.withLock { state in
      state.progressRequestedByCaller = true
      var request = Etcdserverpb_WatchRequest()
      request.progressRequest = Etcdserverpb_WatchProgressRequest()
      state.requests?.yield(request)
    }
  }

  func shutdown() {
    let watchers = state.withLock { state -> [Watcher] in
      state.isShutdown = true
      state.requests?.finish()
      defer { state.watchers = [:] }
      return Array(state.watchers.values)
    }
    for watcher in watchers {
      watcher.continuation.finish(
        throwing: EtcdError(code: .cancelled, message: "the client is shut down", call: "Watch")
      )
    }
    wake.finish()
  }

  private var isShutdown: Bool { state.withLock { $0.isShutdown } }

  static func createRequest(id: Int64, watcher: Watcher) -> Etcdserverpb_WatchRequest {
    var create = Etcdserverpb_WatchCreateRequest()
    create.key = Data(watcher.range.key)
    create.rangeEnd = Data(watcher.range.rangeEnd)
    create.startRevision = watcher.nextRevision
    create.prevKv = watcher.options.prevKV
    create.progressNotify = watcher.options.progressNotify
    create.fragment = true
    create.watchID = id
    var filters: [Etcdserverpb_WatchCreateRequest.FilterType] = []
    if watcher.options.noPut { filters.append(.noput) }
    if watcher.options.noDelete { filters.append(.nodelete) }
    create.filters = filters
    var request = Etcdserverpb_WatchRequest()
    request.createRequest = create
    return request
  }

  // MARK: - Responses

  /// Applies one response to the watchers; returns true when it shows the stream is healthy.
  @discardableResult
  func handle(_ response: Etcdserverpb_WatchResponse) -> Bool {
    // Finishing a stream runs its termination handler, which takes the lock: do it after.
    var ended: (AsyncThrowingStream<WatchResponse, any Error>.Continuation, EtcdError)?
    let healthy = applyLocked(response, ended: &ended)
    if let (continuation, error) = ended { continuation.finish(throwing: error) }
    return healthy
  }

  private func applyLocked(
    _ response: Etcdserverpb_WatchResponse,
    ended: inout (AsyncThrowingStream<WatchResponse, any Error>.Continuation, EtcdError)?
  ) -> Bool {
    let now = clock.now
    return state.withLock { state -> Bool in
      state.lastMessage = now
      state.progressRequestedAt = nil
      let endpoint = state.endpoint
      let revision = response.header.revision

      if response.watchID == -1 {
        // A requested progress notification, broadcast to every watcher. etcd 3.4 sends it without
        // waiting for slow watchers to catch up, so it must not move any watcher's resume point.
        let everyone = state.progressRequestedByCaller
        state.progressRequestedByCaller = false
        for watcher in state.watchers.values where watcher.nextRevision > 0 {
          if everyone || watcher.options.progressNotify {
            watcher.continuation.yield(WatchResponse(revision: revision, events: []))
          }
        }
        return true
      }
      guard var watcher = state.watchers[response.watchID] else { return true }

      if response.compactRevision > 0 {
        state.watchers.removeValue(forKey: response.watchID)
        ended = (
          watcher.continuation, EtcdError.compacted(compactRevision: response.compactRevision, endpoint: endpoint)
        )
        return true
      }
      if response.canceled {
        state.watchers.removeValue(forKey: response.watchID)
        let reason = response.cancelReason
        let code: EtcdError.Code = reason.contains("permission denied") ? .permissionDenied : .watchCanceled
        let error = EtcdError(
          code: code,
          message: reason.isEmpty ? "etcd cancelled the watch" : reason,
          endpoint: endpoint,
          call: "Watch"
        )
        ended = (watcher.continuation, error)
        return true
      }
      if response.created {
        if watcher.nextRevision == 0 { watcher.nextRevision = revision + 1 }
        state.watchers[response.watchID] = watcher
        return true
      }

      watcher.fragments.append(contentsOf: response.events.map(WatchEvent.init))
      if response.fragment {
        state.watchers[response.watchID] = watcher
        return true
      }
      // Never deliver a revision twice, whatever the server resends after a resume.
      let events = watcher.fragments.filter { $0.kv.modRevision >= watcher.nextRevision }
      watcher.fragments = []
      if let last = events.last {
        watcher.nextRevision = last.kv.modRevision + 1
        watcher.continuation.yield(WatchResponse(revision: revision, events: events))
      } else if response.events.isEmpty {
        // A per-watcher progress notification: etcd sends it only to watchers that are in sync.
        watcher.nextRevision = max(watcher.nextRevision, revision + 1)
        watcher.continuation.yield(WatchResponse(revision: revision, events: []))
      }
      state.watchers[response.watchID] = watcher
      return true
    }
  }

  // MARK: - Stream

  private struct Stalled: Error {}

  func run(client: EtcdClient) async {
    var attempt = 0
    var waiter = wakeups.makeAsyncIterator()
    while !isShutdown {
      if state.withLock({ $0.watchers.isEmpty }) {
        guard await waiter.next() != nil else { return }
        continue
      }
      let member = client.pool.preferred()
      logger.debug("opening watch stream", metadata: ["etcd.endpoint": "\(member.endpoint)"])
      let (requests, continuation) = AsyncStream<Etcdserverpb_WatchRequest>.makeStream()
      state.withLock { state in
        state.requests = continuation
        state.endpoint = member.endpoint
        state.lastMessage = clock.now
        state.progressRequestedAt = nil
        for (id, watcher) in state.watchers {
          state.watchers[id]?.fragments = []
          continuation.yield(Self.createRequest(id: id, watcher: watcher))
        }
      }
      let healthy = Flag()
      do {
        var metadata: Metadata = ["hasleader": "true"]
        if let token = try await client.tokens.token(client: client, member: member) {
          metadata.addString(token, forKey: "token")
        }
        let callMetadata = metadata
        try await withThrowingTaskGroup(of: Void.self) { group in
          group.addTask {
            var options = CallOptions.defaults
            options.waitForReady = false
            try await member.watch.watch(
              metadata: callMetadata,
              options: options,
              requestProducer: { writer in
                for await request in requests {
                  self.logger.trace(
                    "watch request", metadata: ["etcd.request": "\(request.requestUnion.map { "\($0)" } ?? "")"])
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
                    ]
                  )
                  if self.handle(message) { healthy.set() }
                }
              }
            )
          }
          group.addTask { try await self.watchdog(interval: client.configuration.watchProgressInterval) }
          _ = try await group.next()
          group.cancelAll()
        }
      } catch {
        if let rpc = error as? RPCError, rpc.code == .unauthenticated {
          if let token = try? await client.tokens.token(client: client, member: member) {
            client.tokens.invalidate(token)
          }
        }
        if !isShutdown {
          logger.info(
            "watch stream broke; resuming on a healthy member",
            metadata: ["etcd.endpoint": "\(member.endpoint)", "error": "\(error)"]
          )
        }
      }
      state.withLock { $0.requests = nil }
      continuation.finish()
      if isShutdown { return }
      // Whatever broke, the member is suspect: resume on the next one.
      client.pool.markFailed(member)
      if healthy.isSet { attempt = 0 }
      try? await Task.sleep(for: client.configuration.backoff.delay(attempt: attempt))
      attempt += 1
    }
  }

  /// Asks for progress after `interval` of silence; a stream still silent after another
  /// `interval` is declared dead.
  private func watchdog(interval: Duration) async throws {
    while true {
      try await Task.sleep(for: min(interval / 4, .seconds(1)))
      let now = clock.now
      let stalled = state.withLock { state -> Bool in
        if let asked = state.progressRequestedAt {
          return asked.duration(to: now) > interval
        }
        if let last = state.lastMessage, last.duration(to: now) > interval, !state.watchers.isEmpty {
          var request = Etcdserverpb_WatchRequest()
          request.progressRequest = Etcdserverpb_WatchProgressRequest()
          state.requests?.yield(request)
          state.progressRequestedAt = now
        }
        return false
      }
      if stalled { throw Stalled() }
    }
  }
}
