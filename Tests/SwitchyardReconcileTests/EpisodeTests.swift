import SwitchyardReconcile
import Testing

@Suite struct EpisodeTests {
  typealias Instant = ManualClock.Instant
  static func at(_ seconds: Int) -> Instant { Instant(offset: .seconds(seconds)) }

  @Test func oneLineToStartOneSummaryPerIntervalWhileItGrowsOneToEnd() {
    var episode = Episode<Instant>(summaryInterval: .seconds(30))
    #expect(episode.observe(count: 0, added: 0, now: Self.at(0)) == nil)
    #expect(episode.observe(count: 5, added: 5, now: Self.at(1)) == .started(count: 5))
    // 5,000 more, one pass each: silent until the interval has passed, then one summary of all of them.
    for second in 2..<31 { #expect(episode.observe(count: 5 + second, added: 1, now: Self.at(second)) == nil) }
    #expect(episode.observe(count: 5000, added: 4965, now: Self.at(31)) == .changed(count: 5000, added: 4994))
    // Nothing new: no summary, however long it lasts.
    #expect(episode.observe(count: 5000, added: 0, now: Self.at(100)) == nil)
    #expect(episode.observe(count: 0, added: 0, now: Self.at(120)) == .ended(lasted: .seconds(119), peak: 5000))
    #expect(episode.observe(count: 0, added: 0, now: Self.at(121)) == nil)
    // A new episode starts afresh.
    #expect(episode.observe(count: 1, added: 1, now: Self.at(130)) == .started(count: 1))
    #expect(episode.since == Self.at(130))
  }
}
