import Testing

@testable import SwitchyardAgent

@Suite("Health rise/fall")
struct HealthTrackerTests {
  @Test("healthy on the first success; unhealthy after `fall` failures; healthy again after `rise` successes")
  func hysteresis() {
    var tracker = HealthTracker(rise: 2, fall: 3)
    #expect(tracker.record(success: true) == true)
    #expect(tracker.record(success: false) == nil)
    #expect(tracker.record(success: false) == nil)
    #expect(tracker.record(success: true) == nil, "a success resets the failure streak")
    #expect(tracker.record(success: false) == nil)
    #expect(tracker.record(success: false) == nil)
    #expect(tracker.record(success: false) == false)
    #expect(tracker.record(success: true) == nil)
    #expect(tracker.record(success: true) == true)
    #expect(tracker.healthy == true)
  }

  @Test("a service that never answers becomes unhealthy after `fall` probes")
  func neverHealthy() {
    var tracker = HealthTracker(rise: 2, fall: 2)
    #expect(tracker.record(success: false) == nil)
    #expect(tracker.record(success: false) == false)
    #expect(tracker.record(success: false) == nil)
  }
}
