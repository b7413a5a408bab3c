import SwitchyardReconcile
import Synchronization
import Testing

/// A clock that moves only when a test says so.
final class ManualClock: Clock, Sendable {
  struct Instant: InstantProtocol {
    var offset: Duration
    func advanced(by duration: Duration) -> Instant { Instant(offset: offset + duration) }
    func duration(to other: Instant) -> Duration { other.offset - offset }
    static func < (lhs: Instant, rhs: Instant) -> Bool { lhs.offset < rhs.offset }
  }

  private struct Sleeper {
    var id: Int
    var deadline: Instant
    var continuation: CheckedContinuation<Void, any Error>
  }

  private struct State {
    var now = Instant(offset: .zero)
    var sleepers: [Sleeper] = []
    var nextID = 0
  }

  private let state = Mutex(State())

  var now: Instant { state.withLock { $0.now } }
  var minimumResolution: Duration { .nanoseconds(1) }
  /// How many tasks sleep on this clock.
  var sleeperCount: Int { state.withLock { $0.sleepers.count } }

  /// Sleeps until the test advances the clock to `deadline`; a cancelled sleep ends at once with
  /// `CancellationError`, as on a real clock.
  func sleep(until deadline: Instant, tolerance: Duration?) async throws {
    let id = state.withLock { state in
      defer { state.nextID += 1 }
      return state.nextID
    }
    try await withTaskCancellationHandler {
      try await withCheckedThrowingContinuation { continuation in
        let wake = state.withLock { state in
          if deadline <= state.now { return true }
          state.sleepers.append(Sleeper(id: id, deadline: deadline, continuation: continuation))
          return false
        }
        if wake { continuation.resume() }
        if Task.isCancelled { cancel(id) }
      }
    } onCancel: {
      cancel(id)
    }
  }

  private func cancel(_ id: Int) {
    let sleeper = state.withLock { state in
      defer { state.sleepers.removeAll { $0.id == id } }
      return state.sleepers.first { $0.id == id }
    }
    sleeper?.continuation.resume(throwing: CancellationError())
  }

  func advance(by duration: Duration) {
    let due = state.withLock { state in
      state.now = state.now.advanced(by: duration)
      let now = state.now
      let due = state.sleepers.filter { $0.deadline <= now }
      state.sleepers.removeAll { $0.deadline <= now }
      return due
    }
    for sleeper in due { sleeper.continuation.resume() }
  }
}

@Suite struct CoalescerTests {
  typealias Instant = ManualClock.Instant
  let policy = CoalescingPolicy(quietWindow: .milliseconds(100), maxWait: .seconds(1))

  func at(_ milliseconds: Int) -> Instant { Instant(offset: .milliseconds(milliseconds)) }

  @Test("by default a change right after a pass is due at once, and a burst during a pass waits for it only")
  func defaultPolicyHoldsNothingBack() {
    var coalescer = Coalescer<Instant>(policy: CoalescingPolicy())
    coalescer.record(at: at(0))
    #expect(coalescer.startPass(at: at(0)) == at(0))
    // 10 ms after the pass started (it ran 5 ms): no quiet window to wait for.
    coalescer.record(at: at(10))
    #expect(coalescer.dueTime == at(10))
    // Changes that come while a pass runs (the loop cannot start another) go together in the next.
    #expect(coalescer.startPass(at: at(10)) == at(10))
    for millisecond in 11...40 { coalescer.record(at: at(millisecond)) }
    #expect(coalescer.startPass(at: at(45)) == at(11))
    #expect(coalescer.dueTime == nil)
  }

  @Test func firstChangeWhenIdleIsDueAtOnce() {
    var coalescer = Coalescer<Instant>(policy: policy)
    #expect(coalescer.dueTime == nil)
    coalescer.record(at: at(500))
    #expect(coalescer.dueTime == at(500))
    #expect(coalescer.startPass(at: at(500)) == at(500))
    #expect(coalescer.dueTime == nil)
  }

  @Test func changesRightAfterAPassWaitForTheQuietWindow() {
    var coalescer = Coalescer<Instant>(policy: policy)
    coalescer.record(at: at(0))
    _ = coalescer.startPass(at: at(0))
    coalescer.record(at: at(30))
    #expect(coalescer.dueTime == at(130))
    coalescer.record(at: at(80))
    #expect(coalescer.dueTime == at(180))
    #expect(coalescer.startPass(at: at(179)) == nil)
    #expect(coalescer.startPass(at: at(180)) == at(30))
  }

  @Test func aSteadyStreamIsAppliedAtLeastOncePerMaximumWait() {
    var coalescer = Coalescer<Instant>(policy: policy)
    coalescer.record(at: at(0))
    _ = coalescer.startPass(at: at(0))
    var passes: [Int] = []
    for t in stride(from: 50, through: 3000, by: 50) {
      coalescer.record(at: at(t))
      if coalescer.startPass(at: at(t)) != nil { passes.append(t) }
    }
    // Events every 50 ms never leave a 100 ms pause: passes come from the 1 s maximum wait.
    #expect(passes == [1050, 2100])
  }

  @Test func changesBeforeAnIdlePassStartsJoinIt() {
    var coalescer = Coalescer<Instant>(policy: policy)
    coalescer.record(at: at(0))
    coalescer.record(at: at(10))
    #expect(coalescer.dueTime == at(0))
    #expect(coalescer.startPass(at: at(12)) == at(0))
    #expect(coalescer.dueTime == nil)
  }

  @Test func quietAfterAPassMakesTheNodeIdleAgain() {
    var coalescer = Coalescer<Instant>(policy: policy)
    coalescer.record(at: at(0))
    _ = coalescer.startPass(at: at(0))
    coalescer.record(at: at(100))
    #expect(coalescer.dueTime == at(100))
  }

  @Test func triggerRunsPassesOnTheTestClock() async throws {
    let clock = ManualClock()
    let trigger = ReconcileTrigger(clock: clock, policy: policy)
    let passes = Mutex<[Duration]>([])
    let consumer = Task {
      while let first = await trigger.nextPass() {
        passes.withLock { $0.append(first.offset) }
      }
    }
    defer { consumer.cancel() }

    // Idle: the first change is applied without the clock moving.
    trigger.notify()
    try await waitUntil { passes.withLock { $0.count } == 1 }
    // A burst right after: nothing until the quiet window has passed.
    clock.advance(by: .milliseconds(20))
    trigger.notify()
    clock.advance(by: .milliseconds(50))
    trigger.notify()
    try await waitUntil { clock.sleeperCount == 1 }
    clock.advance(by: .milliseconds(99))
    try await Task.sleep(for: .milliseconds(20))
    #expect(passes.withLock { $0.count } == 1)
    clock.advance(by: .milliseconds(1))
    try await waitUntil { passes.withLock { $0.count } == 2 }
    #expect(passes.withLock { $0 } == [.zero, .milliseconds(20)])
  }

  @Test func cancellationEndsAWaitingTrigger() async {
    let trigger = ReconcileTrigger(clock: ManualClock(), policy: policy)
    let consumer = Task { await trigger.nextPass() }
    try? await Task.sleep(for: .milliseconds(20))
    consumer.cancel()
    #expect(await consumer.value == nil)
  }

  func waitUntil(_ condition: () -> Bool) async throws {
    for _ in 0..<500 {
      if condition() { return }
      try await Task.sleep(for: .milliseconds(2))
    }
    Issue.record("condition not met within 1 s")
  }
}
