/// When a structural reload may run: a structural change waits ``LoopTimings/reloadDelay`` for others to
/// join it, and two reloads are at least ``LoopTimings/minimumReloadInterval`` apart. Pure: the clock
/// comes in, a wait goes out.
public struct ReloadGate<Instant: InstantProtocol>: Sendable where Instant.Duration == Duration {
  /// How long the first structural change waits.
  public let delay: Duration
  /// The shortest time between two reloads.
  public let minimumInterval: Duration
  /// When the structural change that waits was first seen.
  public private(set) var pendingSince: Instant?
  /// When HAProxy last reloaded.
  public private(set) var lastReload: Instant?

  /// Creates a gate with nothing pending.
  public init(delay: Duration, minimumInterval: Duration) {
    self.delay = delay
    self.minimumInterval = minimumInterval
  }

  /// Whether a structural change waits for its reload.
  public var isPending: Bool { pendingSince != nil }

  /// A pass found a structural change at `now`: `nil` when the reload may run now, else how long to wait.
  public mutating func wait(now: Instant) -> Duration? {
    let since = pendingSince ?? now
    pendingSince = since
    var due = since.advanced(by: delay)
    if let lastReload, lastReload.advanced(by: minimumInterval) > due { due = lastReload.advanced(by: minimumInterval) }
    return due <= now ? nil : now.duration(to: due)
  }

  /// HAProxy reloaded (or started) at `now`: whatever waited is in.
  public mutating func reloaded(now: Instant) {
    lastReload = now
    pendingSince = nil
  }

  /// The structural change that waited is gone (undone before its reload).
  public mutating func settled() {
    pendingSince = nil
  }
}
