import Foundation
import SwitchyardBench
import Testing

@Suite struct FairnessSummaryTests {
  @Test func countsHitsMinMaxAndSpread() {
    let summary = FairnessSummary(counts: [0, 2, 4, 6, 0, 0])
    #expect(summary.servers == 6)
    #expect(summary.requests == 12)
    #expect(summary.serversHit == 3)
    #expect(summary.serversMissed == 3)
    #expect(summary.minimum == 0)
    #expect(summary.maximum == 6)
    #expect(summary.mean == 2)
    // Deviations −2, 0, 2, 4, −2, −2: squares 4 + 0 + 4 + 16 + 4 + 4 = 32, over 6.
    #expect(abs(summary.standardDeviation - (32.0 / 6).squareRoot()) < 1e-12)
  }

  @Test func evenCountsHaveNoSpread() {
    let summary = FairnessSummary(counts: Array(repeating: 5, count: 6000))
    #expect(summary.serversHit == 6000)
    #expect(summary.minimum == 5 && summary.maximum == 5)
    #expect(summary.standardDeviation == 0)
  }

  @Test func noServersIsAllZero() {
    let summary = FairnessSummary(counts: [])
    #expect(summary.servers == 0 && summary.requests == 0 && summary.serversHit == 0)
    #expect(summary.mean == 0 && summary.standardDeviation == 0)
  }

  @Test func uniformDrawExpectation() {
    // One server gets every request; no request hits nothing.
    #expect(FairnessSummary.expectedServersHit(servers: 1, requests: 3) == 1)
    #expect(FairnessSummary.expectedServersHit(servers: 10, requests: 0) == 0)
    // Two servers, two requests: 2 × (1 − 1/4) = 1.5.
    #expect(abs(FairnessSummary.expectedServersHit(servers: 2, requests: 2) - 1.5) < 1e-12)
    // 30,000 requests over 6,000 servers: 6,000 × (1 − e^−5) ≈ 5,959.6.
    let large = FairnessSummary.expectedServersHit(servers: 6000, requests: 30_000)
    #expect(abs(large - 6000 * (1 - pow(1 - 1.0 / 6000, 30_000))) < 1e-6)
    #expect(large > 5959 && large < 5960)
  }
}

@Suite struct RouteBenchSizesTests {
  @Test func weightPutsTheBackendPastTheLimit() {
    // 6,000 × 100 = 600,000 is past 524,287 already.
    #expect(RouteBenchSizes.weightAbove(limit: 524_287, servers: 6000) == 100)
    // 2,100 servers need 250: 2,100 × 249 = 522,900 is not past it, 2,100 × 250 = 525,000 is.
    #expect(RouteBenchSizes.weightAbove(limit: 524_287, servers: 2100) == 250)
    // Exactly at the limit is not past it.
    #expect(RouteBenchSizes.weightAbove(limit: 1000, servers: 10) == 101)
    // No weight HAProxy accepts gets 2,000 servers past it.
    #expect(RouteBenchSizes.weightAbove(limit: 524_287, servers: 2000) == nil)
    #expect(RouteBenchSizes.weightAbove(limit: 524_287, servers: 0) == nil)
  }

  @Test func quickSizesStayPastTheLimitAndSmaller() {
    let quick = RouteBenchSizes(quick: true)
    let full = RouteBenchSizes(quick: false)
    #expect(full.fleetServices == 1000 && full.fleetInstances == 3000 && full.fleetRoutes == 2000)
    #expect(full.fairnessServers == 6000 && full.fairnessRequests == 30_000)
    #expect(quick.fleetServices < full.fleetServices && quick.fairnessServers < full.fairnessServers)
    #expect(RouteBenchSizes.weightAbove(limit: 524_287, servers: quick.fairnessServers) != nil)
  }
}

@Suite struct RouteGoalsTableTests {
  @Test func goalsAreMarkedReachedOrNot() {
    var puts = ScenarioResult(name: "routes", strategy: "runtime", variant: "10 new routes")
    puts.add("put_p99_ms", 4.5)
    puts.add("reloads", 0)
    var fleet = ScenarioResult(name: "routes-fleet", strategy: "runtime", variant: "1,000 services × 3")
    fleet.add("first_sync_ms", 3500)
    fleet.add("change_p99_ms", 12.34)
    fleet.add("controller_peak_rss_mb", 80)
    fleet.add("idle_cpu_percent", 0.5)
    let report = BenchReport(
      date: "2026-12-06T00:00:00Z", machine: "test", etcdVersion: "3.4", haproxyVersion: "2.6", build: "release",
      quick: false, scenarios: [puts, fleet])
    let markdown = report.markdown()
    #expect(markdown.contains("### Issue 24's figures, routes\n"))
    #expect(markdown.contains("| route put → first request routed, p99 | 4.50 ms | ≤ 10 ms | yes |"))
    #expect(markdown.contains("| one route change → traffic, fleet, p99 | 12.3 ms | ≤ 10 ms | no |"))
    #expect(markdown.contains("| first sync of the fleet | 3,500 ms | ≤ 3,000 ms | no |"))
    #expect(markdown.contains("| controller peak RSS, fleet | 80 MB | ≤ 200 MB | yes |"))
    #expect(markdown.contains("| reloads for route puts and changes | 0 | ≤ 0 | yes |"))
    #expect(markdown.contains("| controller CPU, fleet, nothing changing | 0.50 % | — | — |"))
    // Figures that were not measured get no row.
    #expect(!markdown.contains("HAProxy worker RSS"))
  }

  @Test func failedOrMissingRoutesScenariosGiveNoTable() {
    var failed = ScenarioResult(name: "routes", strategy: "runtime")
    failed.add("put_p99_ms", 1)
    failed.error = "boom"
    let report = BenchReport(
      date: "d", machine: "m", etcdVersion: "e", haproxyVersion: "h", build: "debug", quick: true,
      scenarios: [failed])
    #expect(!report.markdown().contains("Issue 24"))
  }
}
