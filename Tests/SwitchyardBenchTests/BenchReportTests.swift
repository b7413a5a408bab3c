import Foundation
import Histogram
import SwitchyardBench
import Testing

@Suite struct LatencySummaryTests {
  @Test func nearestRankPercentiles() {
    let summary = LatencySummary(milliseconds: (1...100).map(Double.init).shuffled())
    #expect(summary.count == 100)
    #expect(summary.p50 == 50)
    #expect(summary.p90 == 90)
    #expect(summary.p99 == 99)
    #expect(summary.max == 100)
  }

  @Test func fewSamplesTakeTheLargestForHighPercentiles() {
    let summary = LatencySummary(milliseconds: [3, 1, 2])
    #expect(summary.p50 == 2)
    #expect(summary.p90 == 3)
    #expect(summary.p99 == 3)
    #expect(summary.max == 3)
  }

  @Test func noSamplesIsAllZero() {
    let summary = LatencySummary(milliseconds: [])
    #expect(summary == LatencySummary(milliseconds: [0]).with(count: 0))
  }

  @Test func histogramOfMicrosecondsGivesMilliseconds() {
    var histogram = Histogram<UInt64>(highestTrackableValue: 60_000_000, numberOfSignificantValueDigits: .three)
    for value in 1...1000 { _ = histogram.record(UInt64(value) * 1000) }
    let summary = LatencySummary(microseconds: histogram)
    #expect(summary.count == 1000)
    #expect(abs(summary.p50 - 500) < 1)
    #expect(abs(summary.p99 - 990) < 1)
    #expect(abs(summary.max - 1000) < 1)
  }
}

extension LatencySummary {
  fileprivate func with(count: Int) -> LatencySummary {
    var copy = self
    copy.count = count
    return copy
  }
}

@Suite struct BenchReportTests {
  func sample() -> BenchReport {
    var idle = ScenarioResult(name: "convergence", strategy: "runtime", variant: "idle")
    idle.add("add", LatencySummary(milliseconds: [1.5, 2.5]))
    idle.add("reloads", 0)
    var reload = ScenarioResult(name: "convergence", strategy: "reload", variant: "idle")
    reload.add("add_p50_ms", 40)
    reload.add("reloads", 12)
    var failed = ScenarioResult(name: "scale", strategy: "runtime", variant: "10 over 1")
    failed.error = "HAProxy did not \"start\"\nat all"
    return BenchReport(
      date: "2026-11-30T12:00:00Z",
      machine: "Linux 6.1, 2 cores",
      etcdVersion: "3.4.23",
      haproxyVersion: "2.6.12",
      build: "release",
      quick: true,
      durationSeconds: 95.4,
      scenarios: [idle, reload, failed]
    )
  }

  @Test func jsonHasTheRunFactsAndFlatScenarios() throws {
    let text = sample().json()
    let object = try #require(try JSONSerialization.jsonObject(with: Data(text.utf8)) as? [String: Any])
    #expect(object["etcd_version"] as? String == "3.4.23")
    #expect(object["haproxy_version"] as? String == "2.6.12")
    #expect(object["machine"] as? String == "Linux 6.1, 2 cores")
    #expect(object["quick"] as? Bool == true)
    let scenarios = try #require(object["scenarios"] as? [[String: Any]])
    #expect(scenarios.count == 3)
    #expect(scenarios[0]["name"] as? String == "convergence")
    #expect(scenarios[0]["strategy"] as? String == "runtime")
    #expect(scenarios[0]["add_p50_ms"] as? Double == 1.5)
    #expect(scenarios[0]["add_max_ms"] as? Double == 2.5)
    #expect(scenarios[1]["reloads"] as? Int == 12)
    #expect(scenarios[2]["error"] as? String == "HAProxy did not \"start\"\nat all")
  }

  @Test func markdownHasOneTablePerScenarioWithARowPerStrategy() {
    let text = sample().markdown()
    #expect(text.contains("### convergence"))
    #expect(
      text.contains("| strategy | variant | add_p50_ms | add_p90_ms | add_p99_ms | add_max_ms | reloads |"))
    #expect(text.contains("| runtime | idle | 1.50 | 2.50 | 2.50 | 2.50 | 0 |"))
    // A figure one row did not measure is a dash.
    #expect(text.contains("| reload | idle | 40 | — | — | — | 12 |"))
    #expect(text.contains("### scale"))
    #expect(text.contains("Failed (runtime, 10 over 1): HAProxy did not"))
  }

  @Test func goalsTablePutsTheStrategiesSideBySide() {
    let text = sample().markdown()
    #expect(text.contains("| figure | runtime | reload | must reach |"))
    #expect(text.contains("| put → first request served, p99 (idle) | 2.50 ms | — | ≤ 10 ms |"))
    // Figures no scenario measured (the failed scale run) are left out.
    #expect(!text.contains("first sync of the large fleet"))
  }

  @Test func displayGroupsThousandsAndKeepsSmallValuesPrecise() {
    #expect(BenchReport.display(12_345.6) == "12,346")
    #expect(BenchReport.display(1_000_000) == "1,000,000")
    #expect(BenchReport.display(7) == "7")
    #expect(BenchReport.display(42.25) == "42.2" || BenchReport.display(42.25) == "42.3")
    #expect(BenchReport.display(0.125) == "0.13" || BenchReport.display(0.125) == "0.12")
    #expect(BenchReport.display(-1500) == "-1,500")
  }
}
