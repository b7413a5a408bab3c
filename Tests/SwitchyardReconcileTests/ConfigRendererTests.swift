import SwitchyardModel
import SwitchyardReconcile
import Testing

@Suite struct ConfigRendererTests {
  @Test func emptyServiceRendersABackendWithoutServers() throws {
    let rendered = ConfigRenderer.render(Fixture.desired([]), settings: Fixture.settings)
    try Fixture.expectGolden(rendered.text, "empty.cfg")
    #expect(rendered.text.contains("backend svc_backend\n"))
    #expect(!rendered.text.contains("  server "))
  }

  @Test func threeServersInEveryState() throws {
    let desired = Fixture.desired([
      Fixture.instance("backend-3", "127.0.0.1", 9003, state: .maint),
      Fixture.instance("backend-1", "127.0.0.1", 9001, checkPath: "/healthz"),
      Fixture.instance("backend-2", "::1", 9002, weight: 50, state: .drain, checkPath: "/healthz"),
    ])
    let rendered = ConfigRenderer.render(desired, settings: Fixture.settings)
    try Fixture.expectGolden(rendered.text, "three-servers.cfg")
  }

  @Test func twoServicesAndAHostName() throws {
    let services = [ServiceName.backend, try ServiceName(validating: "api")]
    let desired = Fixture.desired(
      [
        Fixture.instance("a1", "10.0.0.5", 8080, service: "api", checkPath: "/status?full=1"),
        Fixture.instance("backend-1", "backend-1.internal", 9001),
        Fixture.instance("ignored", "10.0.0.9", 80, service: "other"),
      ],
      services: services
    )
    let rendered = ConfigRenderer.render(desired, settings: Fixture.settings)
    try Fixture.expectGolden(rendered.text, "two-services.cfg")
    #expect(!rendered.text.contains("ignored"))
    // A host-name server is part of the structure (only a reload resolves it); IP servers are not.
    #expect(rendered.structure.contains("server backend-1 backend-1.internal:9001"))
    #expect(!rendered.structure.contains("server a1 "))
  }

  @Test func renderingIsDeterministicWhateverTheInputOrder() {
    let instances = (1...20).map { Fixture.instance("b\($0)", "10.0.0.\($0)", 9000 + $0) }
    let first = ConfigRenderer.render(Fixture.desired(instances), settings: Fixture.settings)
    for _ in 0..<5 {
      let again = ConfigRenderer.render(Fixture.desired(instances.shuffled()), settings: Fixture.settings)
      #expect(again == first)
    }
  }

  @Test func structureIgnoresIPServersButNotCheckPaths() {
    let one = ConfigRenderer.render(Fixture.desired([Fixture.instance("a")]), settings: Fixture.settings)
    let two = ConfigRenderer.render(
      Fixture.desired([Fixture.instance("a"), Fixture.instance("b", "127.0.0.2", 9002, weight: 7)]),
      settings: Fixture.settings
    )
    #expect(one.text != two.text)
    #expect(one.structure == two.structure)
    let otherPath = ConfigRenderer.render(
      Fixture.desired([Fixture.instance("a", checkPath: "/ready")]),
      settings: Fixture.settings
    )
    #expect(otherPath.structure != one.structure)
  }

  @Test func checkPathIsTheMostCommonAndStaysWhenTheServiceEmpties() {
    let desired = Fixture.desired([
      Fixture.instance("a", checkPath: "/healthz"),
      Fixture.instance("b", checkPath: "/healthz"),
      Fixture.instance("c", checkPath: "/other"),
    ])
    #expect(desired.backends[0].checkPath == "/healthz")
    let conflicts = DesiredState.checkPathConflicts(
      in: desired,
      instances: [Fixture.instance("c", checkPath: "/other")]
    )
    #expect(conflicts.map(\.server) == ["c"])
    let emptied = DesiredState(revision: 9, services: [.backend], instances: [], previous: desired)
    #expect(emptied.backends[0].checkPath == "/healthz")
    let fresh = DesiredState(revision: 9, services: [.backend], instances: [])
    #expect(fresh.backends[0].checkPath == "/")
    // Ties go to the smallest path.
    let tie = Fixture.desired([Fixture.instance("a", checkPath: "/z"), Fixture.instance("b", checkPath: "/a")])
    #expect(tie.backends[0].checkPath == "/a")
  }

  @Test func durationsAreWrittenAsHAProxyReadsThem() {
    #expect(ConfigRenderer.duration(.seconds(2)) == "2s")
    #expect(ConfigRenderer.duration(.milliseconds(1500)) == "1500ms")
    #expect(ConfigRenderer.duration(.seconds(30)) == "30s")
  }

  @Test func settingsAreValidated() throws {
    let listen = try HostPort(parsing: "127.0.0.1:8001")
    let stats = try HostPort(parsing: "127.0.0.1:8401")
    #expect(throws: SettingsError.self) {
      try NodeSettings(nodeID: "lb 1", listen: listen, stats: stats, adminSocketPath: "/tmp/a.sock")
    }
    #expect(throws: SettingsError.self) {
      try NodeSettings(nodeID: "lb1", listen: listen, stats: listen, adminSocketPath: "/tmp/a.sock")
    }
    #expect(throws: SettingsError.self) {
      try NodeSettings(nodeID: "lb1", listen: listen, stats: stats, adminSocketPath: "/tmp/a b.sock")
    }
    #expect(throws: SettingsError.self) {
      try NodeSettings(nodeID: "lb1", listen: listen, stats: stats, adminSocketPath: "relative.sock")
    }
    #expect(throws: SettingsError.self) {
      try NodeSettings(nodeID: "lb1", listen: listen, stats: stats, serviceFilter: [], adminSocketPath: "/tmp/a.sock")
    }
  }
}

@Suite("Stable structure: what never needs a reload")
struct StableStructureTests {
  @Test("entries without a check path never move the service's path")
  func entriesWithoutPathDoNotVote() {
    let named = Fixture.desired([Fixture.instance("a", checkPath: "/healthz")])
    #expect(named.backends[0].checkPath == "/healthz")
    // Three entries without a path join: before, they outvoted /healthz and switched it to `/`.
    let crowd = DesiredState(
      revision: 8,
      services: [.backend],
      instances: [
        Fixture.instance("a", checkPath: "/healthz"), Fixture.instance("b"), Fixture.instance("c"),
        Fixture.instance("d"),
      ],
      previous: named
    )
    #expect(crowd.backends[0].checkPath == "/healthz")
    // The one entry that named it leaves; the others still use the service's path.
    let unnamed = DesiredState(
      revision: 9,
      services: [.backend],
      instances: [Fixture.instance("b"), Fixture.instance("c")],
      previous: crowd
    )
    #expect(unnamed.backends[0].checkPath == "/healthz")
    #expect(DesiredState.checkPathConflicts(in: unnamed, instances: [Fixture.instance("b")]).isEmpty)
    let render = { (state: DesiredState) in ConfigRenderer.render(state, settings: Fixture.settings).structure }
    #expect(render(named) == render(crowd) && render(crowd) == render(unnamed))
  }

  @Test("a path stays while one entry names it, even when others name another")
  func namedPathIsSticky() {
    let first = Fixture.desired([Fixture.instance("a", checkPath: "/healthz")])
    let outvoted = DesiredState(
      revision: 8,
      services: [.backend],
      instances: [
        Fixture.instance("a", checkPath: "/healthz"), Fixture.instance("b", checkPath: "/ready"),
        Fixture.instance("c", checkPath: "/ready"),
      ],
      previous: first
    )
    #expect(outvoted.backends[0].checkPath == "/healthz")
    let gone = DesiredState(
      revision: 9,
      services: [.backend],
      instances: [Fixture.instance("b", checkPath: "/ready")],
      previous: outvoted
    )
    #expect(gone.backends[0].checkPath == "/ready")
  }

  @Test("weight and state of a host-name server change through the Runtime API, not a reload")
  func hostNameWeightAndStateAreRuntime() {
    let settings = Fixture.settings
    let before = Fixture.instance("n", "backend-1.internal", 9001)
    let heavier = Fixture.instance("n", "backend-1.internal", 9001, weight: 10)
    let drained = Fixture.instance("n", "backend-1.internal", 9001, state: .drain)
    let parked = Fixture.instance("n", "backend-1.internal", 9001, state: .maint)
    let running = ConfigRenderer.render(Fixture.desired([before]), settings: settings).structure
    for changed in [heavier, drained, parked] {
      let desired = Fixture.desired([changed])
      let rendered = ConfigRenderer.render(desired, settings: settings)
      #expect(rendered.structure == running)
      var seen = Fixture.observed(before)
      seen.address = "10.1.2.3"
      let plan = Planner.plan(
        desired: desired,
        rendered: rendered,
        runningStructure: running,
        observed: ObservedState(backends: ["svc_backend": [seen]]),
        settings: settings
      )
      #expect(!plan.needsReload)
      #expect(!plan.commands.isEmpty)
    }
    // Its address is still structure: a new host name needs the file.
    let moved = Fixture.instance("n", "backend-2.internal", 9001)
    #expect(ConfigRenderer.render(Fixture.desired([moved]), settings: settings).structure != running)
  }
}
