/// Issue 24's goals for routes, and whether the routes scenarios reached them.
extension BenchReport {
  /// One row of a goals table (the routes', the big backend's): a figure of one scenario and the most it
  /// may be (`nil`: shown without a goal).
  struct RouteGoal: Sendable {
    var figure: String
    var scenario: String
    var key: String
    var unit: String
    var atMost: Double?
  }

  static let routeGoals: [RouteGoal] = [
    RouteGoal(
      figure: "route put → first request routed, p99", scenario: "routes", key: "put_p99_ms", unit: " ms", atMost: 10),
    RouteGoal(
      figure: "route delete → first request to the default service, p99", scenario: "routes", key: "delete_p99_ms",
      unit: " ms",
      atMost: 10),
    RouteGoal(
      figure: "one route change → traffic, fleet, p99", scenario: "routes-fleet", key: "change_p99_ms", unit: " ms",
      atMost: 10),
    RouteGoal(
      figure: "first sync of the fleet", scenario: "routes-fleet", key: "first_sync_ms", unit: " ms", atMost: 3000),
    RouteGoal(
      figure: "controller peak RSS, fleet", scenario: "routes-fleet", key: "controller_peak_rss_mb", unit: " MB",
      atMost: 200),
    RouteGoal(
      figure: "HAProxy worker RSS, fleet", scenario: "routes-fleet", key: "haproxy_worker_rss_mb", unit: " MB",
      atMost: 200),
    RouteGoal(
      figure: "reloads for route puts and changes", scenario: "routes", key: "reloads", unit: "", atMost: 0),
    RouteGoal(
      figure: "reloads for route changes, fleet", scenario: "routes-fleet", key: "reloads", unit: "", atMost: 0),
    RouteGoal(
      figure: "controller CPU, fleet, nothing changing", scenario: "routes-fleet", key: "idle_cpu_percent", unit: " %",
      atMost: nil),
    RouteGoal(
      figure: "servers that got no request, past the round-robin limit", scenario: "routes-fairness",
      key: "servers_missed", unit: "", atMost: nil),
  ]

  /// Issue 24's figures from the routes scenarios that ran without error, each with its goal and whether it
  /// was reached (`yes`/`no`; `—` where the issue sets none); empty when no routes scenario ran.
  func routeGoalsTable() -> [String] {
    reachedTable(Self.routeGoals)
  }

  /// `goals`' figures from the scenarios that ran without error, each with its goal and whether it was
  /// reached; empty when none of their scenarios ran.
  func reachedTable(_ goals: [RouteGoal]) -> [String] {
    var rows: [String] = []
    for goal in goals {
      guard let value = scenarios.first(where: { $0.name == goal.scenario && $0.error == nil })?[goal.key] else {
        continue
      }
      let target = goal.atMost.map { "≤ \(Self.display($0))\(goal.unit)" } ?? "—"
      let reached = goal.atMost.map { value <= $0 ? "yes" : "no" } ?? "—"
      rows.append("| \(goal.figure) | \(Self.display(value))\(goal.unit) | \(target) | \(reached) |")
    }
    guard !rows.isEmpty else { return [] }
    return ["| figure | measured | must reach | reached |", "| --- | ---: | --- | --- |"] + rows
  }
}
