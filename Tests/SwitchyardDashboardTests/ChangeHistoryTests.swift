import SwitchyardDashboard
import Testing

@Suite("A node's history of recent changes")
struct ChangeHistoryTests {
  @Test func eventsOfOneRevisionShareARecordAndAPassAppliesThem() {
    var history = ChangeHistory(capacity: 10)
    history.record(revision: 5, key: "/services/backend/a", deleted: false, at: 1_000)
    history.record(revision: 5, key: "/services/backend/b", deleted: true, at: 1_001)
    history.record(revision: 6, key: "/services/web/c", deleted: false, at: 1_002)
    history.applied(through: 5, at: 1_010)
    let records = history.records
    #expect(records.map(\.revision) == [5, 6])
    #expect(records[0].events.map(\.kind) == ["put", "delete"] && records[0].eventCount == 2)
    #expect(records[0].seenAt == 1_000 && records[0].appliedAt == 1_010)
    #expect(records[1].appliedAt == nil)
    history.applied(through: 9, at: 1_020)
    #expect(history.records[1].appliedAt == 1_020)
    // An older revision than what was applied does not move the mark back.
    history.applied(through: 3, at: 1_030)
    #expect(history.records.map(\.appliedAt) == [1_010, 1_020])
  }

  @Test func aRevisionAFullReadCoveredIsAppliedWhenSeen() {
    var history = ChangeHistory()
    history.applied(through: 100, at: 5_000)
    history.record(revision: 99, key: "/services/backend/a", deleted: false, at: 5_100)
    #expect(history.records.first?.appliedAt == 5_100)
  }

  @Test func theRingKeepsTheNewestRevisionsInOrder() {
    var history = ChangeHistory(capacity: 3)
    for revision in Int64(1)...7 {
      history.record(revision: revision, key: "/services/backend/i\(revision)", deleted: false, at: revision * 10)
    }
    #expect(history.records.map(\.revision) == [5, 6, 7])
    history.applied(through: 6, at: 100)
    #expect(history.records.map(\.appliedAt) == [100, 100, nil])
    history.record(revision: 7, key: "/services/backend/again", deleted: true, at: 101)
    #expect(history.records.last?.eventCount == 2)
  }

  @Test func aLargeTransactionKeepsItsFirstKeysAndCountsAll() {
    var history = ChangeHistory()
    for index in 0..<1_000 { history.record(revision: 3, key: "/services/s/i\(index)", deleted: true, at: 1) }
    let record = try! #require(history.records.first)
    #expect(record.eventCount == 1_000 && record.events.count == ChangeHistory.maxEventsPerRevision)
  }

  @Test func keysAreEscapedAndShortened() {
    var history = ChangeHistory()
    let hostile = "/services/x/\n<script>alert(1)</script>\u{7}" + String(repeating: "y", count: 5_000)
    history.record(revision: 1, key: hostile, deleted: false, at: 1)
    let key = history.records[0].events[0].key
    #expect(!key.contains("\n") && !key.dropLast().unicodeScalars.contains { $0.value < 0x20 || $0.value > 0x7E })
    #expect(key.hasSuffix("…"))
    #expect(key.hasPrefix("/services/x/\\n<script>") && key.count < 220)
  }
}
