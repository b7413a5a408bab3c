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
