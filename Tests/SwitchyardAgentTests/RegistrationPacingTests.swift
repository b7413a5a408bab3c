import Testing

@testable import SwitchyardAgent

/// Makes every jittered delay as short as the policy allows: `Double.random(in:using:)` maps this
/// draw to the lower bound. (Not 0: the standard library rejects an all-zero draw and draws again.)
private struct ShortestJitter: RandomNumberGenerator {
  mutating func next() -> UInt64 { 1 }
}

@Suite("Registrar pacing")
struct RegistrationPacingTests {
  @Test("the first attempt goes at once; retries double from 100 ms to the 2 s cap")
  func delays() {
    var pacing = RegistrationPacing()
    var random = ShortestJitter()
    let now = ContinuousClock.now
    #expect(pacing.delay(at: now, using: &random) == .zero)
    pacing.waited()
    var delays: [Duration] = []
    for _ in 0..<8 {
      delays.append(pacing.delay(at: now, using: &random))
      pacing.waited()
    }
    let expected: [Double] = [0.08, 0.16, 0.32, 0.64, 1.28, 1.6, 1.6, 1.6]
    for (delay, seconds) in zip(delays, expected) {
      #expect(abs(delay / .seconds(1) - seconds) < 1e-9, "\(delays)")
    }
  }

  @Test("a registration that stayed in place for the stable period starts the delays over; a shorter one does not")
  func startsOverWhenStable() {
    var pacing = RegistrationPacing(backoff: .init(initial: .milliseconds(100), maximum: .seconds(2), jitter: 0))
    var random = ShortestJitter()
    var now = ContinuousClock.now
    for _ in 0..<6 {
      _ = pacing.delay(at: now, using: &random)
      pacing.waited()
    }
    pacing.registered(at: now)
    now = now.advanced(by: .seconds(9))
    #expect(pacing.delay(at: now, using: &random) == .seconds(2), "held 9 s: still at the cap")
    pacing.waited()
    pacing.registered(at: now)
    now = now.advanced(by: .seconds(10))
    #expect(pacing.delay(at: now, using: &random) == .milliseconds(100), "held 10 s: from the start")
  }

  @Test("a wait cut short is not counted")
  func cancelledWait() {
    var pacing = RegistrationPacing(backoff: .init(initial: .milliseconds(100), maximum: .seconds(2), jitter: 0))
    var random = ShortestJitter()
    let now = ContinuousClock.now
    _ = pacing.delay(at: now, using: &random)
    pacing.waited()
    #expect(pacing.delay(at: now, using: &random) == .milliseconds(100))
    #expect(pacing.delay(at: now, using: &random) == .milliseconds(100))
    pacing.waited()
    #expect(pacing.delay(at: now, using: &random) == .milliseconds(200))
  }

  /// The adversary: every attempt fails at once, except that every `k`-th one stays registered for
  /// exactly the stable period, which starts the delays over.
  @Test(
    "the documented worst case: attempts in any minute, whatever ends them",
    arguments: [1, 2, 3, 5, 8, 13, 21, 34, 1000])
  func worstCasePerMinute(stableEvery k: Int) {
    var pacing = RegistrationPacing()
    var random = ShortestJitter()
    let start = ContinuousClock.now
    var now = start
    var attempts: [ContinuousClock.Instant] = []
    while start.duration(to: now) < .seconds(600) {
      now = now.advanced(by: pacing.delay(at: now, using: &random))
      pacing.waited()
      attempts.append(now)
      if attempts.count.isMultiple(of: k) {
        pacing.registered(at: now)
        now = now.advanced(by: pacing.stablePeriod)
      }
    }
    var most = 0
    var first = 0
    for last in attempts.indices {
      while attempts[first].duration(to: attempts[last]) > .seconds(60) { first += 1 }
      most = max(most, last - first + 1)
    }
    #expect(most <= RegistrationPacing.maximumAttemptsPerMinute)
    if k == 1000 { #expect(most == RegistrationPacing.maximumAttemptsPerMinute, "the bound is tight") }
  }
}
