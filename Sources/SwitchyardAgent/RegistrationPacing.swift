import EtcdClient

/// When the ``Registrar`` may make its next attempt to (re)register: the one place that bounds
/// how often it writes to etcd.
///
/// The first attempt goes at once. Each later one waits `backoff.delay(attempt: retries)` — 100 ms
/// doubling to 2 s, ±20 % jitter — where `retries` counts the waits since the registration last
/// stayed in place for `stablePeriod` (10 s). So a key that is lost again and again (two processes
/// with the same ID, say), a value that flaps, or an etcd that fails every call all settle at one
/// attempt every 1.6 to 2.4 s, and a backend that was registered for a while re-registers after
/// about 100 ms.
///
/// Worst case: ``maximumAttemptsPerMinute`` attempts in any minute (37.5 a minute at the cap);
/// the tests check this number against the policy.
struct RegistrationPacing: Sendable {
  /// At most this many attempts fall into any minute.
  static let maximumAttemptsPerMinute = 41

  /// The delays between attempts.
  let backoff: Backoff
  /// How long a registration must stay in place before the delays start over from the shortest.
  let stablePeriod: Duration
  /// Waits since the delays last started over.
  private(set) var retries = 0
  private var isFirstAttempt = true
  private var registeredSince: ContinuousClock.Instant?

  /// The registrar's policy; ``maximumAttemptsPerMinute`` holds for the defaults only.
  init(
    backoff: Backoff = Backoff(initial: .milliseconds(100), maximum: .seconds(2)),
    stablePeriod: Duration = .seconds(10)
  ) {
    self.backoff = backoff
    self.stablePeriod = stablePeriod
  }

  /// The wait before the next attempt; call ``waited()`` once it is over. A wait that is cut
  /// short (cancelled) is not counted, and the next one is as long.
  mutating func delay(at now: ContinuousClock.Instant, using random: inout some RandomNumberGenerator) -> Duration {
    if let since = registeredSince, since.duration(to: now) >= stablePeriod { retries = 0 }
    registeredSince = nil
    return isFirstAttempt ? .zero : backoff.delay(attempt: retries, using: &random)
  }

  /// The wait before an attempt is over; the attempt starts.
  mutating func waited() {
    if isFirstAttempt {
      isFirstAttempt = false
    } else {
      retries += 1
    }
  }

  /// An attempt registered the key (or found it in place) at `now`.
  mutating func registered(at now: ContinuousClock.Instant) {
    registeredSince = now
  }
}
