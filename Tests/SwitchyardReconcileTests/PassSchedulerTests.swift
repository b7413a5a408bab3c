import SwitchyardModel
import SwitchyardReconcile
import Synchronization
import Testing

/// A scheduler on a test clock, driven as the reconcile loop drives it.
final class SchedulerHarness {
  typealias Instant = ManualClock.Instant
  var scheduler: PassScheduler<Instant>

  init(timings: LoopTimings = LoopTimings(), readsEverything: Bool = false) {
    scheduler = PassScheduler(timings: timings, readsEverything: readsEverything)
  }

  static func at(_ milliseconds: Int) -> Instant { Instant(offset: .milliseconds(milliseconds)) }

  func next(at milliseconds: Int, ready: Bool = true) -> PassScheduler<Instant>.Decision {
    scheduler.nextPass(now: Self.at(milliseconds), baselineReady: ready)
  }
  func kind(at milliseconds: Int, ready: Bool = true) -> PassKind { next(at: milliseconds, ready: ready).kind }
  func succeeded(followUp: Bool) -> Duration? { scheduler.passSucceeded(followUp: followUp) }
  func failed() -> Duration { scheduler.passFailed() }
  func tick(at milliseconds: Int, fileBehind: Bool) -> Bool {
    scheduler.tick(now: Self.at(milliseconds), fileBehind: fileBehind)
  }
  func eventsArrived(_ services: Set<ServiceName> = []) { scheduler.eventsArrived(services: services) }
  func requestResync() { scheduler.requestResync() }
}

@Suite struct PassSchedulerTests {
  /// A scheduler past its first full pass at 0 ms, with a baseline to build on.
  func settled(readsEverything: Bool = false) -> SchedulerHarness {
    let loop = SchedulerHarness(readsEverything: readsEverything)
    #expect(loop.kind(at: 0, ready: false) == .full)
    #expect(loop.succeeded(followUp: false) == nil)
    return loop
  }

  @Test func theFirstPassIsFullAndTheNextOneForChangesIsIncremental() {
    let loop = settled()
    loop.eventsArrived()
    #expect(loop.next(at: 10) == .init(kind: .incremental, hadEvents: true))
    #expect(!loop.scheduler.eventsPending)
  }

  @Test func anIncrementalPassTakesTheServicesThatChangedWithTheDecision() throws {
    let (web, api) = (try ServiceName(validating: "web"), try ServiceName(validating: "api"))
    let loop = settled()
    loop.eventsArrived([web])
    loop.eventsArrived([api])
    #expect(loop.next(at: 10) == .init(kind: .incremental, hadEvents: true, services: [web, api]))
    // What arrives after the decision is the next pass's, whole.
    loop.eventsArrived([web])
    #expect(loop.next(at: 20) == .init(kind: .incremental, hadEvents: true, services: [web]))
    #expect(loop.next(at: 30).services.isEmpty)
  }

  @Test func aFullPassCoversTheChangesPendingAtItsDecision() throws {
    let loop = settled()
    loop.eventsArrived([try ServiceName(validating: "web")])
    loop.requestResync()
    #expect(loop.next(at: 10) == .init(kind: .full, hadEvents: true))
    #expect(loop.scheduler.changedServices.isEmpty)
  }

  @Test func aFullPassInPlaceOfAnotherServesAResyncRequestAndRestartsTheInterval() {
    let loop = settled()
    #expect(loop.kind(at: 10) == .followUp)
    // The follow-up found no HAProxy and fell back to a full pass, while a resync was requested.
    loop.requestResync()
    loop.scheduler.fullPassStarts(now: SchedulerHarness.at(20))
    #expect(!loop.scheduler.needsResync)
    #expect(loop.scheduler.lastResync == SchedulerHarness.at(20))
    #expect(loop.kind(at: 30) == .followUp)
  }

  @Test func withoutABaselineOnlyAFullPassWillDo() {
    let loop = settled()
    loop.eventsArrived()
    #expect(loop.kind(at: 10, ready: false) == .full)
  }

  @Test func aRequestedResyncIsAFullPassOnce() {
    let loop = settled()
    loop.requestResync()
    #expect(loop.kind(at: 10) == .full)
    #expect(loop.kind(at: 20) == .followUp)
  }

  @Test func aFailedPassIsRetriedFullWithADoublingCappedDelay() {
    let loop = settled()
    #expect(loop.failed() == .milliseconds(200))
    #expect(loop.failed() == .milliseconds(400))
    #expect(loop.failed() == .milliseconds(800))
    #expect(loop.failed() == .seconds(1))
    #expect(loop.failed() == .seconds(1))
    #expect(loop.kind(at: 10) == .full)
    #expect(loop.succeeded(followUp: false) == nil)
    #expect(loop.scheduler.failures == 0)
    #expect(loop.failed() == .milliseconds(200))
  }

  @Test func leavingServersAreFollowedUpAfterTheFollowUpDelay() {
    let loop = settled()
    loop.eventsArrived()
    _ = loop.next(at: 10)
    #expect(loop.succeeded(followUp: true) == .milliseconds(500))
    // The follow-up wins over a flush asked for meanwhile; the flush comes on the next tick.
    #expect(loop.tick(at: 400, fileBehind: true))
    #expect(loop.next(at: 510) == .init(kind: .followUp, hadEvents: false))
    #expect(loop.succeeded(followUp: false) == nil)
    #expect(loop.tick(at: 1_400, fileBehind: true))
    #expect(loop.kind(at: 1_400) == .flush)
  }

  @Test func changesWinOverAFlush() {
    let loop = settled()
    #expect(loop.tick(at: 1_000, fileBehind: true))
    loop.eventsArrived()
    #expect(loop.kind(at: 1_000) == .incremental)
    // The flush request was taken by that pass; the next tick asks again while the file is behind.
    #expect(loop.kind(at: 1_001) == .followUp)
  }

  @Test func aTickWithNothingToDoAsksForNoPass() {
    let loop = settled()
    #expect(!loop.tick(at: 1_000, fileBehind: false))
  }

  @Test func aFullPassComesEveryResyncInterval() {
    let loop = SchedulerHarness(timings: LoopTimings(resyncInterval: .seconds(60)))
    _ = loop.next(at: 0, ready: false)
    #expect(!loop.tick(at: 59_999, fileBehind: false))
    #expect(loop.tick(at: 60_000, fileBehind: false))
    #expect(loop.scheduler.needsResync)
    #expect(loop.kind(at: 60_000) == .full)
    #expect(loop.scheduler.lastResync == SchedulerHarness.at(60_000))
    // Due by the clock alone, also without a tick.
    loop.eventsArrived()
    #expect(loop.kind(at: 120_000) == .full)
  }

  @Test func theReloadStrategyReadsEverythingForEveryChange() {
    let loop = settled(readsEverything: true)
    loop.eventsArrived()
    #expect(loop.kind(at: 10) == .full)
    #expect(loop.succeeded(followUp: true) == .milliseconds(500))
    #expect(loop.kind(at: 510) == .followUp)
    // A change that comes before the follow-up makes it a full pass.
    _ = loop.succeeded(followUp: true)
    loop.eventsArrived()
    #expect(loop.kind(at: 1_010) == .full)
  }
}

@Suite struct LoopTimingsTests {
  @Test func refreshFollowsTheFleetWithinItsBounds() {
    let timings = LoopTimings()
    #expect(timings.refreshInterval(servers: 0) == .seconds(1))
    #expect(timings.refreshInterval(servers: 1_000) == .seconds(1))
    #expect(timings.refreshInterval(servers: 4_000) == .seconds(4))
    #expect(timings.refreshInterval(servers: 11_000) == .seconds(10))
  }

  @Test func watchRetriesDoubleUpToTheirCap() {
    let timings = LoopTimings(watchRetryInitial: .milliseconds(100), watchRetryMaximum: .milliseconds(350))
    #expect(
      (1...4).map { timings.watchRetryDelay(failures: $0) } == [
        .milliseconds(100), .milliseconds(200), .milliseconds(350), .milliseconds(350),
      ])
    #expect(LoopTimings().watchRetryDelay(failures: 1_000) == .seconds(1))
  }
}

@Suite struct RequeueTests {
  typealias Instant = ManualClock.Instant

  func at(_ milliseconds: Int) -> Instant { Instant(offset: .milliseconds(milliseconds)) }

  @Test func aRequeueIsDueAtItsTimeAndTheEarliestStands() {
    var coalescer = Coalescer<Instant>(policy: CoalescingPolicy())
    coalescer.requeue(at: at(500))
    coalescer.requeue(at: at(200))
    coalescer.requeue(at: at(900))
    #expect(coalescer.dueTime == at(200))
    #expect(coalescer.startPass(at: at(199)) == nil)
    #expect(coalescer.startPass(at: at(200)) == at(200))
    #expect(coalescer.dueTime == nil)
  }

  @Test func aPassBeforeARequeueLeavesItPending() {
    var coalescer = Coalescer<Instant>(policy: CoalescingPolicy())
    coalescer.requeue(at: at(500))
    coalescer.record(at: at(10))
    #expect(coalescer.startPass(at: at(10)) == at(10))
    #expect(coalescer.dueTime == at(500))
  }

  @Test func aChangeIsNotHeldBackByAPendingRequeue() async throws {
    let clock = ManualClock()
    let trigger = ReconcileTrigger(clock: clock, policy: CoalescingPolicy())
    let passes = Mutex<[Duration]>([])
    let consumer = Task {
      while let first = await trigger.nextPass() { passes.withLock { $0.append(first.offset) } }
    }
    defer { consumer.cancel() }
    trigger.requeue(after: .milliseconds(500))
    try await waitUntil { clock.sleeperCount == 1 }
    // The clock stands still: only the change can start this pass.
    trigger.notify()
    try await waitUntil { passes.withLock { $0.count } == 1 }
    clock.advance(by: .milliseconds(500))
    try await waitUntil { passes.withLock { $0.count } == 2 }
    #expect(passes.withLock { $0 } == [.zero, .milliseconds(500)])
  }

  func waitUntil(_ condition: () -> Bool) async throws {
    for _ in 0..<500 {
      if condition() { return }
      try await Task.sleep(for: .milliseconds(2))
    }
    Issue.record("condition not met within 1 s")
  }
}
