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

  @Test(
    "responses are split into status and body; anything but HTTP/1.x is refused",
    arguments: [
      ("HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nok\n", 200, "ok\n"),
      ("HTTP/1.0 503 Service Unavailable\r\n\r\n", 503, ""),
      ("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n", 200, "abcde"),
      ("HTTP/2 200\r\n\r\n", nil, nil), ("garbage", nil, nil),
    ] as [(String, Int?, String?)]
  )
  func responses(text: String, status: Int?, body: String?) {
    let parsed = try? PlainHTTP.parse(text)
    #expect(parsed?.0 == status)
    #expect(parsed?.1 == body)
  }
}
