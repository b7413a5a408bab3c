import SwitchyardModel
import Testing

@testable import SwitchyardReconcile

/// What the controller believes HAProxy runs: an observation with the confirmed commands on top.
@Suite struct RuntimeBeliefTests {
  static let backend = "svc_backend"

  static func ref(_ server: String) -> ServerRef { ServerRef(backend: backend, server: server) }

  static func server(_ name: String, id: Int?, weight: Int = 100, state: ServerAdminState = .ready) -> ObservedServer {
    ObservedServer(
      name: name, address: "127.0.0.1", port: 9001, weight: weight, adminState: state, activeConnections: 3,
      isCheckEnabled: true, id: id, connectionsObserved: true)
  }

  static func observed(_ servers: [ObservedServer]) -> ObservedState {
    ObservedState(backends: [backend: servers], backendIDs: [backend: 3])
  }

  @Test func anObservationIsBelievedWithoutItsConnections() throws {
    var belief = RuntimeBelief()
    #expect(!belief.knows(Self.backend))
    belief.observed(Self.observed([Self.server("a", id: 1), Self.server("b", id: 7)]), backends: [Self.backend])
    #expect(belief.knows(Self.backend))
    #expect(belief.backendID(Self.backend) == 3)
    let servers = try #require(belief.servers(["b", "zzz"], in: Self.backend))
    #expect(servers.map(\.name) == ["b"])
    #expect(servers.first?.activeConnections == 0 && servers.first?.connectionsObserved == false)
    #expect(belief.servers(["a"], in: "svc_other") == nil)
    // New ids go above every id the backend used, in order.
    #expect(belief.newServerIDs(for: [Self.ref("c"), Self.ref("d")]) == [Self.ref("c"): 8, Self.ref("d"): 9])
    // An unknown backend, or one with a server of unknown id, gets none.
    belief.observed(Self.observed([Self.server("a", id: nil)]), backends: [Self.backend])
    #expect(belief.newServerIDs(for: [Self.ref("c")]).isEmpty)
    #expect(belief.newServerIDs(for: [ServerRef(backend: "svc_other", server: "c")]).isEmpty)
  }

  @Test func confirmedCommandsChangeTheBelief() throws {
    var belief = RuntimeBelief()
    belief.observed(Self.observed([Self.server("a", id: 1)]), backends: [Self.backend])
    let address = try Address(validating: "127.0.0.2")
    let generation = belief.generation
    belief.confirmed(
      .addServer(Self.ref("n"), address: address, port: 9100, options: ["weight", "42", "check"]), id: 2)
    #expect(belief.generation != generation)
    var added = try #require(belief.servers(["n"], in: Self.backend)?.first)
    #expect(added.address == "127.0.0.2" && added.port == 9100 && added.weight == 42 && added.id == 2)
    #expect(added.adminState == .maint && !added.isCheckEnabled)
    belief.confirmed(.enableHealth(Self.ref("n")))
    belief.confirmed(.setState(Self.ref("n"), .ready))
    belief.confirmed(.setWeight(Self.ref("n"), 7))
    belief.confirmed(.setAddress(Self.ref("n"), address: try Address(validating: "::1"), port: 9200))
    added = try #require(belief.servers(["n"], in: Self.backend)?.first)
    #expect(added.isCheckEnabled && added.adminState == .ready && added.weight == 7)
    #expect(added.address == "::1" && added.port == 9200)
    #expect(belief.newServerIDs(for: [Self.ref("m")]) == [Self.ref("m"): 3])
    belief.confirmed(.deleteServer(Self.ref("a")))
    #expect(belief.servers(["a", "n"], in: Self.backend)?.map(\.name) == ["n"])
    // A server added without a known id leaves the ids unknown.
    belief.confirmed(.addServer(Self.ref("x"), address: address, port: 1, options: []))
    #expect(belief.servers(["x"], in: Self.backend)?.first?.weight == 1)
    #expect(belief.newServerIDs(for: [Self.ref("m")]).isEmpty)
    // Commands for backends there is no belief about change nothing.
    belief.confirmed(.setWeight(ServerRef(backend: "svc_other", server: "a"), 1))
    #expect(!belief.knows("svc_other"))
  }

  @Test func differencesFromHAProxysReport() throws {
    var belief = RuntimeBelief()
    let servers = [Self.server("a", id: 1), Self.server("b", id: 2), Self.server("c", id: 3)]
    belief.observed(Self.observed(servers), backends: [Self.backend])
    // The same report, with other connection counts and health: no difference.
    var same = servers
    same[0].activeConnections = 9
    same[0].isUp = false
    #expect(belief.differences(from: Self.observed(same)).isEmpty)
    // A weight changed by hand, a server deleted by hand, one added by hand.
    var other = servers
    other[0].weight = 1
    other.remove(at: 1)
    other.append(Self.server("d", id: 9))
    #expect(belief.differences(from: Self.observed(other)) == ["svc_backend/a", "svc_backend/b", "svc_backend/d"])
    // A backend the belief does not know is not compared; one it knows that HAProxy lacks is.
    #expect(belief.differences(from: ObservedState(backends: ["svc_x": servers])).count == 3)
    belief.forget(Self.backend)
    #expect(belief.differences(from: ObservedState()).isEmpty)
  }

  @Test func leavingServersAreListedByBackend() {
    var tracker = RemovalTracker()
    let observed = ObservedState(backends: [
      Self.backend: [Self.server("a", id: 1), Self.server("b", id: 2)], "svc_api": [Self.server("x", id: 1)],
    ])
    tracker.update(desired: DesiredState(revision: 1, backends: []), observed: observed, now: .now)
    // Only backends of the desired state count: nothing leaves a backend the node does not serve.
    #expect(tracker.leavingServers.isEmpty)
    let desired = DesiredState(
      revision: 1,
      backends: [
        DesiredBackend(service: .backend, checkPath: "/", servers: [DesiredServer(Fixture.instance("b"))]),
        DesiredBackend(service: try! ServiceName(validating: "api"), checkPath: "/", servers: []),
      ])
    tracker.update(desired: desired, observed: observed, now: .now)
    #expect(tracker.leavingServers == [Self.backend: ["a"], "svc_api": ["x"]])
  }

  @Test func forgettingAndKeeping() {
    var belief = RuntimeBelief()
    belief.observed(
      ObservedState(backends: ["svc_a": [], "svc_b": [Self.server("x", id: 1)]]), backends: ["svc_a", "svc_b", "svc_c"])
    #expect(belief.knownBackends == ["svc_a", "svc_b", "svc_c"])
    belief.keep(only: ["svc_b", "svc_c"])
    #expect(belief.knownBackends == ["svc_b", "svc_c"])
    belief.forget("svc_b")
    #expect(belief.knownBackends == ["svc_c"])
    belief.forgetAll()
    #expect(belief.knownBackends.isEmpty)
    #expect(RuntimeBelief.weight(in: ["check", "weight", "256"]) == 256)
    #expect(RuntimeBelief.weight(in: ["weight"]) == 1)
  }
}
