/// Options of a watch.
public struct WatchOptions: Sendable, Hashable {
  /// First revision to deliver; 0 means "changes after the watch is created".
  ///
  /// With 0, the watch resumes after a reconnect from the revision etcd reported when it created
  /// the watch (as Go's client does), so a write that raced the creation is never lost, though
  /// one event from just before may then be delivered. Callers that must see exactly the changes
  /// after a read pass that read's revision + 1, or set ``notifyCreated`` and write only after the
  /// created response.
  public var startRevision: Int64
  /// Include each key's previous value in PUT and DELETE events.
  public var prevKV: Bool
  /// Ask etcd for periodic progress notifications while the watch is idle.
  public var progressNotify: Bool
  /// Leave out PUT events.
  public var noPut: Bool
  /// Leave out DELETE events.
  public var noDelete: Bool
  /// Deliver a first, empty response with ``WatchResponse/isCreated`` set once etcd has created the
  /// watch, so that a caller can wait until changes are certain to be seen.
  public var notifyCreated: Bool

  /// Creates watch options.
  public init(
    startRevision: Int64 = 0,
    prevKV: Bool = false,
    progressNotify: Bool = false,
    noPut: Bool = false,
    noDelete: Bool = false,
    notifyCreated: Bool = false
  ) {
    self.startRevision = startRevision
    self.prevKV = prevKV
    self.progressNotify = progressNotify
    self.noPut = noPut
    self.noDelete = noDelete
    self.notifyCreated = notifyCreated
  }
}

/// One change to a key.
public struct WatchEvent: Sendable, Hashable {
  /// Whether the key was written or deleted.
  public enum Kind: Sendable, Hashable {
    case put, delete
  }

  /// Whether the key was written or deleted.
  public var kind: Kind
  /// The key after the change (for deletes: key and `modRevision` only).
  public var kv: KeyValue
  /// The key before the change, when ``WatchOptions/prevKV`` was set and it existed.
  public var prevKV: KeyValue?

  /// Creates an event.
  public init(kind: Kind, kv: KeyValue, prevKV: KeyValue? = nil) {
    self.kind = kind
    self.kv = kv
    self.prevKV = prevKV
  }

  init(_ proto: Mvccpb_Event) {
    kind = proto.type == .delete ? .delete : .put
    kv = KeyValue(proto.kv)
    prevKV = proto.hasPrevKv ? KeyValue(proto.prevKv) : nil
  }
}

/// A batch of events, or a progress notification.
public struct WatchResponse: Sendable, Hashable {
  /// The store's revision when etcd sent this response.
  public var revision: Int64
  /// The events, in revision order. Events of one revision (a transaction) are never split.
  public var events: [WatchEvent]
  /// True for the one response that says etcd created the watch (only with
  /// ``WatchOptions/notifyCreated``); it carries no events.
  public var isCreated: Bool
  /// True for a progress notification: no events, only proof that the watch is alive at
  /// ``revision``.
  public var isProgressNotification: Bool { events.isEmpty && !isCreated }

  /// Creates a response.
  public init(revision: Int64, events: [WatchEvent], isCreated: Bool = false) {
    self.revision = revision
    self.events = events
    self.isCreated = isCreated
  }
}

extension EtcdClient {
  /// Watches a key or range; see ``WatchSequence``.
  public func watch(_ range: KeyRange, options: WatchOptions = WatchOptions()) -> WatchSequence {
    WatchSequence(manager: watches, range: range, options: options)
  }

  /// Asks etcd to send a progress notification to every watch of this client.
  ///
  /// Useful to tell a quiet watch from a dead one: a live stream answers promptly.
  public func requestWatchProgress() {
    watches.requestProgress()
  }
}

/// The responses of one watch, as an async sequence.
///
/// Iterating starts the watch on the client's shared watch stream; leaving the loop (or cancelling
/// the task) cancels it. When the stream breaks, the watch is resumed on a healthy member from the
/// revision after the last one delivered, so no event is lost or delivered twice. The sequence
/// ends by throwing ``EtcdError``: ``EtcdError/Code/compacted`` (with
/// ``EtcdError/compactRevision``) when the history it needs was compacted, and the caller should
/// re-read full state; ``EtcdError/Code/permissionDenied`` when the user may not read the range
/// (after one retry with a new token, since etcd reports an expired token the same way);
/// ``EtcdError/Code/watchCanceled`` with etcd's reason when etcd refused or cancelled it for
/// another reason; ``EtcdError/Code/cancelled`` when the client shut down.
public struct WatchSequence: AsyncSequence, Sendable {
  public typealias Element = WatchResponse
  public typealias Failure = any Error

  let manager: WatchManager
  let range: KeyRange
  let options: WatchOptions

  /// Starts the watch.
  public func makeAsyncIterator() -> AsyncIterator {
    let (stream, continuation) = AsyncThrowingStream<WatchResponse, any Error>.makeStream()
    let id = manager.add(range: range, options: options, continuation: continuation)
    continuation.onTermination = { [manager] _ in manager.remove(id) }
    return AsyncIterator(base: stream.makeAsyncIterator())
  }

  /// Iterates responses.
  public struct AsyncIterator: AsyncIteratorProtocol {
    var base: AsyncThrowingStream<WatchResponse, any Error>.AsyncIterator

    /// The next response; throws when the watch ends with an error.
    public mutating func next() async throws -> WatchResponse? {
      try await base.next()
    }
  }
}
