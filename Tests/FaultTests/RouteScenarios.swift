import EtcdClient
import Foundation
import SwitchyardModel
import SwitchyardTestSupport
import Synchronization
import Testing

extension ScenarioContext {
  // MARK: - Routes while a member is frozen

  /// Service `web` with two instances and four routes (two steady, one to move, one to delete), served
  /// by both nodes; the new service's reload is over before the figures start.
  func routesSetup() async throws {
    for instance in RouteFixture.web.prefix(2) {
      try startInstance(instance.id, of: "web", on: instance.host, port: RouteFixture.webPort)
    }
    for route in RouteFixture.initialRoutes { try await putFixture(RouteFixture.key(route.name), route.value) }
    // Written by the body; deleted by the teardown.
    fixture.wrote(RouteFixture.key("fault-new"))
    fixture.wrote(RouteFixture.key("fault-late"))
    fixture.started("web3")
    try await waitServed(RouteFixture.before)
    try await retrying(timeout: .seconds(20), every: .milliseconds(100)) {
      for lb in FaultCluster.lbNames where try await cluster.servingSet(lb, backend: "svc_web").count != 2 {
        throw TestSupportError("\(lb) does not serve both web instances")
      }
    }
    try await waitReloadsSettled()
  }

  /// One change of a route made during the fault, and the request that shows it.
  struct RouteChange {
    var what: String
    var request: RouteRequest
    var from: String?
    var to: String?
    var requested: ContinuousClock.Instant
    var written: ContinuousClock.Instant
  }

  /// Makes a change with `write` and says when it was asked for and acknowledged.
  func change(
    _ what: String, _ request: RouteRequest, from: String?, to: String?, _ write: () async throws -> Void
  ) async throws -> RouteChange {
    let requested = ContinuousClock.now
    try await write()
    let written = ContinuousClock.now
    if requested.duration(to: written) > .milliseconds(500) {
      note("\(what): etcd took \(requested.duration(to: written)) to acknowledge the write")
    }
    return RouteChange(what: what, request: request, from: from, to: to, requested: requested, written: written)
  }

  /// Load on two routed services (web by host, backend by path) and on a route that moves and one that
  /// goes, through both nodes; the etcd member lb1 watches frozen (SIGSTOP) for 12 s; meanwhile a route
  /// added for a new host and prefix, one moved to another service, one deleted, web scaled (one
  /// instance added, one stopped), and after the watches moved off the frozen member, another route.
  ///
  /// Expected: 0 failed requests on any route, including those that changed: a change replaces the
  /// whole map in one version, and both the old and the new target have servers, so a request gets one
  /// or the other, never an error. A route that changed answers from its new target on each node
  /// within the change deadline after etcd acknowledged the write, and never from the old one again on
  /// that node. 0 reloads, 0 etcd writes by the controllers, and after the thaw both nodes' maps, map
  /// files and servers equal what etcd holds.
  ///
  /// With `leader`, the member frozen is the Raft leader instead: the other two elect another, and every
  /// lease must be renewed through it. Without, a member lb1 watches that happens to lead gives the
  /// leadership away first (``FaultCluster/moveLeadership(off:_:)``).
  func routesWhileFrozen(leader: Bool = false) async throws {
    let log = EtcdWriteLog(etcd, from: try await etcd.get(.key("/")).header.revision + 1)
    defer { log.stop() }
    let reloadsBefore = try await reloadCount()
    let load = try RoutedLoad.start(
      cluster, [RouteFixture.webHost, RouteFixture.shop, RouteFixture.move, RouteFixture.gone])
    let prober = RouteProber(
      cluster, [RouteFixture.move, RouteFixture.gone, RouteFixture.new, RouteFixture.late])
    var member: ManagedProcess?
    defer { member?.signal(SIGCONT) }
    var changes: [RouteChange] = []
    let stopped: Bool
    do {
      try await Task.sleep(for: .seconds(1))
      let watched = (try await cluster.state("lb1").etcdWatchEndpoint).flatMap(cluster.etcdMember(at:))
      let other = (try? await cluster.state("lb2").etcdWatchEndpoint)?.flatMap(cluster.etcdMember(at:))
      if !leader, let moved = try await cluster.moveLeadership(off: watched ?? "etcd1", etcd) {
        note("leadership moved from \(watched ?? "etcd1") to \(moved) first")
      }
      let raftLeader = try await cluster.leader(etcd)
      let name = leader ? raftLeader : watched ?? "etcd1"
      note(
        "froze \(name)\(name == raftLeader ? ", the leader" : ""); lb1 watched \(watched ?? "none"), lb2 \(other ?? "none")"
      )
      member = cluster.etcdProcess(name)
      member?.signal(SIGSTOP)
      faultBegins()
      try await Task.sleep(for: .milliseconds(500))
      // While lb1's watch still hangs on the frozen member.
      changes.append(try await moveRouteToBackend(log))
      changes.append(
        try await change("gone.example.com deleted (→ default service)", RouteFixture.gone, from: "web", to: "backend")
        {
          try await log.delete(RouteFixture.key("fault-gone"))
        })
      changes.append(
        try await change("new.example.com/v2 added → web", RouteFixture.new, from: nil, to: "web") {
          try await log.put(
            RouteFixture.key("fault-new"),
            #"{"path_prefix":"/v2","service":"web","strip_prefix":true,"hosts":["new.example.com"]}"#)
        })
      try await scaleWeb(log)
      // After the watches moved to a member that answers.
      try await holdFault(for: .seconds(5))
      changes.append(
        try await change("/late added → backend", RouteFixture.late, from: nil, to: "backend") {
          try await log.put(
            RouteFixture.key("fault-late"), #"{"path_prefix":"/late/x","service":"backend","strip_prefix":true}"#)
        })
      try await holdFault(for: .seconds(12))
      member?.signal(SIGCONT)
      await routesHealed()
      stopped = await cluster.backend("web2")?.waitForExit(timeout: .seconds(15)) == 0
    } catch {
      member?.signal(SIGCONT)
      await prober.stop()
      _ = await load.stop()
      throw error
    }
    await prober.stop()
    let seen = await load.stop()
    #expect(stopped, "\(name): web2 did not stop cleanly")
    judge(changes, prober)
    judge(seen)
    try await judgeWrites(log)
    let lostWeb = log.registrationWrites(under: "/services/web/").filter {
      $0.isDelete && $0.keyString != "/services/web/web2"
    }
    #expect(lostWeb.isEmpty, "\(name): web registrations deleted: \(lostWeb.map(\.keyString))")
    // The runner holds the scenario to its reload limit (0); this says which phase reloaded.
    note("reloads during the body: \(Int(try await reloadCount() - reloadsBefore))")
  }

  /// web3 starts on host be1 and web2 stops (SIGTERM: it drains, then deregisters). Each node must serve
  /// web3 within the change deadline after its registration reached etcd, and take web2 out of rotation
  /// within the deadline after its `drain` reached etcd. How long the registrars took to write (their
  /// clients may sit on the frozen member) goes to the notes.
  private func scaleWeb(_ log: EtcdWriteLog) async throws {
    let started = ContinuousClock.now
    try startInstance("web3", of: "web", on: "be1", port: RouteFixture.webPort)
    cluster.backend("web2")?.signal(SIGTERM)
    let added = "\(cluster.lab.host("be1").address):\(RouteFixture.webPort)"
    let removed = "\(cluster.lab.host("be3").address):\(RouteFixture.webPort)"
    var servedAt: [String: ContinuousClock.Instant] = [:]
    var outAt: [String: ContinuousClock.Instant] = [:]
    while servedAt.count + outAt.count < 2 * FaultCluster.lbNames.count, started.duration(to: .now) < .seconds(15) {
      for lb in FaultCluster.lbNames {
        guard let serving = try? await cluster.servingSet(lb, backend: "svc_web") else { continue }
        let now = ContinuousClock.now
        if servedAt[lb] == nil && serving.contains(added) { servedAt[lb] = now }
        if outAt[lb] == nil && !serving.contains(removed) { outAt[lb] = now }
      }
      try await Task.sleep(for: .milliseconds(25))
    }
    // As the test's watch saw the registrars' writes; a node that acted before is timed as 0.
    let registered = log.registrationWrites(under: "/services/web/web3").first { !$0.isDelete }?.seen
    let drained = log.registrationWrites(under: "/services/web/web2").first?.seen
    func after(_ write: ContinuousClock.Instant?, _ done: ContinuousClock.Instant?) -> Duration? {
      guard let done else { return nil }
      guard let write else { return started.duration(to: done) }
      return max(.zero, write.duration(to: done))
    }
    var described: [String] = []
    for lb in FaultCluster.lbNames {
      let (served, out) = (after(registered, servedAt[lb]), after(drained, outAt[lb]))
      described.append("\(lb) web3 in \(served.map { "\($0)" } ?? "never"), web2 out \(out.map { "\($0)" } ?? "never")")
      if served.map({ $0 > FaultSuiteTests.changeDeadline }) ?? true {
        Issue.record(
          "\(name): \(lb) served web3 \(served.map { "\($0)" } ?? "never") after its registration reached etcd")
      }
      if out.map({ $0 > FaultSuiteTests.changeDeadline }) ?? true {
        Issue.record("\(name): \(lb) took web2 out \(out.map { "\($0)" } ?? "never") after its drain reached etcd")
      }
    }
    note(
      "registrars under the freeze: web3 registered \(registered.map { "\(started.duration(to: $0))" } ?? "unseen") "
        + "after its start, web2 wrote its drain \(drained.map { "\(started.duration(to: $0))" } ?? "unseen") after SIGTERM; "
        + "nodes after those writes: \(described.joined(separator: "; "))")
  }

  /// Why `lb` does not serve what etcd holds (routes map, web's servers, the routes in `/state`), or nil.
  func routesMismatch(_ lb: String) async -> String? {
    do {
      let routes = try await Routing.routes(in: etcd)
      let state = try await cluster.state(lb)
      let expected = Routing.expectedMap(routes, services: state.services)
      let map = try await cluster.routesInHAProxy(lb)
      if map != expected {
        return "its map has \(map.subtracting(expected).sorted()) and lacks \(expected.subtracting(map).sorted())"
      }
      let listed = Set((state.routes ?? []).map { "\($0.name)→\($0.service)" })
      let inEtcd = Set(routes.map { "\($0.name)→\($0.service)" })
      if listed != inEtcd { return "/state lists routes \(listed.sorted()), etcd has \(inEtcd.sorted())" }
      let web = Set(try await cluster.registrations(etcd, service: "web").values)
      let serving = (try? await cluster.servingSet(lb, backend: "svc_web")) ?? []
      if web != serving { return "it serves web on \(serving.sorted()), etcd has \(web.sorted())" }
      let registered = Set(try await cluster.registrations(etcd).values)
      let backend = try await cluster.servingSet(lb)
      if registered != backend { return "it serves backend on \(backend.sorted()), etcd has \(registered.sorted())" }
      return nil
    } catch {
      return "\(error)"
    }
  }

  /// Records, for each node, the time from now until its routes map, its servers and its `/state` equal
  /// what etcd holds, and checks the map file follows within a second more.
  func routesHealed() async {
    let times = await cluster.timeUntil(
      nodes: FaultCluster.lbNames, timeout: FaultSuiteTests.convergenceDeadline + .seconds(8), every: .milliseconds(50)
    ) { lb, _ in
      await routesMismatch(lb) == nil
    } refresh: {
      nil
    }
    record(convergence: times)
    for lb in FaultCluster.lbNames {
      if let time = times[lb] ?? nil, time <= FaultSuiteTests.convergenceDeadline { continue }
      let why = await routesMismatch(lb) ?? "equal now"
      let after = times[lb].flatMap { $0 }.map { "\($0)" } ?? "more than 10 s"
      Issue.record("\(name): \(lb) equals etcd after \(after) (limit 2 s): \(why)")
    }
    // The file follows within the flush interval: a reload or restart would serve the same.
    for lb in FaultCluster.lbNames {
      do {
        try await retrying(timeout: .seconds(3), every: .milliseconds(100)) {
          let (disk, running) = (try cluster.routesOnDisk(lb), try await cluster.routesInHAProxy(lb))
          guard disk == running else {
            throw TestSupportError(
              "the file has \(disk.subtracting(running).sorted()), lacks \(running.subtracting(disk).sorted())")
          }
        }
      } catch {
        Issue.record("\(name): \(lb)'s routes map file differs from what HAProxy holds: \(error)")
      }
    }
  }

  /// Checks how each node followed each change, from the prober's answers.
  func judge(
    _ changes: [RouteChange], _ prober: RouteProber,
    writtenFor: (String, RouteChange) -> ContinuousClock.Instant = { $1.written }
  ) {
    var slowest: [String: Duration?] = Dictionary(uniqueKeysWithValues: FaultCluster.lbNames.map { ($0, .zero) })
    for change in changes {
      var described: [String] = []
      for lb in FaultCluster.lbNames {
        let result = prober.change(
          lb, change.request, from: change.from, to: change.to, requested: change.requested,
          written: writtenFor(lb, change))
        described.append("\(lb) \(result.applied.map { "\($0)" } ?? "never")")
        if let applied = result.applied {
          if let current = slowest[lb] ?? nil { slowest[lb] = max(current, applied) }
        } else {
          slowest[lb] = .some(nil)
        }
        if result.applied.map({ $0 > FaultSuiteTests.changeDeadline }) ?? true {
          Issue.record(
            "\(name): \(lb) served \"\(change.what)\" after \(result.applied.map { "\($0)" } ?? "never") (limit 3 s)")
        }
        #expect(
          result.wentBack == 0,
          "\(name): \(lb) went back to the old target of \"\(change.what)\" \(result.wentBack) times")
        #expect(
          result.failed.isEmpty,
          "\(name): \(lb): \(result.failed.count) probes of \"\(change.what)\" failed: \(result.failed.prefix(5))")
        addRequests(
          0, failures: [lb: result.failed.count],
          errors: result.failed.prefix(2).map { "\(lb) \(change.request): \($0)" })
      }
      note("\(change.what): served after \(described.joined(separator: ", "))")
    }
    record(changeApplied: slowest)
  }

  /// Checks the routed load: no failure, and every answer from the service its route names (either
  /// target on a route that changed).
  func judge(
    _ seen: [RouteRequest: RoutedLoad.Seen],
    allowed: [RouteRequest: Set<String>] = [
      RouteFixture.webHost: ["web"], RouteFixture.shop: ["backend"], RouteFixture.move: ["web", "backend"],
      RouteFixture.gone: ["web", "backend"],
    ]
  ) {
    for (request, result) in seen.sorted(by: { $0.key.description < $1.key.description }) {
      addRequests(result.requests, failures: result.failures, errors: result.errors)
      let strays = Set(result.services.keys).subtracting(allowed[request] ?? [])
      #expect(strays.isEmpty, "\(name): \(request) was answered by \(result.services)")
      note(
        "load on \(request): \(result.requests) requests, \(result.totalFailures) failed, answered by \(result.services)"
      )
    }
  }
}
