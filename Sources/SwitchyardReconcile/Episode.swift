/// When to log a fault that lasts and may grow (invalid entries, etcd out of reach): one line when it
/// starts, at most one summary every ``summaryInterval`` while it changes, and one line when it ends,
/// never one per item. Pure: counts and the clock in, the line to log (if any) out.
public struct Episode<Instant: InstantProtocol>: Sendable where Instant.Duration == Duration {
  /// What to log.
  public enum Line: Sendable, Hashable {
    /// The fault began with `count` items.
    case started(count: Int)
    /// The fault goes on with `count` items, `added` of them new since the last line.
    case changed(count: Int, added: Int)
    /// The fault is over: it lasted `lasted`, with at most `peak` items at once.
    case ended(lasted: Duration, peak: Int)
  }

  /// The shortest time between two summaries of one episode.
  public let summaryInterval: Duration
  /// When the episode began, while it lasts.
  public private(set) var since: Instant?
  private var lastLine: Instant?
  private var peak = 0
  private var unreported = 0

  /// Creates a tracker with no episode in progress.
  public init(summaryInterval: Duration = .seconds(60)) {
    self.summaryInterval = summaryInterval
  }

  /// Takes the fault's current size: `count` items, `added` of them new since the last call.
  public mutating func observe(count: Int, added: Int, now: Instant) -> Line? {
    guard count > 0 else {
      guard let start = since else { return nil }
      defer { self = Episode(summaryInterval: summaryInterval) }
      return .ended(lasted: start.duration(to: now), peak: peak)
    }
    peak = max(peak, count)
    guard since != nil else {
      since = now
      lastLine = now
      return .started(count: count)
    }
    unreported += added
    guard unreported > 0, let last = lastLine, last.duration(to: now) >= summaryInterval else { return nil }
    lastLine = now
    defer { unreported = 0 }
    return .changed(count: count, added: unreported)
  }
}
