import SwitchyardModel
import Testing

@testable import SwitchyardReconcile

/// The pieces of a pass that works only on the services a change touched: the mirror kept from watch
/// events, the state rebuilt for some services, and planning and removal tracking in a scope.
@Suite struct IncrementalTests {
  typealias Change = RegistrationMirror.Change

  static func key(_ service: String, _ id: String) -> [UInt8] { Array("/services/\(service)/\(id)".utf8) }

  static func value(port: Int, weight: Int = 100) -> [UInt8] {
    Array(#"{"address":"127.0.0.1","port":\#(port),"weight":\#(weight)}"#.utf8)
  }

  static func put(_ service: String, _ id: String, port: Int, at revision: Int64) -> Change {
    Change(key: key(service, id), value: value(port: port), modRevision: revision)
  }

  static func delete(_ service: String, _ id: String, at revision: Int64) -> Change {
    Change(key: key(service, id), value: nil, modRevision: revision)
  }

  static func mirror() -> RegistrationMirror {
    RegistrationMirror(
      revision: 10,
      entries: [
        (key("backend", "a"), value(port: 9001), 5),
        (key("backend", "b"), value(port: 9002), 6),
        (key("api", "x"), value(port: 9101), 7),
        (key("backend", "bad"), Array("not json".utf8), 8),
      ]
    )
  }

  static func ports(_ instances: [ServiceInstance]) -> [Int] { instances.map(\.registration.port) }

  @Test func mirrorStartsFromAFullReadAndKeepsInvalidEntriesApart() {
    let mirror = Self.mirror()
    #expect(mirror.revision == 10)
    #expect(Self.ports(mirror.instances(of: .backend)) == [9001, 9002])
    #expect(Self.ports(mirror.instances) == [9101, 9001, 9002])
    #expect(mirror.invalid.map(\.key) == ["/services/backend/bad"])
    #expect(mirror.count == 4)
  }

  @Test func eventsNameTheServicesTheyTouch() throws {
    var mirror = Self.mirror()
    let api = try ServiceName(validating: "api")
    #expect(mirror.apply([Self.put("backend", "c", port: 9003, at: 11)]) == [.backend])
    #expect(mirror.apply([Self.delete("api", "x", at: 12)]) == [api])
    // A valid entry turning invalid leaves its service; an invalid one turning valid joins it.
    #expect(
      mirror.apply([Change(key: Self.key("backend", "a"), value: Array("{".utf8), modRevision: 13)]) == [.backend])
    #expect(mirror.apply([Self.put("backend", "bad", port: 9004, at: 14)]) == [.backend])
    // Deleting what was invalid, or what is not there, touches no service.
    #expect(mirror.apply([Change(key: Array("/services/x y/z".utf8), value: [1], modRevision: 15)]).isEmpty)
    #expect(mirror.apply([Change(key: Array("/services/x y/z".utf8), value: nil, modRevision: 16)]).isEmpty)
    #expect(mirror.apply([Self.delete("backend", "nothing", at: 17)]).isEmpty)
    #expect(Self.ports(mirror.instances(of: .backend)) == [9002, 9004, 9003])
    #expect(mirror.instances(of: api).isEmpty)
    #expect(mirror.invalid.map(\.key) == ["/services/backend/a"])
    #expect(mirror.revision == 17)
  }

  @Test func eventsTheFullReadHasAlreadyAreSkipped() {
    var mirror = Self.mirror()
    // Revisions 9 and 10 are in the read at 10: a late delivery must not undo it.
    let touched = mirror.apply([Self.delete("backend", "a", at: 9), Self.put("backend", "b", port: 1, at: 10)])
    #expect(touched.isEmpty)
    #expect(Self.ports(mirror.instances(of: .backend)) == [9001, 9002])
    #expect(mirror.revision == 10)
  }

  @Test func theLogKeepsOnlyWhatCameWhileAReadWasInFlight() {
    var log = ChangeLog()
    log.record([Self.put("backend", "early", port: 1, at: 9)])
    log.start()
    log.record([Self.put("backend", "c", port: 9003, at: 11), Self.delete("backend", "a", at: 12)])
    let recorded = log.finish()
    #expect(recorded.map(\.modRevision) == [11, 12])
    log.record([Self.put("backend", "late", port: 1, at: 13)])
    #expect(log.finish().isEmpty)
    // A read at 10 plus what came in meanwhile is the state at 12.
    var mirror = Self.mirror()
    mirror.apply(recorded)
    #expect(Self.ports(mirror.instances(of: .backend)) == [9002, 9003])
    #expect(mirror.revision == 12)
  }

  @Test func updatingRebuildsOnlyTheChangedServices() throws {
    let api = try ServiceName(validating: "api")
    let services: [ServiceName] = [.backend, api]
    let before = DesiredState(
      revision: 10,
      services: services,
      instances: [
        Fixture.instance("a", checkPath: "/healthz"), Fixture.instance("x", "127.0.0.1", 9101, service: "api"),
      ]
    )
    let after = before.updating(
      services: [.backend],
      instances: [Fixture.instance("b", "127.0.0.1", 9002), Fixture.instance("y", "127.0.0.1", 9999, service: "api")],
      revision: 11
    )
    #expect(after.revision == 11)
    #expect(after.backends.map(\.service) == services)
    #expect(after.backend(for: .backend)?.servers.map(\.name) == ["b"])
    // The path stays while no instance names another; the api backend is not rebuilt at all.
    #expect(after.backend(for: .backend)?.checkPath == "/healthz")
    #expect(after.backend(for: api) == before.backend(for: api))
    // Rebuilding every service from every instance gives the same as a fresh state.
    let all = [Fixture.instance("b", "127.0.0.1", 9002), Fixture.instance("x", "127.0.0.1", 9101, service: "api")]
    let fresh = DesiredState(revision: 11, services: services, instances: all, previous: before)
    #expect(before.updating(services: Set(services), instances: all, revision: 11) == fresh)
  }

  @Test func aScopedPlanLeavesOtherBackendsAlone() throws {
    let api = try ServiceName(validating: "api")
    let services: [ServiceName] = [.backend, api]
    let desired = DesiredState(
      revision: 7,
      services: services,
      instances: [Fixture.instance("a"), Fixture.instance("x", "127.0.0.1", 9101, service: "api")]
    )
    let structure = ConfigRenderer.structure(desired, settings: Fixture.settings)
    #expect(structure == ConfigRenderer.render(desired, settings: Fixture.settings).structure)
    // HAProxy has neither server: unscoped, both are added; scoped to svc_api, only x.
    let everything = Planner.plan(
      desired: desired, structure: structure, runningStructure: structure, observed: ObservedState(),
      settings: Fixture.settings)
    #expect(Set(everything.commands.map(\.server.backend)) == ["svc_backend", "svc_api"])
    let scoped = Planner.plan(
      desired: desired, structure: structure, runningStructure: structure, observed: ObservedState(),
      settings: Fixture.settings, scope: ["svc_api"])
    #expect(Set(scoped.commands.map(\.server.backend)) == ["svc_api"])
    #expect(!scoped.commands.isEmpty)
    // A structural change is found whatever the scope.
    let other = DesiredState(
      revision: 8, services: services, instances: [Fixture.instance("a", checkPath: "/ready")])
    let changed = Planner.plan(
      desired: other, structure: ConfigRenderer.structure(other, settings: Fixture.settings),
      runningStructure: structure, observed: ObservedState(), settings: Fixture.settings, scope: ["svc_api"])
    #expect(changed.needsReload)
  }

  @Test func removalsOutsideTheScopeAreKept() {
    let desired = Fixture.desired([])
    let gone = Fixture.observed(Fixture.instance("old"))
    let ref = ServerRef(backend: "svc_backend", server: "old")
    let start = ContinuousClock.now
    var tracker = RemovalTracker()
    tracker.update(desired: desired, observed: ObservedState(backends: ["svc_backend": [gone]]), now: start)
    #expect(tracker.leavingBackends == ["svc_backend"])
    // A pass that looked at another backend only says nothing about this one.
    let later = start.advanced(by: .seconds(5))
    tracker.update(desired: desired, observed: ObservedState(), now: later, scope: ["svc_api"])
    #expect(tracker.elapsed(now: later)[ref] == .seconds(5))
    // One that looked at it and found the server gone forgets it.
    tracker.update(desired: desired, observed: ObservedState(), now: later, scope: ["svc_backend"])
    #expect(tracker.elapsed(now: later).isEmpty)
    #expect(tracker.leavingBackends.isEmpty)
  }
}
