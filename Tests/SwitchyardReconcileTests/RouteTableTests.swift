import SwitchyardModel
import Testing

@testable import SwitchyardReconcile

/// Routes as HAProxy's map holds them: keys, values, matching order, conflicts and routes a node
/// cannot use.
@Suite struct RouteTableTests {
  static func name(_ text: String) -> RouteName { try! RouteName(validating: text) }
  static func service(_ text: String) -> ServiceName { try! ServiceName(validating: text) }

  static func route(
    _ name: String, _ service: String, hosts: [String] = [], prefix: String = "/", strip: Bool = false
  ) -> Route {
    try! Route(
      name: Self.name(name), service: Self.service(service), hosts: hosts.map { try! HostPattern(validating: $0) },
      pathPrefix: prefix, stripPrefix: strip)
  }

  static func table(_ routes: [Route], tcp: Set<String> = []) -> RouteTable {
    let services = Set(routes.map(\.service.rawValue)).subtracting(tcp).subtracting(["ghost"])
    return RouteTable(
      routes: routes,
      httpBackends: Dictionary(uniqueKeysWithValues: services.map { (Self.service($0), "svc_\($0)") }),
      tcpServices: Set(tcp.map(Self.service)))
  }

  static let routes = [
    route("api", "api", hosts: ["api.example.com"], prefix: "/v1"),
    route("api-root", "apiroot", hosts: ["api.example.com"]),
    route("deep", "deep", hosts: ["api.example.com"], prefix: "/v1/deep", strip: true),
    route("wild", "wild", hosts: ["*.example.com"]),
    route("static", "static", prefix: "/static", strip: true),
    route("root", "root"),
  ]

  @Test func keysEndWithASlashAndValuesNameBackendAndStrip() {
    let table = Self.table(Self.routes)
    #expect(
      table.mapText == """
        *.example.com/ svc_wild:0
        / svc_root:0
        /static/ svc_static:1
        api.example.com/ svc_apiroot:0
        api.example.com/v1/ svc_api:0
        api.example.com/v1/deep/ svc_deep:2

        """)
    #expect(table.entries.map(\.key) == table.entries.map(\.key).sorted())
    #expect(table.conflicts.isEmpty && table.rejected.isEmpty)
  }

  @Test(
    "exact host before wildcard before no host, each the longest whole-segment prefix",
    arguments: [
      ("api.example.com", "/v1", "svc_api"),
      ("api.example.com", "/v1/x", "svc_api"),
      ("api.example.com", "/v1x", "svc_apiroot"),
      ("API.Example.COM:8080", "/v1/deep/a", "svc_deep"),
      ("foo.example.com", "/v1", "svc_wild"),
      // The host tiers are strict: a wildcard's `/` beats a no-host `/static`.
      ("foo.example.com", "/static/x", "svc_wild"),
      // One label only.
      ("a.b.example.com", "/static/x", "svc_static"),
      ("example.com", "/x", "svc_root"),
      ("other.org", "/staticx", "svc_root"),
    ])
  func matchingOrder(host: String, path: String, backend: String) {
    #expect(Self.table(Self.routes).match(host: host, path: path)?.backend == backend)
  }

  @Test func noMatchMeansTheDefaultService() {
    let table = Self.table([Self.route("api", "api", hosts: ["api.example.com"])])
    #expect(table.match(host: "other.example.com", path: "/") == nil)
    #expect(table.match(host: nil, path: "/") == nil)
  }

  @Test func theNameThatSortsFirstHoldsAClaimAndTheOtherIsReported() {
    let table = Self.table([
      Self.route("b", "two", hosts: ["x.example.com", "y.example.com"]),
      Self.route("a", "one", hosts: ["x.example.com"]),
    ])
    #expect(table.match(host: "x.example.com", path: "/")?.route == Self.name("a"))
    // The loser keeps what nobody else claims.
    #expect(table.match(host: "y.example.com", path: "/")?.route == Self.name("b"))
    #expect(
      table.conflicts.map(\.description) == [
        #"route "b" claims x.example.com /, which route "a" holds (the name that sorts first wins)"#
      ])
    // The same whatever the order routes come in.
    let reversed = Self.table([
      Self.route("a", "one", hosts: ["x.example.com"]),
      Self.route("b", "two", hosts: ["x.example.com", "y.example.com"]),
    ])
    #expect(reversed == table)
  }

  @Test func aServiceWithoutBackendAnswers503AndATCPServiceIsRejected() {
    let table = Self.table(
      [Self.route("ghost", "ghost", prefix: "/ghost"), Self.route("db", "db", prefix: "/db")], tcp: ["db"])
    #expect(table.match(host: nil, path: "/ghost")?.backend == RouteTable.unavailableBackend)
    #expect(table.match(host: nil, path: "/db") == nil)
    #expect(table.rejected.map(\.route) == [Self.name("db")])
    #expect(table.routeCount == 2)
  }

  @Test func stripCountsThePrefixSegments() {
    let table = Self.table([
      Self.route("a", "a", prefix: "/a/b/c", strip: true), Self.route("root", "root", strip: true),
    ])
    #expect(table.match(host: nil, path: "/a/b/c/d")?.stripSegments == 3)
    // Stripping `/` would remove nothing: the model keeps it off.
    #expect(table.match(host: nil, path: "/x")?.stripSegments == 0)
  }
}

/// The services a node serves, their settings, and when a reload may run.
@Suite struct ServiceCatalogTests {
  static let api = try! ServiceName(validating: "api")
  static let web = try! ServiceName(validating: "web")

  @Test func everyRegisteredServiceAndTheDefaultOneAreServedDefaultFirst() {
    let (services, lingering) = DesiredState.servedServices(
      registered: [Self.web, Self.api], previous: [], running: { _ in false }, node: Fixture.settings)
    #expect(services == [.backend, Self.api, Self.web])
    #expect(lingering.isEmpty)
  }

  @Test func aServiceThatLostItsLastInstanceLingersWhileHAProxyRunsItsBackend() {
    let previous: [ServiceName] = [.backend, Self.api]
    let kept = DesiredState.servedServices(
      registered: [], previous: previous, running: { $0 == Self.api }, node: Fixture.settings)
    #expect(kept.services == [.backend, Self.api])
    #expect(kept.lingering == [Self.api])
    let gone = DesiredState.servedServices(
      registered: [], previous: previous, running: { _ in false }, node: Fixture.settings)
    #expect(gone.services == [.backend])
  }

  @Test func aFilterKeepsOtherServicesOutAndNoDefaultMeansNoneAlwaysServed() throws {
    let node = try NodeSettings(
      nodeID: "lb1", listen: HostPort(parsing: "127.0.0.1:8001"), stats: HostPort(parsing: "127.0.0.1:8401"),
      serviceFilter: [Self.api], defaultService: nil, adminSocketPath: "/tmp/lb1/admin.sock")
    let (services, _) = DesiredState.servedServices(
      registered: [Self.web, Self.api], previous: [], running: { _ in true }, node: node)
    #expect(services == [Self.api])
    let (pinned, _) = DesiredState.servedServices(
      registered: [], previous: [], running: { _ in false }, node: node)
    #expect(pinned == [Self.api])
    #expect(node.routesMapPath == "/tmp/lb1/routes.map")
    #expect(throws: SettingsError.self) {
      try NodeSettings(
        nodeID: "lb1", listen: HostPort(parsing: "127.0.0.1:8001"), stats: HostPort(parsing: "127.0.0.1:8401"),
        serviceFilter: [Self.api], defaultService: .backend, adminSocketPath: "/tmp/lb1/admin.sock")
    }
  }

  @Test func settingsShapeTheBackendAndItsServers() throws {
    let settings = try ServiceSettings(
      service: Self.api, balance: .source, check: .init(kind: .tcp, interval: .seconds(2), rise: 3),
      timeoutServer: .seconds(5), maxconn: 50)
    let desired = DesiredState(
      revision: 3, services: [.backend, Self.api],
      instances: [Fixture.instance("a1", service: "api", checkPath: "/health")], settings: [Self.api: settings])
    let text = ConfigRenderer.render(desired, settings: Fixture.settings).text
    let section = text.components(separatedBy: "backend svc_api\n")[1].components(separatedBy: "\n\n")[0]
    #expect(section.contains("  balance source\n  hash-type consistent\n"))
    // A tcp check: no HTTP request.
    #expect(!section.contains("httpchk"))
    #expect(section.contains("  timeout server 5s\n"))
    #expect(section.contains(" check inter 2s "))
    #expect(section.contains(" rise 3 "))
    #expect(section.contains(" maxconn 50 "))
    // A service without settings keeps today's lines.
    #expect(text.contains("backend svc_backend\n  balance roundrobin\n  option httpchk GET /\n"))
  }

  @Test func aTCPServiceListensOnItsPortUnlessTheNodeOrAnEarlierServiceHasIt() throws {
    let first = try ServiceSettings(service: Self.api, mode: .tcp, port: 6379)
    let second = try ServiceSettings(service: Self.web, mode: .tcp, port: 6379)
    let desired = DesiredState(
      revision: 3, services: [.backend, Self.api, Self.web], instances: [],
      settings: [Self.api: first, Self.web: second])
    let (listeners, conflicts) = desired.tcpListeners(node: Fixture.settings)
    #expect(listeners.map(\.backend.service) == [Self.api])
    #expect(conflicts.count == 1 && conflicts[0].contains("\"web\""))
    let text = ConfigRenderer.render(desired, settings: Fixture.settings).text
    #expect(text.contains("frontend tcp_api\n  mode tcp\n  no option idle-close-on-response\n  bind 127.0.0.1:6379\n"))
    #expect(!text.contains("frontend tcp_web"))
    #expect(text.contains("backend svc_api\n  mode tcp\n  no option abortonclose\n"))
  }

  @Test func aBackendKeepsItsStructureWhileOnlyServersWithAddressesChange() throws {
    let before = Fixture.desired([Fixture.instance("a", "127.0.0.1", 9001), Fixture.instance("h", "db.internal", 9002)])
    let moved = Fixture.desired([Fixture.instance("a", "127.0.0.1", 9101), Fixture.instance("h", "db.internal", 9002)])
    let renamed = Fixture.desired([
      Fixture.instance("a", "127.0.0.1", 9001), Fixture.instance("h", "db2.internal", 9002),
    ])
    let backend = try #require(before.backends.first)
    #expect(backend.hasSameStructure(as: try #require(moved.backends.first)))
    #expect(!backend.hasSameStructure(as: try #require(renamed.backends.first)))
    let tuned = DesiredState(
      revision: 8, services: [.backend], instances: [],
      settings: [.backend: try ServiceSettings(service: .backend, balance: .leastconn)])
    #expect(!backend.hasSameStructure(as: try #require(tuned.backends.first)))
  }

  @Test func aTCPServiceGetsNoListenerOnAReservedOrUnbindablePort() throws {
    let node = try NodeSettings(
      nodeID: "lb1", listen: HostPort(parsing: "127.0.0.1:8001"), stats: HostPort(parsing: "127.0.0.1:8401"),
      adminSocketPath: "/tmp/lb1/admin.sock", reservedPorts: [9101])
    let desired = DesiredState(
      revision: 3, services: [.backend, Self.api, Self.web], instances: [],
      settings: [
        Self.api: try ServiceSettings(service: Self.api, mode: .tcp, port: 9101),
        Self.web: try ServiceSettings(service: Self.web, mode: .tcp, port: 7000),
      ]
    ).with(unavailablePorts: [7000: "Address already in use"])
    let (listeners, conflicts) = desired.tcpListeners(node: node)
    #expect(listeners.isEmpty)
    #expect(conflicts.count == 2)
    #expect(conflicts.contains { $0.contains("admin endpoint") })
    #expect(conflicts.contains { $0.contains("Address already in use") })
  }

  @Test func roundRobinGivesWayToRandomAboveHAProxysWeightLimitWithHysteresis() {
    let limit = BackendPolicy.roundRobinWeightLimit
    #expect(BackendPolicy.effectiveBalance(configured: .roundrobin, weightSum: limit, previous: nil) == .roundrobin)
    #expect(BackendPolicy.effectiveBalance(configured: .roundrobin, weightSum: limit + 1, previous: nil) == .random)
    #expect(BackendPolicy.effectiveBalance(configured: .roundrobin, weightSum: limit - 1, previous: .random) == .random)
    #expect(
      BackendPolicy.effectiveBalance(
        configured: .roundrobin, weightSum: BackendPolicy.roundRobinWeightResume - 1, previous: .random)
        == .roundrobin)
    #expect(BackendPolicy.effectiveBalance(configured: .leastconn, weightSum: limit * 2, previous: nil) == .leastconn)
  }

  @Test func aReloadWaitsForOthersToJoinAndKeepsItsDistance() {
    var gate = ReloadGate<ContinuousClock.Instant>(delay: .milliseconds(200), minimumInterval: .milliseconds(500))
    let start = ContinuousClock.now
    #expect(gate.wait(now: start) == .milliseconds(200))
    // A second change later in the window waits for the same reload.
    #expect(gate.wait(now: start + .milliseconds(150)) == .milliseconds(50))
    #expect(gate.wait(now: start + .milliseconds(200)) == nil)
    gate.reloaded(now: start + .milliseconds(250))
    #expect(!gate.isPending)
    // The next one waits for its window and for the distance to the last reload.
    #expect(gate.wait(now: start + .milliseconds(300)) == .milliseconds(450))
    gate.settled()
    #expect(!gate.isPending)
  }
}
