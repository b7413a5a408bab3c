import Synchronization

/// How watch events are batched into reconcile passes.
public struct CoalescingPolicy: Sendable, Hashable {
  /// A pass waits until no event came for this long…
  public var quietWindow: Duration
  /// …but never longer than this after the first event it serves.
  public var maxWait: Duration

  /// Creates a policy. By default there is no quiet window: a change that finds the controller idle is
  /// applied at once, and changes that come during a pass are applied together by the pass right after
  /// it, so a burst costs one pass per pass duration and the last change of it waits for at most one
  /// pass. A quiet window spaces passes further apart, for a controller whose passes are expensive.
  public init(quietWindow: Duration = .zero, maxWait: Duration = .seconds(1)) {
    self.quietWindow = quietWindow
    self.maxWait = max(maxWait, quietWindow)
  }
}

/// Decides when pending changes are applied. Pure: times come from the caller.
///
/// Events only mean "something changed". The first change after a quiet period (no pass within the
/// quiet window before it) is applied at once, with whatever else arrived before the pass started.
/// Changes that follow a pass within its quiet window are batched until the events pause for the quiet
/// window, or until the maximum wait since the first of them, whichever comes first. So a burst of any
/// length costs about one pass per maximum wait.
public struct Coalescer<Instant: InstantProtocol>: Sendable where Instant.Duration == Duration {
  /// The policy.
  public let policy: CoalescingPolicy
  /// When the oldest change not yet applied came, or `nil` when none is pending.
  public private(set) var firstPending: Instant?
  /// When the newest pending change came.
  public private(set) var lastPending: Instant?
  /// When the last pass started.
  public private(set) var lastPass: Instant?

  /// Creates a coalescer with nothing pending.
  public init(policy: CoalescingPolicy) {
    self.policy = policy
  }

  /// When a pass was asked for, whatever changes are pending: the earliest requeue not yet served.
  public private(set) var requeueAt: Instant?

  /// Records a change seen at `now`.
  public mutating func record(at now: Instant) {
    if firstPending == nil { firstPending = now }
    lastPending = now
  }

  /// Asks for a pass at `instant` (a retry, a follow-up), not coalesced with changes: the earliest of
  /// several requeues stands, and a pass that starts before it leaves it pending.
  public mutating func requeue(at instant: Instant) {
    requeueAt = min(requeueAt ?? instant, instant)
  }

  /// When the pending changes are due, or `nil` when none are pending.
  public var changesDueTime: Instant? {
    guard let first = firstPending, let last = lastPending else { return nil }
    let idle = lastPass.map { $0.advanced(by: policy.quietWindow) <= first } ?? true
    if idle { return first }
    return min(last.advanced(by: policy.quietWindow), first.advanced(by: policy.maxWait))
  }

  /// When the next pass is due, for changes or a requeue, or `nil` when nothing is pending.
  public var dueTime: Instant? {
    switch (changesDueTime, requeueAt) {
    case (let changes?, let requeue?): min(changes, requeue)
    case (let changes?, nil): changes
    case (nil, let requeue): requeue
    }
  }

  /// Starts a pass at `now` if one is due: clears what is pending, and a requeue that is due, and returns
  /// when the oldest change it serves came (the requeue's time when it serves no change).
  public mutating func startPass(at now: Instant) -> Instant? {
    guard let due = dueTime, due <= now else { return nil }
    let served = firstPending ?? requeueAt ?? due
    firstPending = nil
    lastPending = nil
    if let requeue = requeueAt, requeue <= now { requeueAt = nil }
    lastPass = now
    return served
  }
}

/// Turns change notifications from any task into coalesced reconcile passes on one task.
///
/// ```swift
/// let trigger = ReconcileTrigger(clock: ContinuousClock(), policy: CoalescingPolicy())
/// // watch task:      trigger.notify()
/// // reconcile task:  while let firstChange = await trigger.nextPass() { … }
/// ```
public final class ReconcileTrigger<C: Clock>: Sendable where C.Duration == Duration {
  private struct State {
    var coalescer: Coalescer<C.Instant>
    var waiter: CheckedContinuation<Void, Never>?
  }

  private let clock: C
  private let state: Mutex<State>

  /// Creates a trigger with nothing pending.
  public init(clock: C, policy: CoalescingPolicy) {
    self.clock = clock
    state = Mutex(State(coalescer: Coalescer(policy: policy)))
  }

  /// Records a change now.
  public func notify() {
    let now = clock.now
    let waiter = state.withLock { state in
      state.coalescer.record(at: now)
      defer { state.waiter = nil }
      return state.waiter
    }
    waiter?.resume()
  }

  /// Asks for a pass after `delay` (a retry, a follow-up), whether or not anything changes meanwhile.
  public func requeue(after delay: Duration) {
    let deadline = clock.now.advanced(by: delay)
    let waiter = state.withLock { state in
      state.coalescer.requeue(at: deadline)
      defer { state.waiter = nil }
      return state.waiter
    }
    waiter?.resume()
  }

  /// Waits until a pass is due and starts it. Returns when the oldest change it serves came, or `nil`
  /// when the task is cancelled.
  public func nextPass() async -> C.Instant? {
    while !Task.isCancelled {
      let now = clock.now
      let due: C.Instant? = state.withLock { state in
        if let first = state.coalescer.startPass(at: now) { return first }
        return nil
      }
      if let due { return due }
      let (deadline, changesPending) = state.withLock { ($0.coalescer.dueTime, $0.coalescer.firstPending != nil) }
      if let deadline, changesPending {
        do {
          try await clock.sleep(until: deadline, tolerance: nil)
        } catch {
          return nil
        }
      } else if let deadline {
        // Only a requeue is pending: a change that comes first must not wait for it.
        await withTaskGroup(of: Void.self) { group in
          group.addTask { [clock] in try? await clock.sleep(until: deadline, tolerance: nil) }
          group.addTask { await self.waitForChange(sawDue: deadline) }
          await group.next()
          group.cancelAll()
        }
      } else {
        await waitForChange(sawDue: nil)
      }
    }
    return nil
  }

  /// Waits for a change, or for a requeue other than the one due at `sawDue` (one that came after the
  /// caller looked, from another task, must not wait for the next change).
  private func waitForChange(sawDue: C.Instant?) async {
    await withTaskCancellationHandler {
      await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
        let resumeNow = state.withLock { state in
          if state.coalescer.firstPending != nil || state.coalescer.dueTime != sawDue || Task.isCancelled {
            return true
          }
          state.waiter = continuation
          return false
        }
        if resumeNow { continuation.resume() }
      }
    } onCancel: {
      let waiter = state.withLock { state in
        defer { state.waiter = nil }
        return state.waiter
      }
      waiter?.resume()
    }
  }
}
