import Synchronization
import Testing

@testable import EtcdClient

/// A clock on which sleeping takes no real time: a sleep moves the clock to its deadline and is
/// recorded, and a test moves it forward to stand for the time an attempt took.
final class SteppingClock: Clock, Sendable {
  typealias Instant = ContinuousClock.Instant

  private let origin = ContinuousClock.now
  private let state = Mutex<(elapsed: Duration, sleeps: [Duration])>((.zero, []))

  var now: Instant { origin.advanced(by: elapsed) }
  var minimumResolution: Duration { .nanoseconds(1) }
  /// How far the clock moved since it was made.
  var elapsed: Duration { state.withLock { $0.elapsed } }
  /// Every sleep so far, in order.
  var sleeps: [Duration] { state.withLock { $0.sleeps } }

  func sleep(until deadline: Instant, tolerance: Duration?) async throws {
    let target = origin.duration(to: deadline)
    state.withLock { state in
      state.sleeps.append(target - state.elapsed)
      state.elapsed = max(state.elapsed, target)
    }
  }

  func advance(by duration: Duration) {
    state.withLock { $0.elapsed += duration }
  }
}

/// Members numbered in the order they are picked, and what the loop told them.
final class NumberedMembers: StreamMembers, Sendable {
  private let state = Mutex<(next: Int, failed: [Int], tokensDropped: [Int])>((0, [], []))

  var failed: [Int] { state.withLock { $0.failed } }
  var tokensDropped: [Int] { state.withLock { $0.tokensDropped } }

  func preferred() -> Int {
    state.withLock { state in
      defer { state.next += 1 }
      return state.next
    }
  }

  func markFailed(_ member: Int) { state.withLock { $0.failed.append(member) } }

  func dropToken(of member: Int) async { state.withLock { $0.tokensDropped.append(member) } }
}

@Suite struct StreamReconnectorTests {
  let backoff = Backoff(initial: .milliseconds(100), maximum: .seconds(1), multiplier: 2, jitter: 0)

  @Test("broken streams start one backoff apart, growing to the maximum; a healthy stream starts over")
  func brokenStreams() {
    var policy = ReconnectBackoff(backoff: backoff)
    var generator = SystemRandomNumberGenerator()
    func next(_ end: StreamAttemptEnd, _ elapsed: Duration = .zero) -> Duration? {
      policy.delay(after: end, elapsed: elapsed, using: &generator)
    }
    #expect(next(.broke(healthy: false)) == .milliseconds(100))
    #expect(next(.broke(healthy: false)) == .milliseconds(200))
    #expect(next(.broke(healthy: false)) == .milliseconds(400))
    // An attempt that spent its time on an unresponsive member waits only what is left.
    #expect(next(.broke(healthy: false), .milliseconds(300)) == .milliseconds(500))
    #expect(next(.broke(healthy: false), .seconds(3)) == .zero)
    #expect(next(.broke(healthy: false)) == .seconds(1))
    #expect(policy.attempt == 6)
    #expect(next(.broke(healthy: true)) == .milliseconds(100))
    #expect(policy.attempt == 1)
    #expect(next(.broke(healthy: false)) == .milliseconds(200))
  }

  @Test("a refused token is retried at once the first time, then after the delay of the attempts so far")
  func refusedTokens() {
    var policy = ReconnectBackoff(backoff: backoff)
    var generator = SystemRandomNumberGenerator()
    func next(_ end: StreamAttemptEnd, _ elapsed: Duration = .zero) -> Duration? {
      policy.delay(after: end, elapsed: elapsed, using: &generator)
    }
    #expect(next(.tokenRefused(healthy: true)) == nil)
    #expect(policy.attempt == 0)
    #expect(next(.tokenRefused(healthy: false)) == .milliseconds(100))
    #expect(next(.tokenRefused(healthy: false), .seconds(5)) == .milliseconds(200))
    // A healthy stream whose token was refused keeps the count it had.
    #expect(next(.tokenRefused(healthy: true)) == .milliseconds(200))
    #expect(policy.attempt == 2)
    #expect(next(.broke(healthy: false)) == .milliseconds(400))
    #expect(policy.attempt == 3)
  }

  @Test("jitter stays within its band and never makes a delay negative")
  func jitter() {
    var policy = ReconnectBackoff(backoff: Backoff(initial: .milliseconds(100), maximum: .seconds(1), jitter: 0.2))
    var generator = SystemRandomNumberGenerator()
    for _ in 0..<20 {
      let delay = policy.delay(after: .broke(healthy: true), elapsed: .milliseconds(50), using: &generator)
      #expect(delay.map { $0 >= .milliseconds(30) - .microseconds(1) && $0 <= .milliseconds(70) } == true)
      #expect(policy.delay(after: .broke(healthy: false), elapsed: .seconds(2), using: &generator) == .zero)
    }
  }

  @Test("the loop marks broken members failed, drops refused tokens, and spaces attempts by the policy")
  func loop() async {
    let clock = SteppingClock()
    let members = NumberedMembers()
    let (wakeups, _) = AsyncStream<Void>.makeStream()
    // Each attempt: how long it takes and how it ends. The loop stops after the last one.
    let script: [(Duration, StreamAttemptEnd)] = [
      (.zero, .broke(healthy: false)),
      (.milliseconds(150), .broke(healthy: false)),
      (.seconds(2), .broke(healthy: false)),
      (.milliseconds(10), .tokenRefused(healthy: false)),
      (.milliseconds(30), .broke(healthy: true)),
      (.zero, .tokenRefused(healthy: true)),
    ]
    var started: [Duration] = []
    var picked: [Int] = []
    await StreamReconnector(backoff: backoff, clock: clock).run(
      members: members,
      wakeups: wakeups,
      isShutdown: { started.count > script.count },
      hasWork: { true },
      attempt: { member in
        started.append(clock.elapsed)
        picked.append(member)
        guard started.count <= script.count else { return .broke(healthy: false) }
        let (takes, end) = script[started.count - 1]
        clock.advance(by: takes)
        return end
      }
    )
    #expect(picked == Array(0...6))
    #expect(members.failed == [0, 1, 2, 4])
    #expect(members.tokensDropped == [3, 5])
    // Attempts start one delay apart: 100 ms after one that failed at once, 200 ms after the start
    // of one that took 150 ms, at once after one that took longer than its 400 ms. The refused
    // token counts as attempt 4 and waits the delay of attempt 3 (800 ms); the healthy stream starts
    // the count over (100 ms - 30 ms); a healthy stream's refusal keeps the count (1: 100 ms).
    #expect(
      clock.sleeps == [
        .milliseconds(100), .milliseconds(50), .zero, .milliseconds(800), .milliseconds(70), .milliseconds(100),
      ]
    )
    #expect(
      started == [
        .zero, .milliseconds(100), .milliseconds(300), .milliseconds(2_300), .milliseconds(3_110),
        .milliseconds(3_210), .milliseconds(3_310),
      ]
    )
  }

  @Test("with no work the loop waits for a wake-up, and returns when the wake-ups end")
  func idle() async {
    let members = NumberedMembers()
    let (wakeups, wake) = AsyncStream<Void>.makeStream()
    wake.yield()
    wake.yield()
    wake.finish()
    var checks = 0
    var attempts = 0
    await StreamReconnector(backoff: backoff, clock: SteppingClock()).run(
      members: members,
      wakeups: wakeups,
      isShutdown: { false },
      hasWork: {
        checks += 1
        return false
      },
      attempt: { _ in
        attempts += 1
        return .broke(healthy: false)
      }
    )
    #expect(attempts == 0)
    #expect(checks == 3)
  }

  @Test("a shutdown during an attempt ends the loop without marking the member or sleeping")
  func shutdownDuringAttempt() async {
    let clock = SteppingClock()
    let members = NumberedMembers()
    let (wakeups, _) = AsyncStream<Void>.makeStream()
    var shutDown = false
    await StreamReconnector(backoff: backoff, clock: clock).run(
      members: members,
      wakeups: wakeups,
      isShutdown: { shutDown },
      hasWork: { true },
      attempt: { _ in
        shutDown = true
        return .tokenRefused(healthy: false)
      }
    )
    #expect(members.failed.isEmpty)
    #expect(members.tokensDropped.isEmpty)
    #expect(clock.sleeps.isEmpty)
  }
}
