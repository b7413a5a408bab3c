import Foundation
import HAProxyKit
import SwitchyardLab
import SwitchyardModel
import SwitchyardProcess

extension Scenarios {
  /// The service of the fairness run.
  static let fairService = "fair"

  /// The largest sum of server weights the controller runs round robin with, as
  /// `BackendPolicy.roundRobinWeightLimit` in SwitchyardReconcile says (this module does not depend on
  /// it): HAProxy's round robin key overflows above 2^19 − 1. The run reports the algorithm the controller
  /// chose (`balance` in `/state`), so a change of the limit there shows.
  static let roundRobinWeightLimit = 524_287

  // MARK: Fairness past the round-robin limit

  /// One backend of `fairnessServers` servers whose weights add up to more than HAProxy's round-robin limit
  /// (``roundRobinWeightLimit``), written before the controller starts, plus
  /// `fairnessRuntimeAdded` servers added through the Runtime API once it runs: about `fairnessRequests`
  /// requests through it on 16 keep-alive connections, then each server's count from HAProxy's `show stat`
  /// (`stot` after minus before): how many servers got at least one request, the fewest and the most. The
  /// servers share the six fleet servers' ports; their checks run every `fairnessCheckInterval`.
  func routeFairness() async throws -> ScenarioResult {
    let sizes = RouteBenchSizes(quick: options.quick)
    let limit = Self.roundRobinWeightLimit
    guard let weight = RouteBenchSizes.weightAbove(limit: limit, servers: sizes.fairnessServers) else {
      throw ProcessError("no weight puts \(sizes.fairnessServers) servers above \(limit)")
    }
    let total = sizes.fairnessServers + sizes.fairnessRuntimeAdded
    var result = ScenarioResult(
      name: "routes-fairness",
      strategy: "runtime",
      variant: "\(BenchReport.display(Double(sizes.fairnessServers))) servers × weight \(weight)"
        + " + \(sizes.fairnessRuntimeAdded) added at runtime" + quickNote("6,000 × weight 100 + 60, 30,000 requests")
    )
    try await lab.withEverythingCleared {
      let service = try ServiceName(validating: Self.fairService)
      let settings = try ServiceSettings(
        service: service, check: ServiceSettings.Check(interval: sizes.fairnessCheckInterval))
      var writes: [(key: String, value: [UInt8])] = [(ServiceSettings.path(for: service), settings.encoded())]
      for index in 0..<sizes.fairnessServers {
        let port = lab.fleet[index % lab.fleet.count].port
        writes.append(
          (BenchLab.key("s\(index)", service: Self.fairService), try BenchLab.value(port: port, weight: weight)))
      }
      try await lab.putInTransactions(writes)
      let backend = service.haproxyBackendName
      try await LBNode.with(lab: lab, strategy: "runtime", services: [Self.fairService]) { node in
        try await node.waitUntil(backend: backend, interval: .milliseconds(100)) { all, _ in
          all.count >= sizes.fairnessServers
        }
        let added = (0..<sizes.fairnessRuntimeAdded).map { "added\($0)" }
        let reloadsBefore = try await node.reloads()
        try await lab.putInTransactions(
          try added.enumerated().map { index, name in
            let port = lab.fleet[index % lab.fleet.count].port
            return (BenchLab.key(name, service: Self.fairService), try BenchLab.value(port: port, weight: weight))
          })
        try await node.waitUntil(backend: backend, interval: .milliseconds(100)) { _, active in
          active.isSuperset(of: added)
        }
        let reloads = try await node.reloads() - reloadsBefore
        let balance = try await node.state().services.first { $0.name == Self.fairService }?.balance ?? "unknown"

        let before = try await requestCounts(node, backend: backend)
        let load = try HTTPLoadClient.start(url: "http://127.0.0.1:\(node.listenPort)/", connections: 16)
        let deadline = ContinuousClock.now.advanced(by: .seconds(120))
        while load.currentReport.totalRequests < sizes.fairnessRequests && ContinuousClock.now < deadline {
          try await Task.sleep(for: .milliseconds(20))
        }
        let report = await load.stop()
        let after = try await requestCounts(node, backend: backend)
        let addedNames = Set(added)
        let counts = after.map { (name: $0.key, count: $0.value - (before[$0.key] ?? 0)) }
        let summary = FairnessSummary(counts: counts.map(\.count))
        let addedSummary = FairnessSummary(counts: counts.filter { addedNames.contains($0.name) }.map(\.count))

        result.variant += ", balance \(balance)"
        result.add("servers", Double(total))
        result.add("weight_sum", Double(total * weight))
        result.add("round_robin_limit", Double(limit))
        result.add("balance_random", balance == "random" ? 1 : 0)
        result.add("requests_sent", Double(report.totalRequests))
        result.add("failed_requests", Double(report.failures))
        result.add("requests_counted", Double(summary.requests))
        result.add("servers_hit", Double(summary.serversHit))
        result.add("servers_missed", Double(summary.serversMissed))
        result.add(
          "uniform_draw_hit", FairnessSummary.expectedServersHit(servers: summary.servers, requests: summary.requests))
        result.add("min_per_server", Double(summary.minimum))
        result.add("max_per_server", Double(summary.maximum))
        result.add("mean_per_server", summary.mean)
        result.add("stddev_per_server", summary.standardDeviation)
        result.add("runtime_added_hit", Double(addedSummary.serversHit))
        result.add("runtime_added_mean", addedSummary.mean)
        result.add("reloads_for_runtime_adds", reloads)
      }
    }
    return result
  }

  /// Every server of `backend` with its count of requests so far (`stot` in `show stat`).
  func requestCounts(_ node: LBNode, backend: String) async throws -> [String: Int] {
    var counts: [String: Int] = [:]
    for row in try await node.runtime.stats() where row.proxyName == backend && row.isServer {
      counts[row.serviceName] = row.totalSessions ?? 0
    }
    return counts
  }
}
