import Foundation
import SwitchyardLab
import SwitchyardProcess

/// Issue 24's routes: how fast a route written to etcd carries traffic (``routePuts()``), what a fleet of
/// services and routes costs (``routeFleet()``, in RouteFleetScenario.swift), and how evenly a backend
/// past HAProxy's round-robin limit spreads requests (``routeFairness()``, in RouteFairnessScenario.swift).
/// Each runs the `runtime` strategy, on a controller that serves every service in etcd.
extension Scenarios {
  /// The service that routes under measurement point to: one instance, on the probe test server, so an
  /// answer from `probe` says that the route was used.
  static let routedService = "routed"

  /// The pause between two probes of a route: one request at a time, then 1 ms, so the poller leaves the
  /// controller and HAProxy their share of the two cores (a route sends every request to one server, so
  /// there is no round robin to outwait with parallel requests, as convergence must).
  static let routePollPause = Duration.milliseconds(1)

  /// `(--quick: …)` for a variant whose sizes `--quick` shrinks.
  func quickNote(_ full: String) -> String {
    options.quick ? " (--quick; full size: \(full))" : ""
  }

  // MARK: Route put → first request routed

  /// `routePuts` times: a new route to an existing service with a path prefix of its own is written, and
  /// the LB is probed on that path until the service answers (put acknowledged → its first answer is in);
  /// then the route is deleted and probed until the default service answers (delete acknowledged → its
  /// first answer is in) and no request sent in the quiet period has reached the route's service (delete
  /// acknowledged → the last request the route still carried was sent, as convergence measures instances).
  /// Unmatched paths go to the default service (`backend`, the six-server fleet). The probe's round trip
  /// (a new connection each, 1–3 ms here) bounds both figures' resolution.
  func routePuts() async throws -> ScenarioResult {
    let sizes = RouteBenchSizes(quick: options.quick)
    var result = ScenarioResult(
      name: "routes",
      strategy: "runtime",
      variant: "\(sizes.routePuts) new routes, default service of 6 servers" + quickNote("200")
    )
    try await lab.withEverythingCleared {
      try await lab.registerFleet()
      try await lab.register("probe-0", service: Self.routedService, port: lab.probe.port)
      try await LBNode.with(lab: lab, strategy: "runtime", services: []) { node in
        try await lab.waitFleetServing(node)
        try await node.waitUntil(backend: "svc_\(Self.routedService)", interval: .milliseconds(20)) { _, active in
          active.contains("probe-0")
        }
        let roundTrip = try await probeRoundTrips(port: node.listenPort, path: "/")
        let reloadsBefore = try await node.reloads()
        let updatesBefore = try await node.metric("switchyard_route_updates_total")
        var puts: [Double] = []
        var deletes: [Double] = []
        var lastRouted: [Double] = []
        var timeouts = 0
        let probe = lab.probe.name
        for run in 0..<sizes.routePuts {
          let name = "put-\(run)"
          let path = "/\(name)/x"
          // Longer than the controller's quiet window: the controller is idle when the next write comes.
          try await Task.sleep(for: .milliseconds(120))
          try await lab.putRoute(
            name, service: Self.routedService, pathPrefix: "/\(name)", stripPrefix: run.isMultiple(of: 2))
          let acknowledged = ContinuousClock.now
          if let routed = try await firstAnswer(
            port: node.listenPort, path: path, after: acknowledged, where: { $0.from(probe) })
          {
            puts.append(milliseconds(acknowledged.duration(to: routed)))
          } else {
            timeouts += 1
          }

          try await Task.sleep(for: .milliseconds(120))
          try await lab.deleteRoute(name)
          let deleted = ContinuousClock.now
          if let moved = try await routeLeft(port: node.listenPort, path: path, after: deleted, server: probe) {
            deletes.append(milliseconds(deleted.duration(to: moved.firstElsewhere)))
            lastRouted.append(milliseconds(deleted.duration(to: moved.lastRouted)))
          } else {
            timeouts += 1
          }
        }
        result.add("route_puts", Double(sizes.routePuts))
        result.add("put", LatencySummary(milliseconds: puts))
        result.add("delete", LatencySummary(milliseconds: deletes))
        result.add("delete_last_routed", LatencySummary(milliseconds: lastRouted))
        result.add("timeouts", Double(timeouts))
        result.add("probe_round_trip", roundTrip)
        result.add("map_updates", try await node.metric("switchyard_route_updates_total") - updatesBefore)
        result.add("reloads", try await node.reloads() - reloadsBefore)
      }
    }
    return result
  }

  /// The round trip of 50 probes of `path` with nothing changing (sent → answer in): the part of every
  /// figure above that is the probe's own, not the change's.
  func probeRoundTrips(port: Int, path: String) async throws -> LatencySummary {
    var samples: [Double] = []
    for _ in 0..<50 {
      if let answer = await BenchLab.probe(port: port, path: path), answer.status == 200 {
        samples.append(milliseconds(answer.sent.duration(to: answer.answered)))
      }
      try await Task.sleep(for: Self.routePollPause)
    }
    return LatencySummary(milliseconds: samples)
  }

  /// Probes `path` one request at a time until an answer meets `wanted`; returns when that answer was in,
  /// or `nil` after 10 s.
  func firstAnswer(
    port: Int, path: String, after start: ContinuousClock.Instant, where wanted: (RouteAnswer) -> Bool
  ) async throws -> ContinuousClock.Instant? {
    let deadline = start.advanced(by: .seconds(10))
    while ContinuousClock.now < deadline {
      if let answer = await BenchLab.probe(port: port, path: path), wanted(answer) { return answer.answered }
      try await Task.sleep(for: Self.routePollPause)
    }
    return nil
  }

  /// Probes `path` one request at a time after the route that sent it to `server` was deleted, until an
  /// answer came from elsewhere and no request sent in the last quiet period
  /// (``BenchOptions/removalQuietPeriod``) reached `server`. Returns when the first answer from elsewhere
  /// was in (an upper bound of when the route left, like a put's figure) and when the last request that
  /// still reached `server` was sent (a lower bound, as convergence measures a delete: `start` if none
  /// did); `nil` after 10 s.
  func routeLeft(port: Int, path: String, after start: ContinuousClock.Instant, server: String) async throws
    -> (firstElsewhere: ContinuousClock.Instant, lastRouted: ContinuousClock.Instant)?
  {
    let deadline = start.advanced(by: .seconds(10))
    var lastReached = start
    var firstElsewhere: ContinuousClock.Instant?
    while firstElsewhere == nil || lastReached.duration(to: .now) < options.removalQuietPeriod {
      guard ContinuousClock.now < deadline else { return nil }
      if let answer = await BenchLab.probe(port: port, path: path) {
        if answer.from(server) {
          if answer.sent > lastReached { lastReached = answer.sent }
        } else if answer.status == 200 && firstElsewhere == nil {
          firstElsewhere = answer.answered
        }
      }
      try await Task.sleep(for: Self.routePollPause)
    }
    guard let firstElsewhere else { return nil }
    return (firstElsewhere, lastReached)
  }
}
