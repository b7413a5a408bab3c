import SwitchyardModel

/// A node's history of the last ``capacity`` revisions its watch delivered, and when each was applied:
/// a ring buffer, so that recording costs the same whatever the fleet and however long the node runs.
///
/// The watch records each event as it arrives (``record(revision:key:deleted:at:)``), a pass that brought
/// HAProxy in step with a revision marks every revision up to it applied (``applied(through:at:)``). A
/// revision that arrives once its revision is applied already (a full read covered it) is applied when
/// seen.
public struct ChangeHistory: Sendable {
  /// How many revisions are kept.
  public let capacity: Int
  /// At most this many keys are kept per revision; ``ChangeRecord/eventCount`` counts all of them.
  public static let maxEventsPerRevision = 8

  private var ring: [ChangeRecord] = []
  /// Where the next record goes once the ring is full (the oldest record).
  private var next = 0
  private var appliedThrough: Int64 = 0

  /// An empty history of at most `capacity` revisions.
  public init(capacity: Int = 200) {
    self.capacity = max(1, capacity)
    ring.reserveCapacity(self.capacity)
  }

  /// Records one event of the watch, seen at `now` (milliseconds since 1970). Events of one revision
  /// share a record; `key` is escaped and shortened here.
  public mutating func record(revision: Int64, key: some StringProtocol, deleted: Bool, at now: Int64) {
    let event = ChangeRecord.Event(key: RegistrationError.escape(key, limit: 200), kind: deleted ? "delete" : "put")
    if let last = newestIndex, ring[last].revision == revision {
      ring[last].eventCount += 1
      if ring[last].events.count < Self.maxEventsPerRevision { ring[last].events.append(event) }
      return
    }
    let record = ChangeRecord(
      revision: revision, seenAt: now, appliedAt: revision <= appliedThrough ? now : nil, events: [event],
      eventCount: 1)
    if ring.count < capacity {
      ring.append(record)
    } else {
      ring[next] = record
      next = (next + 1) % capacity
    }
  }

  /// HAProxy is in step with `revision` as of `now`: every pending revision up to it is applied.
  public mutating func applied(through revision: Int64, at now: Int64) {
    guard revision > appliedThrough else { return }
    appliedThrough = revision
    for index in ring.indices where ring[index].appliedAt == nil && ring[index].revision <= revision {
      ring[index].appliedAt = now
    }
  }

  /// The records, oldest first.
  public var records: [ChangeRecord] {
    ring.count < capacity ? ring : Array(ring[next...] + ring[..<next])
  }

  private var newestIndex: Int? {
    guard !ring.isEmpty else { return nil }
    return ring.count < capacity ? ring.count - 1 : (next + capacity - 1) % capacity
  }
}
