import SwitchyardModel
import Testing

@testable import SwitchyardReconcile

/// What the planner does differently on HAProxy 3.0 (``RuntimeFeatures``), against the same inputs on 2.6.
@Suite struct RuntimeFeaturesTests {
  let settings = Fixture.settings

  func plan(
    _ instances: [ServiceInstance], observed: [ObservedServer], drainingFor: [ServerRef: Duration] = [:],
    features: RuntimeFeatures
  ) -> Plan {
    let desired = Fixture.desired(instances)
    let rendered = ConfigRenderer.render(desired, settings: settings)
    return Planner.plan(
      desired: desired, rendered: rendered, runningStructure: rendered.structure,
      observed: ObservedState(backends: ["svc_backend": observed]), drainingFor: drainingFor, settings: settings,
      policy: .init(drainTimeout: .seconds(30)), features: features)
  }

  func ref(_ name: String) -> ServerRef { ServerRef(backend: "svc_backend", server: name) }

  static let v30 = RuntimeFeatures(major: 3, minor: 0)

  @Test("releases: 3.0 and later have both features, 2.6 and 2.8 neither")
  func featuresByRelease() {
    #expect(RuntimeFeatures(major: 2, minor: 6) == .haproxy26)
    #expect(RuntimeFeatures(major: 2, minor: 8) == .haproxy26)
    for (major, minor) in [(3, 0), (3, 2), (4, 0)] {
      let features = RuntimeFeatures(major: major, minor: minor)
      #expect(features.addedServersPoolConnections && features.deleteClosesIdleConnections)
    }
    #expect(RuntimeFeatures.haproxy26.description == "none")
  }

  @Test("an added server gets the pool keywords only where HAProxy does not pool for it (before 3.0)")
  func poolKeywordsOnlyBefore30() {
    let a = Fixture.instance("a", "10.0.0.1", 8080, weight: 20)
    let on26 = plan([a], observed: [], features: .haproxy26).commands.first?.description ?? ""
    let on30 = plan([a], observed: [], features: Self.v30).commands.first?.description ?? ""
    #expect(on26.hasSuffix(" pool-max-conn -1"))
    #expect(on30 == "add server svc_backend/a 10.0.0.1:8080 weight 20 " + InjectionTests.options)
    #expect(!on30.contains("pool-max-conn"))
  }

  @Test("on 3.0 a removed server goes to maintenance and is deleted at once, without its connections listed")
  func removalWithoutConnectionListing() {
    let a = Fixture.instance("a")
    let gone = Fixture.instance("gone", "127.0.0.1", 9009)
    let observed = [Fixture.observed(a), Fixture.observed(gone)]
    // 2.6: connections unknown, so it drains and a later pass looks at them.
    #expect(plan([a], observed: observed, features: .haproxy26).commands == [.setState(ref("gone"), .drain)])
    let result = plan([a], observed: observed, features: Self.v30)
    #expect(result.commands == [.setState(ref("gone"), .maint), .deleteServer(ref("gone"))])
    #expect(result.draining.isEmpty)
    // A delete HAProxy refused leaves the server in maintenance: the next pass deletes again, and once
    // the drain timeout passed it shuts the server's sessions down first.
    let refused = [Fixture.observed(a), Fixture.observed(gone, state: .maint)]
    #expect(
      plan([a], observed: refused, drainingFor: [ref("gone"): .seconds(3)], features: Self.v30).commands == [
        .deleteServer(ref("gone"))
      ])
    #expect(
      plan([a], observed: refused, drainingFor: [ref("gone"): .seconds(31)], features: Self.v30).commands == [
        .shutdownSessions(ref("gone")), .deleteServer(ref("gone")),
      ])
    // A server that stays is never touched.
    #expect(plan([a], observed: [Fixture.observed(a)], features: Self.v30).isEmpty)
  }

  @Test("on 3.0, connections that were listed anyway are used as on 2.6")
  func listedConnectionsStillCount() {
    let a = Fixture.instance("a")
    var busy = Fixture.observed(Fixture.instance("gone", "127.0.0.1", 9009), active: 2)
    busy.connectionsObserved = true
    #expect(
      plan([a], observed: [Fixture.observed(a), busy], features: Self.v30).commands == [
        .setState(ref("gone"), .drain)
      ])
  }
}
