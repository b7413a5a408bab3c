import SwitchyardModel
import SwitchyardReconcile
import Synchronization

/// What the controller's parts may ask of the reconcile loop, and what the loop asks of its scheduler:
/// the one place where the flags that choose the next pass live.
///
/// The watch says "these changed"; the supervisor, drift detection and compaction say "read everything";
/// the loop asks which pass comes next and says how the last one went. Requeues go to the trigger, so
/// that a change arriving meanwhile is not held back by them.
final class PassQueue: Sendable {
  typealias Decision = PassScheduler<ContinuousClock.Instant>.Decision

  private let scheduler: Mutex<PassScheduler<ContinuousClock.Instant>>
  private let trigger: ReconcileTrigger<ContinuousClock>

  init(timings: LoopTimings, coalescing: CoalescingPolicy, readsEverything: Bool) {
    scheduler = Mutex(PassScheduler(timings: timings, readsEverything: readsEverything))
    trigger = ReconcileTrigger(clock: ContinuousClock(), policy: coalescing)
  }

  /// The watch delivered changes to the instances of `services` (the source's mirror has them).
  func changesArrived(services: Set<ServiceName>) {
    scheduler.withLock { $0.eventsArrived(services: services) }
    trigger.notify()
  }

  /// A full pass starts that the scheduler did not choose (another pass fell back to one).
  func fullPassStarts() {
    scheduler.withLock { $0.fullPassStarts(now: .now) }
  }

  /// The next pass must read everything; with `now`, it runs at once.
  func requestFullPass(now: Bool = true) {
    scheduler.withLock { $0.requestResync() }
    if now { trigger.notify() }
  }

  /// Asks for a pass without any flag: the first pass, or one that finds out what is to be done.
  func poke() {
    trigger.notify()
  }

  /// The periodic check of the config file and the resync interval.
  func tick(fileBehind: Bool) {
    if scheduler.withLock({ $0.tick(now: .now, fileBehind: fileBehind) }) { trigger.notify() }
  }

  /// Waits until a pass is due, then chooses it. Returns `nil` when the task is cancelled.
  func next(baselineReady: () -> Bool) async -> (decision: Decision, firstChange: ContinuousClock.Instant)? {
    guard let firstChange = await trigger.nextPass() else { return nil }
    let ready = baselineReady()
    return (scheduler.withLock { $0.nextPass(now: .now, baselineReady: ready) }, firstChange)
  }

  /// Asks for a pass after `delay` (a structural change waiting for its reload), without holding back
  /// changes that arrive meanwhile.
  func requeue(after delay: Duration) {
    trigger.requeue(after: delay)
  }

  /// The pass succeeded; a follow-up is requeued when servers are still leaving.
  func passSucceeded(followUp: Bool) {
    if let delay = scheduler.withLock({ $0.passSucceeded(followUp: followUp) }) {
      trigger.requeue(after: delay)
    }
  }

  /// The pass failed: the next one reads everything, after the retry delay. Returns that delay.
  @discardableResult
  func passFailed() -> Duration {
    let delay = scheduler.withLock { $0.passFailed() }
    trigger.requeue(after: delay)
    return delay
  }
}
