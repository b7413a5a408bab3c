import SwitchyardModel
import Testing

@testable import SwitchyardReconcile

@Suite struct PlannerTests {
  let settings = Fixture.settings

  func plan(
    _ instances: [ServiceInstance],
    observed: [ObservedServer],
    running: [ServiceInstance]? = nil,
    drainingFor: [ServerRef: Duration] = [:]
  ) -> Plan {
    let desired = Fixture.desired(instances)
    let rendered = ConfigRenderer.render(desired, settings: settings)
    let runningStructure = ConfigRenderer.render(Fixture.desired(running ?? instances), settings: settings).structure
    return Planner.plan(
      desired: desired,
      rendered: rendered,
      runningStructure: runningStructure,
      observed: ObservedState(backends: ["svc_backend": observed]),
      drainingFor: drainingFor,
      settings: settings,
      policy: .init(drainTimeout: .seconds(30))
    )
  }

  func ref(_ name: String) -> ServerRef { ServerRef(backend: "svc_backend", server: name) }

  @Test func nothingToDoWhenInStep() {
    let a = Fixture.instance("a")
    #expect(plan([a], observed: [Fixture.observed(a)]).isEmpty)
  }

  @Test func newServerIsAddedHealthCheckedAndEnabled() {
    let a = Fixture.instance("a", "10.0.0.1", 8080, weight: 20)
    let result = plan([a], observed: [])
    #expect(!result.needsReload)
    #expect(
      result.commands.map(\.description) == [
        "add server svc_backend/a 10.0.0.1:8080 weight 20 " + InjectionTests.options + " pool-max-conn -1",
        "enable health svc_backend/a",
        "set server svc_backend/a state ready",
      ]
    )
  }

  @Test("servers to add get the next ids above every id their backend uses, and none when an id is unknown")
  func serverIDs() {
    let kept = Fixture.instance("kept")
    let changed = Fixture.instance("changed", weight: 5)
    let new1 = Fixture.instance("new1")
    let new2 = Fixture.instance("new2")
    let gone = Fixture.instance("gone", "127.0.0.1", 9009)
    func seen(_ instance: ServiceInstance, id: Int?) -> ObservedServer {
      var server = Fixture.observed(instance)
      server.id = id
      return server
    }
    let result = plan(
      [kept, changed, new1, new2],
      observed: [seen(kept, id: 3), seen(Fixture.instance("changed"), id: 9), seen(gone, id: 17)]
    )
    #expect(result.commands.contains(.setWeight(ref("changed"), 5)))
    // Above every id in use, the leaving server's included.
    #expect(result.newServerIDs == [ref("new1"): 18, ref("new2"): 19])
    // A server without an id (a reply without `srv_id`) leaves new servers to HAProxy's own numbering.
    let unknown = plan([kept, new1], observed: [seen(kept, id: nil)])
    #expect(unknown.newServerIDs.isEmpty)
    #expect(unknown.commands.count == 3)
  }

  @Test func serverRegisteredInMaintenanceStaysThere() {
    let a = Fixture.instance("a", state: .maint)
    #expect(plan([a], observed: []).commands.map(\.description).last == "enable health svc_backend/a")
    let drained = Fixture.instance("b", state: .drain)
    #expect(plan([drained], observed: []).commands.last == .setState(ref("b"), .drain))
  }

  @Test func changedAddressWeightAndStateGoThroughTheRuntimeAPI() {
    let before = Fixture.instance("a", "10.0.0.1", 8080)
    let after = Fixture.instance("a", "10.0.0.2", 8081, weight: 5, state: .drain)
    let result = plan([after], observed: [Fixture.observed(before)])
    #expect(
      result.commands.map(\.description) == [
        "set server svc_backend/a addr 10.0.0.2 port 8081",
        "set server svc_backend/a state drain",
        "set weight svc_backend/a 5",
      ]
    )
  }

  @Test func ipv6AddressesCompareByValue() throws {
    let a = Fixture.instance("a", "0:0:0:0:0:0:0:1", 8080)
    var seen = Fixture.observed(a)
    seen.address = "::1"
    #expect(plan([a], observed: [seen]).isEmpty)
    #expect(Planner.sameAddress("::FFFF:10.0.0.1", try Address(validating: "::ffff:a00:1")))
    #expect(!Planner.sameAddress("1::2::3", try Address(validating: "1::2:3")))
  }

  @Test func removedServerDrainsThenGoesWhenIdle() {
    let a = Fixture.instance("a")
    let gone = Fixture.instance("gone", "127.0.0.1", 9009)
    // First pass: drain.
    let first = plan([a], observed: [Fixture.observed(a), Fixture.observed(gone)])
    #expect(first.commands == [.setState(ref("gone"), .drain)])
    #expect(first.draining == [ref("gone")])
    // Still carrying a connection: wait.
    let busy = plan(
      [a],
      observed: [Fixture.observed(a), Fixture.observed(gone, state: .drain, active: 1)],
      drainingFor: [ref("gone"): .seconds(1)]
    )
    #expect(busy.commands.isEmpty)
    #expect(busy.draining == [ref("gone")])
    // Idle: maintenance, then delete.
    let idle = plan([a], observed: [Fixture.observed(a), Fixture.observed(gone, state: .drain)])
    #expect(idle.commands == [.setState(ref("gone"), .maint), .deleteServer(ref("gone"))])
    #expect(idle.draining.isEmpty)
  }

  @Test("a removed server seen holding no connection goes to maintenance and is deleted at once")
  func removedIdleServerSkipsTheDrain() {
    let a = Fixture.instance("a")
    let gone = Fixture.instance("gone", "127.0.0.1", 9009)
    var idle = Fixture.observed(gone)
    idle.connectionsObserved = true
    let result = plan([a], observed: [Fixture.observed(a), idle])
    #expect(result.commands == [.setState(ref("gone"), .maint), .deleteServer(ref("gone"))])
    #expect(result.draining.isEmpty)
    // One that holds a connection drains first.
    var busy = idle
    busy.activeConnections = 1
    #expect(plan([a], observed: [Fixture.observed(a), busy]).commands == [.setState(ref("gone"), .drain)])
    // Several: every one leaves traffic before the first delete.
    var other = Fixture.observed(Fixture.instance("other", "127.0.0.1", 9010))
    other.connectionsObserved = true
    #expect(
      plan([a], observed: [Fixture.observed(a), idle, other]).commands == [
        .setState(ref("gone"), .maint), .setState(ref("other"), .maint), .deleteServer(ref("gone")),
        .deleteServer(ref("other")),
      ])
  }

  @Test func drainTimeoutShutsDownWhatIsLeft() {
    let gone = Fixture.instance("gone")
    let result = plan(
      [],
      observed: [Fixture.observed(gone, state: .drain, active: 3)],
      drainingFor: [ref("gone"): .seconds(31)]
    )
    #expect(
      result.commands == [.setState(ref("gone"), .maint), .shutdownSessions(ref("gone")), .deleteServer(ref("gone"))]
    )
  }

  @Test func lastServerGoneLeavesNoStaleServer() {
    let a = Fixture.instance("a")
    let result = plan([], observed: [Fixture.observed(a, state: .maint)])
    #expect(result.commands == [.deleteServer(ref("a"))])
  }

  @Test func serverRegisteredAgainWhileDrainingComesBack() {
    let a = Fixture.instance("a")
    let result = plan([a], observed: [Fixture.observed(a, state: .drain, active: 2)])
    #expect(result.commands == [.setState(ref("a"), .ready)])
    #expect(result.draining.isEmpty)
  }

  @Test func aServerWhoseCheckNeverStartedGetsItStarted() {
    let a = Fixture.instance("a")
    var seen = Fixture.observed(a)
    seen.isCheckEnabled = false
    #expect(plan([a], observed: [seen]).commands == [.enableHealth(ref("a"))])
    #expect(plan([a], observed: [Fixture.observed(a)]).isEmpty)
  }

  @Test func structuralChangesReload() {
    let a = Fixture.instance("a")
    let moved = Fixture.instance("a", checkPath: "/healthz")
    let result = plan([moved], observed: [Fixture.observed(a)], running: [a])
    #expect(result.needsReload)
    #expect(result.commands.isEmpty)
    #expect(result.reloadReasons[0].contains("option httpchk GET /healthz"))
  }

  @Test func aNewBackendHoldsBackNoRuntimeChangeInAnExistingOne() throws {
    let api = try ServiceName(validating: "api")
    let a = Fixture.instance("a", "10.0.0.1", 8080)
    let b = Fixture.instance("b", "10.0.0.2", 8080)
    let c = Fixture.instance("c", "10.0.0.3", 8080, service: "api")
    // HAProxy runs `svc_backend` with `a`; `b` joins it while the node starts serving `api`.
    let desired = Fixture.desired([a, b, c], services: [.backend, api])
    let running = Fixture.desired([a], services: [.backend])
    let result = Planner.plan(
      desired: desired,
      rendered: ConfigRenderer.render(desired, settings: settings),
      runningStructure: ConfigRenderer.render(running, settings: settings).structure,
      observed: ObservedState(backends: ["svc_backend": [Fixture.observed(a)]]),
      settings: settings
    )
    #expect(result.needsReload)
    // `svc_api` does not exist yet: the reload brings `c`.
    #expect(
      result.commands.map(\.description) == [
        "add server svc_backend/b 10.0.0.2:8080 weight 100 " + InjectionTests.options + " pool-max-conn -1",
        "enable health svc_backend/b",
        "set server svc_backend/b state ready",
      ]
    )
  }

  @Test func aStructuralChangeInOneBackendHoldsBackNoRuntimeChangeInAnother() throws {
    let api = try ServiceName(validating: "api")
    let a = Fixture.instance("a", "10.0.0.1", 8080)
    let gone = Fixture.instance("gone", "10.0.0.9", 8080)
    let c = Fixture.instance("c", "10.0.0.3", 8080, service: "api")
    let moved = Fixture.instance("c", "10.0.0.3", 8080, service: "api", weight: 5, checkPath: "/healthz")
    let lighter = Fixture.instance("a", "10.0.0.1", 8080, weight: 7)
    // `svc_api` gets a new check path (a reload) and a new weight; `svc_backend` a new weight and a removal.
    let desired = Fixture.desired([lighter, moved], services: [.backend, api])
    let running = Fixture.desired([a, gone, c], services: [.backend, api])
    let result = Planner.plan(
      desired: desired,
      rendered: ConfigRenderer.render(desired, settings: settings),
      runningStructure: ConfigRenderer.render(running, settings: settings).structure,
      observed: ObservedState(backends: [
        "svc_backend": [Fixture.observed(a), Fixture.observed(gone)], "svc_api": [Fixture.observed(c)],
      ]),
      settings: settings
    )
    #expect(result.reloadReasons.count == 1)
    #expect(result.reloadReasons[0].contains("option httpchk GET /healthz"))
    #expect(result.commands == [.setWeight(ref("a"), 7), .setState(ref("gone"), .drain)])
    #expect(result.draining == [ref("gone")])
  }

  @Test func aChangeOutsideTheBackendsHoldsNothingBack() throws {
    let a = Fixture.instance("a")
    let b = Fixture.instance("b", "127.0.0.1", 9002)
    let desired = Fixture.desired([a, b])
    let olderSettings = try NodeSettings(
      nodeID: settings.nodeID,
      listen: settings.listen,
      stats: settings.stats,
      adminSocketPath: settings.adminSocketPath,
      hardStopAfter: .seconds(5)
    )
    let result = Planner.plan(
      desired: desired,
      rendered: ConfigRenderer.render(desired, settings: settings),
      runningStructure: ConfigRenderer.render(Fixture.desired([a]), settings: olderSettings).structure,
      observed: ObservedState(backends: ["svc_backend": [Fixture.observed(a)]]),
      settings: settings
    )
    #expect(result.reloadReasons.count == 1)
    #expect(result.reloadReasons[0].contains("hard-stop-after"))
    #expect(result.commands.first?.description.hasPrefix("add server svc_backend/b 127.0.0.1:9002 ") == true)
  }

  @Test func unknownRunningConfigurationReloads() {
    let desired = Fixture.desired([])
    let result = Planner.plan(
      desired: desired,
      rendered: ConfigRenderer.render(desired, settings: settings),
      runningStructure: nil,
      observed: ObservedState(),
      settings: settings
    )
    #expect(result.needsReload)
  }

  @Test func hostNameServersGoThroughTheConfiguration() {
    let named = Fixture.instance("n", "backend-1.internal", 9001)
    // A new host-name server changes the structure: reload.
    #expect(plan([named], observed: [], running: []).needsReload)
    // Once running (resolved by HAProxy), its address is not compared, but its weight is.
    var seen = Fixture.observed(named)
    seen.address = "10.1.2.3"
    #expect(plan([named], observed: [seen]).isEmpty)
    seen.weight = 1
    #expect(plan([named], observed: [seen]).commands == [.setWeight(ref("n"), 100)])
  }
}

@Suite("Removal tracking")
struct RemovalTrackerTests {
  @Test("a leaving server's drain time counts from when it started to leave, through refused deletes")
  func startIsKeptUntilTheServerIsGone() {
    let a = Fixture.instance("a")
    let b = Fixture.instance("b")
    let ref = ServerRef(backend: "svc_backend", server: "a")
    let clock = ContinuousClock()
    let start = clock.now
    var tracker = RemovalTracker()
    // Both registered and running: nothing leaves.
    tracker.update(desired: Fixture.desired([a, b]), observed: observed([a, b]), now: start)
    #expect(tracker.elapsed(now: start).isEmpty)
    // `a` is deregistered: it drains, then sits in maintenance while HAProxy refuses its delete.
    let withoutA = Fixture.desired([b])
    tracker.update(desired: withoutA, observed: observed([a, b], drain: ["a"]), now: start)
    tracker.update(desired: withoutA, observed: observed([a, b], maint: ["a"]), now: start + .seconds(20))
    tracker.update(desired: withoutA, observed: observed([a, b], maint: ["a"]), now: start + .seconds(40))
    #expect(tracker.elapsed(now: start + .seconds(40)) == [ref: .seconds(40)])
    // Gone: forgotten. Back and leaving again: counted afresh.
    tracker.update(desired: withoutA, observed: observed([b]), now: start + .seconds(41))
    #expect(tracker.elapsed(now: start + .seconds(41)).isEmpty)
    tracker.update(desired: withoutA, observed: observed([a, b], drain: ["a"]), now: start + .seconds(50))
    #expect(tracker.elapsed(now: start + .seconds(51)) == [ref: .seconds(1)])
    // Registered again while leaving: no longer leaving.
    tracker.update(
      desired: Fixture.desired([a, b]), observed: observed([a, b], drain: ["a"]), now: start + .seconds(52))
    #expect(tracker.elapsed(now: start + .seconds(52)).isEmpty)
  }

  private func observed(_ instances: [ServiceInstance], drain: Set<String> = [], maint: Set<String> = [])
    -> ObservedState
  {
    let servers = instances.map { instance in
      let name = instance.key.instance.rawValue
      return Fixture.observed(instance, state: maint.contains(name) ? .maint : drain.contains(name) ? .drain : .ready)
    }
    return ObservedState(backends: ["svc_backend": servers])
  }
}
