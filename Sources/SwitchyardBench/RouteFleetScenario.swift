import Foundation
import SwitchyardLab
import SwitchyardProcess

extension Scenarios {
  /// The fleet's service `index`: `app-<index>`.
  static func fleetService(_ index: Int) -> String { "app-\(index)" }

  /// The test servers that answer for fleet service `index`: its instances share the six fleet servers'
  /// ports, instance `j` on server `(index + j) mod 6`.
  func fleetServers(_ index: Int, instances: Int) -> Set<String> {
    Set((0..<instances).map { lab.fleet[(index + $0) % lab.fleet.count].name })
  }

  /// The registrations and routes of the fleet: `fleetServices` services of `instancesPerService` instances
  /// each, one route by path prefix (`/app-<i>`, stripped) and one by host (`app-<i>.example.com`) per
  /// service, and the probe service's one instance.
  func fleetWrites(_ sizes: RouteBenchSizes) throws -> (
    registrations: [(key: String, value: [UInt8])], routes: [(key: String, value: [UInt8])]
  ) {
    var registrations: [(key: String, value: [UInt8])] = []
    var routes: [(key: String, value: [UInt8])] = []
    for index in 0..<sizes.fleetServices {
      let service = Self.fleetService(index)
      for instance in 0..<sizes.instancesPerService {
        let port = lab.fleet[(index + instance) % lab.fleet.count].port
        registrations.append((BenchLab.key("i\(instance)", service: service), BenchLab.value(port: port)))
      }
      routes.append(
        try BenchLab.route("\(service)-path", service: service, pathPrefix: "/\(service)", stripPrefix: true))
      routes.append(try BenchLab.route("\(service)-host", service: service, hosts: ["\(service).example.com"]))
    }
    registrations.append((BenchLab.key("probe-0", service: Self.routedService), BenchLab.value(port: lab.probe.port)))
    return (registrations, routes)
  }

  // MARK: A fleet of services and routes

  /// `fleetServices` × `instancesPerService` instances and `fleetRoutes` routes written (in transactions)
  /// before the controller starts: first sync (controller started → it has applied etcd's revision, HAProxy
  /// has every server, and a sample of routes answers from their services' servers), the controller's and
  /// HAProxy's memory, idle CPU, and route changes on that fleet (a path route pointed at the probe service
  /// and back: put acknowledged → first answer from the new target), with the controller's CPU time per
  /// change.
  func routeFleet() async throws -> ScenarioResult {
    let sizes = RouteBenchSizes(quick: options.quick)
    var result = ScenarioResult(
      name: "routes-fleet",
      strategy: "runtime",
      variant: "\(BenchReport.display(Double(sizes.fleetServices))) services × \(sizes.instancesPerService), "
        + "\(BenchReport.display(Double(sizes.fleetRoutes))) routes" + quickNote("1,000 × 3, 2,000 routes")
    )
    try await lab.withEverythingCleared {
      let writes = try fleetWrites(sizes)
      let writeStart = ContinuousClock.now
      try await lab.putInTransactions(writes.registrations + writes.routes)
      result.add("write_ms", milliseconds(writeStart.duration(to: .now)))
      let revision = try await lab.revision()
      let expectedServers = writes.registrations.count
      try await LBNode.with(lab: lab, strategy: "runtime", services: []) { node in
        let ready = ContinuousClock.now
        let synced = try await waitFleetSynced(node, revision: revision, servers: expectedServers, sizes: sizes)
        result.add("services", Double(sizes.fleetServices))
        result.add("instances", Double(sizes.fleetInstances))
        result.add("routes", Double(sizes.fleetRoutes))
        result.add("ready_ms", milliseconds(node.started.duration(to: ready)))
        result.add("first_sync_ms", milliseconds(node.started.duration(to: synced)))
        result.add("route_entries", try await node.metric("switchyard_route_entries"))

        // Let the first pass's follow-ups and the first file flush finish, then measure a quiet node.
        try await Task.sleep(for: options.quick ? .seconds(1) : .seconds(2))
        let workers = node.haproxyWorkers
        result.add("controller_rss_mb", ResidentMemory.megabytes(of: node.controller.pid))
        result.add("haproxy_worker_rss_mb", workers.map(ResidentMemory.megabytes).reduce(0, +))
        result.add("haproxy_master_rss_mb", ResidentMemory.megabytes(of: node.masterPID))
        let controllerBefore = node.cpuSeconds()
        let haproxyBefore = node.haproxyCPUSeconds()
        let idleStart = ContinuousClock.now
        try await Task.sleep(for: options.idleCPUDuration)
        let idleSeconds = KeepAliveLoad.seconds(idleStart.duration(to: .now))
        let idleShare = (node.cpuSeconds() - controllerBefore) / idleSeconds
        result.add("idle_cpu_percent", idleShare * 100)
        result.add("haproxy_idle_cpu_percent", (node.haproxyCPUSeconds() - haproxyBefore) / idleSeconds * 100)

        let roundTrip = try await probeRoundTrips(port: node.listenPort, path: "/\(Self.fleetService(0))/")
        let reloadsBefore = try await node.reloads()
        let cpuBeforeChanges = node.cpuSeconds()
        let changesStart = ContinuousClock.now
        let changes = try await fleetRouteChanges(node, sizes: sizes)
        let changesSeconds = KeepAliveLoad.seconds(changesStart.duration(to: .now))
        let changed = changes.latencies.count + changes.timeouts
        result.add("route_changes", Double(changes.latencies.count))
        result.add("change", LatencySummary(milliseconds: changes.latencies))
        result.add("change_timeouts", Double(changes.timeouts))
        result.add("probe_round_trip", roundTrip)
        // The controller's CPU time over the changes, less what it spends idle over as long, per change.
        // `/proc` counts it in ticks of 10 ms: over --quick's 10 changes that is ±1 ms per change.
        let changeCPU = node.cpuSeconds() - cpuBeforeChanges - idleShare * changesSeconds
        result.add("controller_cpu_per_change_ms", changed > 0 ? changeCPU / Double(changed) * 1000 : 0)
        result.add("reloads", try await node.reloads() - reloadsBefore)
        result.add("controller_peak_rss_mb", ResidentMemory.peakMegabytes(of: node.controller.pid))
        result.add("haproxy_worker_peak_rss_mb", node.haproxyWorkers.map(ResidentMemory.peakMegabytes).reduce(0, +))
      }
    }
    return result
  }

  /// Waits until the controller has applied `revision` (its `switchyard_applied_revision`, polled every
  /// 20 ms), HAProxy has at least `servers` servers, and every sampled path route answers from one of its
  /// service's servers; returns when the last of them first held.
  func waitFleetSynced(_ node: LBNode, revision: Int64, servers: Int, sizes: RouteBenchSizes) async throws
    -> ContinuousClock.Instant
  {
    let step = max(sizes.fleetServices / max(sizes.syncSamples - 1, 1), 1)
    var pending = Set(stride(from: 0, to: sizes.fleetServices, by: step)).union([sizes.fleetServices - 1])
    let deadline = ContinuousClock.now.advanced(by: .seconds(120))
    var applied = false
    var serversIn = false
    while ContinuousClock.now < deadline {
      if !applied {
        applied = try await node.metric("switchyard_applied_revision") >= Double(revision)
      }
      if applied && !serversIn {
        // Counted, not collected by name: every service has instances `i0`, `i1`, `i2`.
        serversIn = try await node.runtime.serversState().count >= servers
      }
      if applied && serversIn {
        for index in pending.sorted() {
          let service = Self.fleetService(index)
          let answer = await BenchLab.probe(port: node.listenPort, path: "/\(service)/")
          if let answer, answer.status == 200,
            fleetServers(index, instances: sizes.instancesPerService).contains(answer.name)
          {
            pending.remove(index)
          }
        }
        if pending.isEmpty { return .now }
      }
      try await Task.sleep(for: .milliseconds(20))
    }
    throw ProcessError(
      "the fleet did not sync within 120 s (applied \(applied), servers in \(serversIn), "
        + "routes not answering: \(pending.sorted().prefix(5).map(Self.fleetService))):\n\(node.controller.logTail())")
  }

  /// `fleetChangePairs` times: a path route of the fleet rewritten to send its requests to the probe
  /// service, then back to its own; each change timed from the put's acknowledgement to the first answer
  /// from the new target. Services are picked spread over the fleet.
  func fleetRouteChanges(_ node: LBNode, sizes: RouteBenchSizes) async throws -> (latencies: [Double], timeouts: Int) {
    var latencies: [Double] = []
    var timeouts = 0
    let probe = lab.probe.name
    for change in 0..<sizes.fleetChangePairs {
      let index = (change * 7919 + 13) % sizes.fleetServices
      let service = Self.fleetService(index)
      let own = fleetServers(index, instances: sizes.instancesPerService)
      let path = "/\(service)/x"
      for toProbe in [true, false] {
        try await Task.sleep(for: .milliseconds(150))
        try await lab.putRoute(
          "\(service)-path", service: toProbe ? Self.routedService : service, pathPrefix: "/\(service)",
          stripPrefix: true)
        let acknowledged = ContinuousClock.now
        let answered = try await firstAnswer(port: node.listenPort, path: path, after: acknowledged) { answer in
          toProbe ? answer.from(probe) : answer.status == 200 && own.contains(answer.name)
        }
        if let answered {
          latencies.append(milliseconds(acknowledged.duration(to: answered)))
        } else {
          timeouts += 1
        }
      }
    }
    return (latencies, timeouts)
  }
}
