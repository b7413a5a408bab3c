import SwitchyardModel

/// What one turn of a controller's reconcile loop does.
public enum PassKind: Sendable, Hashable {
  /// Read everything at one revision, compare every backend.
  case full
  /// Rebuild, observe and plan the backends of the services that changed since the last pass.
  case incremental
  /// Ask HAProxy about the backends with servers leaving; etcd said nothing new.
  case followUp
  /// Bring the config file up to the desired state of the last pass.
  case flush
}

/// Chooses the reconcile loop's next pass and when to run one again. Pure: flags and the clock come in,
/// the pass and a requeue delay go out, as controller-runtime's `Result{RequeueAfter}`; the loop that
/// calls it owns the timers. Every timing comes from ``LoopTimings``.
///
/// A full pass runs first, after any failure, when a part asks for one (compaction, drift, a dead or
/// reloaded HAProxy), and every ``LoopTimings/resyncInterval``; otherwise a pass covers what etcd said
/// since the last one, else follows up on leaving servers, else flushes the config file.
public struct PassScheduler<Instant: InstantProtocol>: Sendable where Instant.Duration == Duration {
  /// What the loop decided for one turn.
  public struct Decision: Sendable, Hashable {
    /// The pass to run.
    public var kind: PassKind
    /// Whether etcd said something since the last pass (for the event-to-applied metric).
    public var hadEvents: Bool
    /// For an incremental pass, the services whose instances changed since the last pass, taken with
    /// the decision so that a change arriving after it waits for the next pass, whole.
    public var services: Set<ServiceName>

    /// Creates a decision.
    public init(kind: PassKind, hadEvents: Bool, services: Set<ServiceName> = []) {
      self.kind = kind
      self.hadEvents = hadEvents
      self.services = services
    }
  }

  /// The timings.
  public let timings: LoopTimings
  /// Whether every pass reads everything (the `reload` update strategy, the original's way).
  public let readsEverything: Bool
  /// The next pass must read everything and compare every backend.
  public private(set) var needsResync = true
  /// When the last full pass started.
  public private(set) var lastResync: Instant?
  /// Whether etcd said something since the last pass.
  public private(set) var eventsPending = false
  /// The services whose instances changed since the last pass.
  public private(set) var changedServices: Set<ServiceName> = []
  /// Failed passes in a row.
  public private(set) var failures = 0
  /// The next pass only follows up on leaving servers.
  private var followUpOnly = false
  /// The next pass, if nothing else is to be done, writes the config file.
  private var flushRequested = false

  /// Creates a scheduler whose first pass is a full one.
  public init(timings: LoopTimings, readsEverything: Bool = false) {
    self.timings = timings
    self.readsEverything = readsEverything
  }

  /// The watch delivered changes to the instances of `services` (none when they touched only entries
  /// that are not valid registrations).
  public mutating func eventsArrived(services: Set<ServiceName> = []) {
    eventsPending = true
    changedServices.formUnion(services)
  }

  /// The next pass must be a full one (compaction, drift, HAProxy died or reloaded).
  public mutating func requestResync() {
    needsResync = true
  }

  /// The periodic check: asks for a flush when the config file is behind, and for a full pass when one is
  /// due. Returns whether a pass should run for either.
  public mutating func tick(now: Instant, fileBehind: Bool) -> Bool {
    if fileBehind { flushRequested = true }
    let due = resyncDue(now: now, beforeAny: false)
    if due { needsResync = true }
    return fileBehind || due
  }

  /// Chooses the next pass and takes the flags it serves.
  ///
  /// - Parameter baselineReady: Whether there is a mirror of etcd and a last desired state to build on,
  ///   and HAProxy runs: without all three only a full pass will do.
  public mutating func nextPass(now: Instant, baselineReady: Bool) -> Decision {
    let hadEvents = eventsPending
    let kind = chooseKind(now: now, baselineReady: baselineReady)
    let services = changedServices
    eventsPending = false
    changedServices = []
    followUpOnly = false
    flushRequested = false
    if kind == .full { fullPassStarts(now: now) }
    return Decision(kind: kind, hadEvents: hadEvents, services: kind == .incremental ? services : [])
  }

  /// A full pass starts, chosen here or as the fallback of another pass that lacked what it builds on:
  /// it serves every request for one, and the resync interval starts again.
  public mutating func fullPassStarts(now: Instant) {
    needsResync = false
    lastResync = now
  }

  /// Whether the periodic full pass is due; `beforeAny` when no full pass ran yet.
  private func resyncDue(now: Instant, beforeAny: Bool) -> Bool {
    lastResync.map { $0.duration(to: now) >= timings.resyncInterval } ?? beforeAny
  }

  private func chooseKind(now: Instant, baselineReady: Bool) -> PassKind {
    guard !needsResync, !resyncDue(now: now, beforeAny: true), baselineReady else { return .full }
    if readsEverything {
      return followUpOnly && !eventsPending ? .followUp : .full
    }
    if eventsPending { return .incremental }
    if flushRequested && !followUpOnly { return .flush }
    return .followUp
  }

  /// A pass succeeded. Returns after how long the loop must run a follow-up pass, or `nil` when none is
  /// needed.
  ///
  /// - Parameter followUp: Whether servers are still leaving or deletes were deferred.
  public mutating func passSucceeded(followUp: Bool) -> Duration? {
    failures = 0
    guard followUp else { return nil }
    followUpOnly = true
    return timings.followUpDelay
  }

  /// A pass failed: the next one reads everything. Returns after how long to retry.
  public mutating func passFailed() -> Duration {
    failures += 1
    needsResync = true
    return timings.retryDelay(failures: failures)
  }
}
