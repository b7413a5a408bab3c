import SwitchyardController
import Testing

/// When a node's record is written again (``AnnouncementSchedule``), without etcd.
@Suite struct AnnouncementScheduleTests {
  typealias Figures = AnnouncementSchedule.Figures
  let start = ContinuousClock.now

  func at(_ seconds: Double) -> ContinuousClock.Instant { start + .milliseconds(Int64(seconds * 1000)) }

  @Test func nothingChangesNothingIsWritten() {
    let figures = Figures(appliedRevision: 10, newestChange: 9, haproxyVersion: "2.6.12")
    var schedule = AnnouncementSchedule(announced: figures, at: start)
    for second in stride(from: 0.0, through: 600, by: 0.5) {
      #expect(schedule.decide(figures, now: at(second)) == .nothing)
    }
  }

  @Test func etcdsRevisionMovingWithoutAServedChangeIsNoNews() {
    var schedule = AnnouncementSchedule(
      announced: Figures(appliedRevision: 10, newestChange: 9, haproxyVersion: "2.6.12"), at: start)
    // A full pass read etcd's revision after other nodes' records were written.
    let later = Figures(appliedRevision: 14, newestChange: 9, haproxyVersion: "2.6.12")
    #expect(schedule.decide(later, now: at(60)) == .nothing)
  }

  @Test func aServedChangeIsWrittenAtMostEveryFiveSeconds() {
    var schedule = AnnouncementSchedule(
      announced: Figures(appliedRevision: 10, newestChange: 10, haproxyVersion: "2.6.12"), at: start)
    var writes: [Double] = []
    // A change every 100 ms for 30 s.
    for step in 1...300 {
      let second = Double(step) / 10
      let figures = Figures(appliedRevision: Int64(10 + step), newestChange: Int64(10 + step), haproxyVersion: "2.6.12")
      switch schedule.decide(figures, now: at(second)) {
      case .announce:
        writes.append(second)
        #expect(schedule.announced == figures)
      case .wait(let until):
        #expect(until > at(second) && until <= at(second + 5))
      case .nothing:
        Issue.record("a change at \(second) s was neither written nor waited for")
      }
    }
    #expect(writes == [5, 10, 15, 20, 25, 30])
  }

  @Test func aNewHAProxyVersionIsWrittenAtOnceWithTheRevisionOfTheMoment() {
    var schedule = AnnouncementSchedule(
      announced: Figures(appliedRevision: 10, newestChange: 10, haproxyVersion: nil), at: start)
    let upgraded = Figures(appliedRevision: 12, newestChange: 11, haproxyVersion: "3.0.11")
    #expect(schedule.decide(upgraded, now: at(0.5)) == .announce)
    #expect(schedule.announced == upgraded)
    // The revision it carried counts: the next one waits 5 s from then.
    let next = Figures(appliedRevision: 13, newestChange: 13, haproxyVersion: "3.0.11")
    #expect(schedule.decide(next, now: at(1)) == .wait(until: at(5.5)))
    #expect(schedule.decide(next, now: at(5.5)) == .announce)
  }
}
