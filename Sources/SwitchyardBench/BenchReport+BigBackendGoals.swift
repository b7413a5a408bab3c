/// The goals of one change inside one big backend (the `big-backend` scenario).
extension BenchReport {
  static let bigBackendGoals: [RouteGoal] = [
    RouteGoal(
      figure: "one put beside a big backend → server in HAProxy, p99", scenario: "big-backend", key: "add_p99_ms",
      unit: " ms", atMost: 10),
    RouteGoal(
      figure: "one delete in a big backend → server out of HAProxy, p99", scenario: "big-backend",
      key: "remove_p99_ms", unit: " ms", atMost: 10),
    RouteGoal(
      figure: "controller CPU per change, big backend", scenario: "big-backend", key: "controller_cpu_ms_per_change",
      unit: " ms", atMost: nil),
    RouteGoal(
      figure: "reloads for single changes, big backend", scenario: "big-backend", key: "reloads", unit: "", atMost: 0),
  ]
}
