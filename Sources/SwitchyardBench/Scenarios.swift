import EtcdClient
import Foundation
import SwitchyardLab
import SwitchyardProcess

/// The scenarios. Each starts its own controller (and so HAProxy) on an empty `/services/`, and leaves it
/// empty behind.
struct Scenarios {
  let lab: BenchLab
  let options: BenchOptions

  // MARK: Convergence

  /// put acknowledged → first request served by the new instance; delete acknowledged → no new request
  /// reaches it. With the controller idle, or with another change written 50 ms before each.
  func convergence(strategy: String, changeBefore: Bool) async throws -> ScenarioResult {
    var result = ScenarioResult(
      name: "convergence",
      strategy: strategy,
      variant: changeBefore ? "change 50 ms before" : "idle"
    )
    try await LBNode.with(lab: lab, strategy: strategy) { node in
      try await lab.registerFleet()
      try await lab.waitFleetServing(node)
      var adds: [Double] = []
      var removes: [Double] = []
      var timeouts = 0
      var noiseRegistered = false
      func settleThenMaybeChange() async throws {
        // Longer than the controller's quiet window: the controller is idle when the next write comes.
        try await Task.sleep(for: .milliseconds(120))
        guard changeBefore else { return }
        if noiseRegistered {
          try await lab.deregister("noise")
        } else {
          try await lab.register("noise", port: lab.fleet[0].port)
        }
        noiseRegistered.toggle()
        try await Task.sleep(for: .milliseconds(50))
      }
      for run in 0..<options.convergenceRuns {
        let instance = "probe-\(run)"
        try await settleThenMaybeChange()
        try await lab.register(instance, port: lab.probe.port)
        let acknowledged = ContinuousClock.now
        var served: ContinuousClock.Instant?
        let addDeadline = acknowledged.advanced(by: .seconds(10))
        while served == nil && ContinuousClock.now < addDeadline {
          let answers = await BenchLab.pollRound(port: node.listenPort, parallel: options.pollParallel)
          // Served when the new instance's answer was in, not when the round's slowest answer was.
          served = answers.filter { $0.name == lab.probe.name }.map(\.answered).min()
          if served == nil { try await pollPause() }
        }
        if let served {
          adds.append(milliseconds(acknowledged.duration(to: served)))
        } else {
          timeouts += 1
        }

        try await settleThenMaybeChange()
        try await lab.deregister(instance)
        let deleted = ContinuousClock.now
        var lastReached = deleted
        var reachedAfterDelete = false
        let removeDeadline = deleted.advanced(by: .seconds(10))
        while lastReached.duration(to: .now) < options.removalQuietPeriod && ContinuousClock.now < removeDeadline {
          let answers = await BenchLab.pollRound(port: node.listenPort, parallel: options.pollParallel)
          for answer in answers where answer.name == lab.probe.name && answer.sent > lastReached {
            lastReached = answer.sent
            reachedAfterDelete = true
          }
          try await pollPause()
        }
        removes.append(reachedAfterDelete ? milliseconds(deleted.duration(to: lastReached)) : 0)
        if ContinuousClock.now >= removeDeadline { timeouts += 1 }
      }
      if noiseRegistered { try await lab.deregister("noise") }
      result.add("runs", Double(options.convergenceRuns))
      result.add("add", LatencySummary(milliseconds: adds))
      result.add("remove", LatencySummary(milliseconds: removes))
      result.add("timeouts", Double(timeouts))
      result.add("reloads", try await node.reloads())
    }
    try await lab.clear()
    return result
  }

  /// The pause between polling rounds, as a user polling every 2 ms would, so that the poller leaves the
  /// controller and HAProxy their share of the two cores.
  private func pollPause() async throws {
    try await Task.sleep(for: .milliseconds(2))
  }

  // MARK: Data plane

  /// Keep-alive requests/s straight to one backend, through the LB with servers added at runtime, and
  /// through the LB after a reload has made them servers from the file.
  func dataplane() async throws -> ScenarioResult {
    var result = ScenarioResult(name: "dataplane", strategy: "runtime", variant: "6 backends")
    let seconds = options.dataplaneDuration
    let connections = options.loadConnections
    let direct = await KeepAliveLoad.run(port: lab.fleet[0].port, connections: connections, duration: seconds)
    try await LBNode.with(lab: lab, strategy: "runtime") { node in
      try await lab.registerFleet()
      try await lab.waitFleetServing(node)
      let runtimeAdded = await KeepAliveLoad.run(port: node.listenPort, connections: connections, duration: seconds)
      try await node.reloadHAProxy()
      try await lab.waitFleetServing(node)
      let fromFile = await KeepAliveLoad.run(port: node.listenPort, connections: connections, duration: seconds)
      result.add("direct_rps", direct.requestsPerSecond)
      result.add("lb_runtime_rps", runtimeAdded.requestsPerSecond)
      result.add("lb_file_rps", fromFile.requestsPerSecond)
      result.add(
        "runtime_vs_file",
        fromFile.requestsPerSecond > 0 ? runtimeAdded.requestsPerSecond / fromFile.requestsPerSecond : 0)
      result.add(
        "lb_vs_direct", direct.requestsPerSecond > 0 ? fromFile.requestsPerSecond / direct.requestsPerSecond : 0)
      result.add("lb_runtime_p99_ms", LatencySummary(microseconds: runtimeAdded.latency).p99)
      result.add("lb_file_p99_ms", LatencySummary(microseconds: fromFile.latency).p99)
      result.add("failed_requests", Double(direct.failed + runtimeAdded.failed + fromFile.failed))
    }
    try await lab.clear()
    return result
  }

  // MARK: Churn

  /// Keep-alive load through the LB while `churnRate` changes a second are written (`churn`), or with no
  /// change at all (`control`).
  func churn(strategy: String, withChanges: Bool) async throws -> ScenarioResult {
    var result = ScenarioResult(
      name: withChanges ? "churn" : "control",
      strategy: strategy,
      variant: withChanges ? "\(options.churnRate) changes/s" : "no changes"
    )
    try await LBNode.with(lab: lab, strategy: strategy) { node in
      try await lab.registerFleet()
      try await lab.waitFleetServing(node)
      let reloadsBefore = try await node.reloads()
      let duration = options.churnDuration
      let connections = options.loadConnections
      let port = node.listenPort
      async let load = KeepAliveLoad.run(port: port, connections: connections, duration: duration)
      var changes = 0
      if withChanges {
        // Ten extra instances on the fleet's backends, each registered and deleted in turn. Open loop: each
        // change is written on schedule by a task of its own, so slow writes do not lower the rate.
        let start = ContinuousClock.now
        let interval = Duration.milliseconds(1000 / max(options.churnRate, 1))
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
            try await Task.sleep(until: start.advanced(by: interval * changes))
          }
          try await group.waitForAll()
        }
      }
      let report = await load
      let latency = LatencySummary(microseconds: report.latency)
      result.add("duration_s", report.seconds)
      result.add("changes", Double(changes))
      result.add("changes_per_s", Double(changes) / report.seconds)
      result.add("requests", Double(report.requests))
      result.add("requests_per_s", report.requestsPerSecond)
      result.add("failed_requests", Double(report.failed))
      result.add("failed_connect", Double(report.failedConnect))
      result.add("failed_closed", Double(report.failedClosed))
      result.add("failed_status", Double(report.failedStatus))
      result.add("latency_p50_ms", latency.p50)
      result.add("latency_p99_ms", latency.p99)
      result.add("reloads", try await node.reloads() - reloadsBefore)
    }
    try await lab.clear()
    return result
  }

  // MARK: Bursts

  /// `burstSize` adds written at once by 16 writers, then as many deletes, on a fleet of `fleetSize`: the
  /// time from the last acknowledged write until HAProxy has them all (or none).
  ///
  /// The large fleet's instances weigh 45: 11,000 servers then add up to 495,000, under round robin's
  /// limit (``BackendPolicy/roundRobinWeightLimit``), as the big-backend scenario's do. At weight 100
  /// the controller would run the backend with `balance random`, which HAProxy takes 20–25 s and 800 MB to
  /// load for 10,000 servers (an open problem, see docs/troubleshooting.md).
  func burst(strategy: String, fleetSize: Int) async throws -> ScenarioResult {
    let large = fleetSize > lab.fleet.count
    let weight = large ? 45 : 100
    var result = ScenarioResult(
      name: "burst",
      strategy: strategy,
      variant: "\(large ? "large" : "small") fleet, \(fleetSize)\(large ? ", weight 45" : "")"
    )
    if large {
      let entries = (0..<fleetSize).map { (key: BenchLab.key("filler-\($0)"), port: lab.closedPort) }
      try await lab.putAll(entries, weight: weight, writers: 32)
    } else {
      try await lab.registerFleet()
    }
    let interval: Duration = large ? .milliseconds(20) : .milliseconds(2)
    try await LBNode.with(lab: lab, strategy: strategy) { node in
      try await node.waitUntil(interval: .milliseconds(100)) { all, _ in all.count >= fleetSize }
      let names = (0..<options.burstSize).map { "burst-\($0)" }
      let wanted = Set(names)
      let reloadsBefore = try await node.reloads()
      let passesBefore = try await node.metric("switchyard_reconciles_total")
      let writeStart = ContinuousClock.now
      try await lab.putAll(
        names.enumerated().map { (key: BenchLab.key($1), port: lab.fleet[$0 % lab.fleet.count].port) }, weight: weight)
      let written = ContinuousClock.now
      let addRevision = try await lab.revision()
      let allIn = try await node.waitUntil(applied: addRevision, interval: interval) { _, active in
        wanted.isSubset(of: active)
      }
      result.add("burst", Double(options.burstSize))
      result.add("add_write_ms", milliseconds(writeStart.duration(to: written)))
      result.add("add_all_in_ms", milliseconds(written.duration(to: allIn)))

      let deleteStart = ContinuousClock.now
      try await lab.deleteAll(names.map { BenchLab.key($0) })
      let deleted = ContinuousClock.now
      let deleteRevision = try await lab.revision()
      let allOut = try await node.waitUntil(applied: deleteRevision, interval: interval) { _, active in
        active.isDisjoint(with: wanted)
      }
      let allGone = try await node.waitUntil(interval: interval) { all, _ in all.isDisjoint(with: wanted) }
      result.add("remove_write_ms", milliseconds(deleteStart.duration(to: deleted)))
      result.add("remove_all_out_ms", milliseconds(deleted.duration(to: allOut)))
      result.add("remove_all_gone_ms", milliseconds(deleted.duration(to: allGone)))
      result.add("passes", try await node.metric("switchyard_reconciles_total") - passesBefore)
      result.add("reloads", try await node.reloads() - reloadsBefore)
    }
    try await lab.clear()
    return result
  }

  // MARK: Scale

  /// `scaleInstances` instances over `scaleServices` services, written before the controller starts: first
  /// sync, peak RSS, idle CPU, and single changes' latency on that fleet.
  func scale(strategy: String) async throws -> ScenarioResult {
    let services = (0..<options.scaleServices).map { "app\($0)" }
    var result = ScenarioResult(
      name: "scale",
      strategy: strategy,
      variant: "\(options.scaleInstances) over \(services.count) services"
    )
    let entries = (0..<options.scaleInstances).map {
      (key: BenchLab.key("i-\($0)", service: services[$0 % services.count]), port: lab.closedPort)
    }
    try await lab.putAll(entries, writers: 32)
    try await LBNode.with(lab: lab, strategy: strategy, services: services) { node in
      let ready = ContinuousClock.now
      let synced = try await node.waitUntil(backend: nil, interval: .milliseconds(20)) { all, _ in
        all.count >= options.scaleInstances
      }
      result.add("instances", Double(options.scaleInstances))
      result.add("ready_ms", milliseconds(node.started.duration(to: ready)))
      result.add("first_sync_ms", milliseconds(node.started.duration(to: synced)))
      // Let the first pass's follow-ups finish, then measure a quiet controller.
      try await Task.sleep(for: options.quick ? .seconds(1) : .seconds(2))
      let cpuBefore = node.cpuSeconds()
      let idleStart = ContinuousClock.now
      try await Task.sleep(for: options.idleCPUDuration)
      let idleSeconds = KeepAliveLoad.seconds(idleStart.duration(to: .now))
      result.add("idle_cpu_percent", (node.cpuSeconds() - cpuBefore) / idleSeconds * 100)

      let service = services[services.count / 2]
      let backend = "svc_\(service)"
      var adds: [Double] = []
      var removes: [Double] = []
      for change in 0..<options.scaleChanges {
        let name = "change-\(change)"
        try await Task.sleep(for: .milliseconds(150))
        try await lab.register(name, service: service, port: lab.fleet[0].port)
        let written = ContinuousClock.now
        let added = try await node.waitUntil(backend: backend) { _, active in active.contains(name) }
        adds.append(milliseconds(written.duration(to: added)))
        try await Task.sleep(for: .milliseconds(150))
        try await lab.deregister(name, service: service)
        let deleted = ContinuousClock.now
        let removed = try await node.waitUntil(backend: backend) { _, active in !active.contains(name) }
        removes.append(milliseconds(deleted.duration(to: removed)))
      }
      result.add("change_add", LatencySummary(milliseconds: adds))
      result.add("change_remove", LatencySummary(milliseconds: removes))
      result.add("peak_rss_mb", node.peakRSSMegabytes())
    }
    try await lab.clear()
    return result
  }
}
