import Foundation

/// The scenarios that compare two conditions under keep-alive load: servers added at runtime against
/// servers from the file (`dataplane`), and a node under churn against the same node at rest (`churn`).
///
/// Both alternate their conditions on one node (A B A B …) instead of measuring one after the other. On a
/// shared 2-core machine the requests/s of the same setup drift by ±10 % from one 10 s stretch to the next
/// (measured: 29,446–36,383 req/s for the same kind of stretch in three runs); a comparison of two
/// stretches taken a minute apart measures that drift as much as the difference. Alternating puts both conditions through the
/// same drift, and each pair's own ratio is reported beside the whole so the spread shows.
extension Scenarios {
  // MARK: Data plane

  /// Keep-alive requests/s straight to one backend, and through the LB in alternating slices, four rounds
  /// of two: the fleet's servers added at runtime, then (after a reload) the same servers from the file;
  /// each next round adds them at runtime again under new instance names (the file's servers deleted).
  func dataplane() async throws -> ScenarioResult {
    var result = ScenarioResult(name: "dataplane", strategy: "runtime", variant: "6 backends")
    let slice = options.dataplaneDuration / 2
    let rounds = 4
    let connections = options.loadConnections
    let direct = await KeepAliveLoad.run(port: lab.fleet[0].port, connections: connections, duration: slice * 2)
    var runtime: [LoadResult] = []
    var file: [LoadResult] = []
    try await LBNode.with(lab: lab, strategy: "runtime") { node in
      for round in 0..<rounds {
        // Round 0 registers fleet-N, round 1 fleet-N-r1 and then deletes fleet-N, and so on: the servers
        // HAProxy has after it were all added through the Runtime API.
        try await lab.registerFleet(suffix: Self.fleetSuffix(round))
        if round > 0 { try await lab.deregisterFleet(suffix: Self.fleetSuffix(round - 1)) }
        try await lab.waitFleetServing(node)
        runtime.append(await KeepAliveLoad.run(port: node.listenPort, connections: connections, duration: slice))
        try await node.reloadHAProxy()
        try await lab.waitFleetServing(node)
        file.append(await KeepAliveLoad.run(port: node.listenPort, connections: connections, duration: slice))
      }
    }
    let runtimeTotal = runtime.merged()
    let fileTotal = file.merged()
    let pairs = zip(runtime, file).map { $0.requestsPerSecond / max($1.requestsPerSecond, 1) }
    result.add("direct_rps", direct.requestsPerSecond)
    result.add("lb_runtime_rps", runtimeTotal.requestsPerSecond)
    result.add("lb_file_rps", fileTotal.requestsPerSecond)
    result.add(
      "runtime_vs_file",
      fileTotal.requestsPerSecond > 0 ? runtimeTotal.requestsPerSecond / fileTotal.requestsPerSecond : 0)
    result.add("pair_ratio_min", pairs.min() ?? 0)
    result.add("pair_ratio_max", pairs.max() ?? 0)
    result.add(
      "lb_vs_direct",
      direct.requestsPerSecond > 0 ? fileTotal.requestsPerSecond / direct.requestsPerSecond : 0)
    result.add("lb_runtime_p99_ms", LatencySummary(microseconds: runtimeTotal.latency).p99)
    result.add("lb_file_p99_ms", LatencySummary(microseconds: fileTotal.latency).p99)
    result.add("failed_requests", Double(direct.failed + runtimeTotal.failed + fileTotal.failed))
    try await lab.clear()
    return result
  }

  private static func fleetSuffix(_ round: Int) -> String { round == 0 ? "" : "-r\(round)" }

  // MARK: Churn

  /// Keep-alive load through one node for `2 × churnDuration`, in windows that alternate between no change
  /// (`control`) and `churnRate` changes a second (`churn`). The first fifth of each window is load that is
  /// not counted in its requests/s or latencies, so the work a change window leaves behind (drains, the
  /// config file's flush) falls into neither figure; failed requests count in every part of a window.
  func churn(strategy: String) async throws -> [ScenarioResult] {
    let window = min(.seconds(5), options.churnDuration / 2)
    let windowsPerKind = max(1, Int((options.churnDuration / window).rounded()))
    var control = ChurnTally()
    var churn = ChurnTally()
    try await LBNode.with(lab: lab, strategy: strategy) { node in
      try await lab.registerFleet()
      try await lab.waitFleetServing(node)
      var changes = 0
      for index in 0..<(2 * windowsPerKind) {
        let changing = index % 2 == 1
        let reloadsBefore = try await node.reloads()
        async let load = KeepAliveLoad.run(
          port: node.listenPort, connections: options.loadConnections, duration: window, settle: window / 5)
        if changing { changes = try await writeChanges(for: window, startingAt: changes) }
        let seen = await load
        let reloads = try await node.reloads() - reloadsBefore
        if changing {
          churn.add(seen, reloads: reloads)
        } else {
          control.add(seen, reloads: reloads)
        }
      }
      churn.changes = changes
    }
    try await lab.clear()
    let variantOfChurn = "\(options.churnRate) changes/s"
    return [
      control.result(name: "control", strategy: strategy, variant: "no changes", window: window),
      churn.result(name: "churn", strategy: strategy, variant: variantOfChurn, window: window, against: control),
    ]
  }

  /// Writes `churnRate` changes a second for `duration`: ten extra instances on the fleet's backends, each
  /// registered and deleted in turn, open loop (each change on schedule by a task of its own, so slow writes
  /// do not lower the rate). Returns the count of changes written so far, `first` included.
  private func writeChanges(for duration: Duration, startingAt first: Int) async throws -> Int {
    let start = ContinuousClock.now
    let interval = Duration.milliseconds(1000 / max(options.churnRate, 1))
    var changes = first
    var written = 0
    try await withThrowingTaskGroup(of: Void.self) { group in
      while start.duration(to: .now) < duration {
        let slot = changes % 20
        let name = "churn-\(slot % 10)"
        let port = lab.fleet[changes % lab.fleet.count].port
        group.addTask {
          if slot < 10 {
            try await lab.register(name, port: port)
          } else {
            try await lab.deregister(name)
          }
        }
        changes += 1
        written += 1
        try await Task.sleep(until: start.advanced(by: interval * written))
      }
      try await group.waitForAll()
    }
    return changes
  }
}

/// What one kind of churn window (with changes or without) added up to.
private struct ChurnTally {
  var seen = LoadResult()
  var windowRates: [Double] = []
  var reloads = 0.0
  var changes = 0

  mutating func add(_ window: LoadResult, reloads: Double) {
    seen.append(window)
    windowRates.append(window.requestsPerSecond)
    self.reloads += reloads
  }

  func result(
    name: String, strategy: String, variant: String, window: Duration, against control: ChurnTally? = nil
  ) -> ScenarioResult {
    var result = ScenarioResult(name: name, strategy: strategy, variant: variant)
    let latency = LatencySummary(microseconds: seen.latency)
    result.add("windows", Double(windowRates.count))
    result.add("window_s", KeepAliveLoad.seconds(window))
    result.add("counted_s", seen.seconds)
    result.add("changes", Double(changes))
    result.add("changes_per_s", Double(changes) / (Double(windowRates.count) * KeepAliveLoad.seconds(window)))
    result.add("requests", Double(seen.requests))
    result.add("requests_per_s", seen.requestsPerSecond)
    result.add("window_rps_min", windowRates.min() ?? 0)
    result.add("window_rps_max", windowRates.max() ?? 0)
    if let control, control.seen.requestsPerSecond > 0 {
      result.add("vs_control", seen.requestsPerSecond / control.seen.requestsPerSecond)
    }
    result.add("failed_requests", Double(seen.failed))
    result.add("failed_connect", Double(seen.failedConnect))
    result.add("failed_closed", Double(seen.failedClosed))
    result.add("failed_status", Double(seen.failedStatus))
    result.add("latency_p50_ms", latency.p50)
    result.add("latency_p99_ms", latency.p99)
    result.add("reloads", reloads)
    return result
  }
}

extension [LoadResult] {
  /// The runs one after the other: their requests, latencies and seconds added up.
  fileprivate func merged() -> LoadResult {
    var total = LoadResult()
    for part in self { total.append(part) }
    return total
  }
}
