import Foundation
import GRPCCore
import Logging
import Synchronization

/// Multiplexes every watch of one client over a single Watch stream.
///
/// Each watcher remembers the next revision it needs. When the stream breaks or its member hangs,
/// a new one is opened on another member and every watcher is re-created from that revision, so
/// delivery is exactly once and in order across reconnects. The stream carries etcd's `hasleader`
/// requirement, so a member cut off from its cluster ends the stream instead of holding it
/// silently.
///
/// Liveness never depends on etcd answering a progress request (newer releases ignore one while a
/// watcher catches up or waits for a future revision): a quiet stream's connection must answer
/// HTTP/2 keepalive PINGs, and after `watchProgressInterval` of silence its member must answer a
/// status call; a member that fails either is given up on.
///
/// Creates are answered in the order they were sent. etcd refuses a create (permission denied, an
/// expired token, a bad range) with watch id -1 and both `created` and `canceled` set, so refusals
/// are matched to the oldest create still waiting for its answer, and only a -1 response with
/// neither flag is a progress notification.
final class WatchManager: Sendable {
  struct Watcher {
    var range: KeyRange
    var options: WatchOptions
    var continuation: AsyncThrowingStream<WatchResponse, any Error>.Continuation
    /// Next revision to deliver; 0 until the first creation tells us "now".
    var nextRevision: Int64
    var fragments: [WatchEvent] = []
    /// Set when a create was refused for a reason a new token may fix; a second refusal ends it.
    var refusedForAuth = false
    /// Whether the caller has been told that the watch was created (``WatchOptions/notifyCreated``).
    var announcedCreated = false
  }

  /// What the stream loop must do after a response.
  enum Outcome: Equatable {
    case proceed
    /// A create was refused for a reason a new token may fix: open a new stream with a fresh token.
    case refreshToken
  }

  struct State {
    var watchers: [Int64: Watcher] = [:]
    var nextID: Int64 = 1
    /// Watch ids whose create was sent on the current stream and not yet answered, in sending order.
    var pendingCreates: [Int64] = []
    var requests: AsyncStream<Etcdserverpb_WatchRequest>.Continuation?
    var endpoint: EtcdEndpoint?
    var opens = 0
    var lastMessage: ContinuousClock.Instant?
    /// Set by a caller's progress request: the next broadcast notification goes to every watcher,
    /// not only to those that asked for progress notifications.
    var progressRequestedByCaller = false
    var isShutdown = false
  }

  // Internal, not private: the stream loop in WatchManager+Stream.swift uses them.
  let state = Mutex(State())
  let logger: Logger
  private let hasCredentials: Bool
  let wakeups: AsyncStream<Void>
  private let wake: AsyncStream<Void>.Continuation
  let clock = ContinuousClock()

  init(logger: Logger, hasCredentials: Bool = false) {
    self.logger = logger
    self.hasCredentials = hasCredentials
    (wakeups, wake) = AsyncStream.makeStream(bufferingPolicy: .bufferingNewest(1))
  }

  var streamStatus: StreamStatus {
    state.withLock { StreamStatus(endpoint: $0.requests == nil ? nil : $0.endpoint, opens: $0.opens) }
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
      if let requests = state.requests {
        state.pendingCreates.append(id)
        requests.yield(Self.createRequest(id: id, watcher: watcher))
      }
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
      // A pending create stays in `pendingCreates`, so that later refusals still match in order.
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

  var isShutdown: Bool { state.withLock { $0.isShutdown } }

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

  /// Applies one response to the watchers.
  @discardableResult
  func handle(_ response: Etcdserverpb_WatchResponse) -> Outcome {
    // Finishing a stream runs its termination handler, which takes the lock: do it after.
    var ended: [(AsyncThrowingStream<WatchResponse, any Error>.Continuation, EtcdError)] = []
    let outcome = applyLocked(response, ended: &ended)
    for (continuation, error) in ended { continuation.finish(throwing: error) }
    return outcome
  }

  private func applyLocked(
    _ response: Etcdserverpb_WatchResponse,
    ended: inout [(AsyncThrowingStream<WatchResponse, any Error>.Continuation, EtcdError)]
  ) -> Outcome {
    let now = clock.now
    return state.withLock { state -> Outcome in
      state.lastMessage = now
      let revision = response.header.revision

      if response.watchID == -1 && (response.created || response.canceled) {
        // A refused create: it answers the oldest create still waiting.
        while !state.pendingCreates.isEmpty {
          let id = state.pendingCreates.removeFirst()
          if state.watchers[id] != nil {
            return refuse(id, response: response, state: &state, ended: &ended)
          }
        }
        logger.debug("a refused watch create matched no watcher", metadata: ["etcd.reason": "\(response.cancelReason)"])
        return .proceed
      }
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
        return .proceed
      }
      if response.created {
        state.pendingCreates.removeAll { $0 == response.watchID }
      }
      guard var watcher = state.watchers[response.watchID] else { return .proceed }

      if response.compactRevision > 0 {
        state.watchers.removeValue(forKey: response.watchID)
        ended.append(
          (
            watcher.continuation,
            EtcdError.compacted(compactRevision: response.compactRevision, endpoint: state.endpoint)
          )
        )
        return .proceed
      }
      if response.canceled {
        // A refusal that names its watch (some releases do), or a cancel after creation.
        return refuse(response.watchID, response: response, state: &state, ended: &ended)
      }
      if response.created {
        // From "now": etcd registered the watch at the header's revision, so a write at exactly that
        // revision may have landed after it; resuming there may repeat one old event, never lose one.
        if watcher.nextRevision == 0 { watcher.nextRevision = revision }
        watcher.refusedForAuth = false
        if watcher.options.notifyCreated, !watcher.announcedCreated {
          watcher.announcedCreated = true
          watcher.continuation.yield(WatchResponse(revision: revision, events: [], isCreated: true))
        }
        state.watchers[response.watchID] = watcher
        return .proceed
      }

      watcher.fragments.append(contentsOf: response.events.map(WatchEvent.init))
      if response.fragment {
        state.watchers[response.watchID] = watcher
        return .proceed
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
      return .proceed
    }
  }

  /// Ends watcher `id` because etcd refused or cancelled it, unless a fresh token may fix it.
  private func refuse(
    _ id: Int64,
    response: Etcdserverpb_WatchResponse,
    state: inout State,
    ended: inout [(AsyncThrowingStream<WatchResponse, any Error>.Continuation, EtcdError)]
  ) -> Outcome {
    guard var watcher = state.watchers[id] else { return .proceed }
    let reason = response.cancelReason
    let lowered = reason.lowercased()
    let isAuth = Self.authReasons.contains { lowered.contains($0) }
    // etcd checks a watch's permission with the token the stream was opened with, and reports an
    // expired or outdated token as "permission denied": try once more with a new token.
    if isAuth, hasCredentials, !watcher.refusedForAuth {
      watcher.refusedForAuth = true
      state.watchers[id] = watcher
      logger.debug("a watch create was refused; retrying with a new token", metadata: ["etcd.reason": "\(reason)"])
      return .refreshToken
    }
    state.watchers.removeValue(forKey: id)
    let code: EtcdError.Code = lowered.contains("permission denied") ? .permissionDenied : .watchCanceled
    let message = reason.isEmpty ? "etcd cancelled the watch" : "etcd refused the watch: \(reason)"
    ended.append(
      (watcher.continuation, EtcdError(code: code, message: message, endpoint: state.endpoint, call: "Watch")))
    return .proceed
  }

  private static let authReasons = [
    "permission denied", "invalid auth token", "auth store is old", "user name is empty",
  ]
}
