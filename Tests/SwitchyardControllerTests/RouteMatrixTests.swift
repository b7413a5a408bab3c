import EtcdClient
import Foundation
import HAProxyKit
import SwitchyardModel
import SwitchyardReconcile
import SwitchyardTestSupport
import Testing

/// Host and path routes from etcd through a real controller and a real HAProxy: the matching order, path
/// stripping, the default service, 404 and 503, conflicts, invalid values and a TCP service. Each result is
/// held against the spec written out here and against ``RouteTable/match(host:path:)`` as an oracle.
@Suite(.serialized) struct RouteMatrixTests {
  /// The check path every test server is registered with, so that health checks are told apart from
  /// the requests a test sends.
  static let checkPath = "/healthz"

  /// The services of the matrix, each with one instance of the same name.
  static let services = ["backend", "exact", "wild", "wildapi", "api", "apiv2", "strip"]

  /// The routes of the matrix, as operators would put them.
  static let routes: [(name: String, json: String)] = [
    ("exact", #"{"service":"exact","hosts":["a.example.com"]}"#),
    // One host may be given as `host`.
    ("exact-admin", #"{"service":"exact","host":"c.example.com","path_prefix":"/admin"}"#),
    ("wild", #"{"service":"wild","hosts":["*.example.com"]}"#),
    ("wild-api", #"{"service":"wildapi","hosts":["*.example.com"],"path_prefix":"/api"}"#),
    ("api", #"{"service":"api","path_prefix":"/api"}"#),
    // A trailing slash is normalized away.
    ("api-v2", #"{"service":"apiv2","path_prefix":"/api/v2/"}"#),
    ("strip", #"{"service":"strip","path_prefix":"/strip/me","strip_prefix":true}"#),
    ("shop", #"{"service":"exact","hosts":["Shop.Example.ORG","store.example.org"],"path_prefix":"/cart"}"#),
    // A service that never registered: its route answers 503.
    ("down", #"{"service":"nothing","path_prefix":"/down"}"#),
  ]

  /// One request of the matrix and what it must get: the server that answers (`nil`: a 503) and the
  /// request target that server receives.
  struct Case: CustomStringConvertible {
    var host: String?
    var target: String
    var server: String?
    var forwarded: String?

    init(_ host: String?, _ target: String, _ server: String?, forwarded: String? = nil) {
      self.host = host
      self.target = target
      self.server = server
      self.forwarded = server == nil ? nil : forwarded ?? target
    }

    var path: String { String(target.prefix { $0 != "?" }) }
    var query: String { String(target.drop { $0 != "?" }) }
    var description: String { "GET \(target) Host: \(host ?? "127.0.0.1:<port>")" }
  }

  static let cases: [Case] = [
    // An exact host takes everything it has a prefix for, also where a wildcard or no-host route has a
    // longer one.
    Case("a.example.com", "/", "exact"),
    Case("a.example.com", "/api/x?k=v", "exact"),
    Case("c.example.com", "/admin/users", "exact"),
    // An exact host without a matching prefix falls through to the wildcard.
    Case("c.example.com", "/adminx", "wild"),
    Case("c.example.com", "/api", "wildapi"),
    Case("b.example.com", "/", "wild"),
    Case("b.example.com", "/api", "wildapi"),
    // A wildcard beats no host, even where the no-host route has the longer prefix.
    Case("b.example.com", "/api/v2/x", "wildapi"),
    Case("b.example.com", "/apix", "wild"),
    // A wildcard covers one label only, and not the bare domain.
    Case("x.b.example.com", "/api/1", "api"),
    Case("x.b.example.com", "/", "backend"),
    Case("example.com", "/", "backend"),
    Case("example.com", "/api", "api"),
    // No host: the longest prefix, whole segments only.
    Case("other.test", "/api", "api"),
    Case("other.test", "/api/", "api"),
    Case("other.test", "/api/users?id=7&x=%20", "api"),
    Case("other.test", "/apix", "backend"),
    Case("other.test", "/API", "backend"),
    Case("other.test", "/api%2Fv2", "backend"),
    Case("other.test", "/api/v2", "apiv2"),
    Case("other.test", "/api/v2/items?page=2", "apiv2"),
    Case("other.test", "/api/v20", "api"),
    Case(nil, "/api/v2", "apiv2"),
    Case(nil, "/", "backend"),
    // Strip: the rest keeps a leading "/", the query string stays.
    Case("other.test", "/strip/me", "strip", forwarded: "/"),
    Case("other.test", "/strip/me/", "strip", forwarded: "/"),
    Case("other.test", "/strip/me?q=1", "strip", forwarded: "/?q=1"),
    Case("other.test", "/strip/me/a/b?x=1&y=2", "strip", forwarded: "/a/b?x=1&y=2"),
    Case("other.test", "/strip/meow", "backend"),
    Case("other.test", "/strip", "backend"),
    // Host headers with a port and in upper case; hosts written in upper case in etcd.
    Case("A.EXAMPLE.COM:8001", "/api", "exact"),
    Case("B.Example.Com:1234", "/api", "wildapi"),
    Case("shop.example.org", "/cart/1", "exact"),
    Case("STORE.example.org:80", "/cart", "exact"),
    Case("shop.example.org", "/", "backend"),
    // A route to a service without instances.
    Case("other.test", "/down", nil),
    Case("other.test", "/down/x", nil),
  ]

  @Test func hostsPrefixesStripAndTheDefaultServiceMatchTheDocumentedOrder() async throws {
    try await withNodes { cluster, nodes, etcd in
      let node = nodes[0]
      let servers = try await startServices(Self.services, etcd: etcd)
      defer { Task { for server in servers.values { await server.close() } } }
      try await node.waitRouted("/", to: "backend")
      try await waitForBackends(Self.services, on: node)
      let reloadsBefore = try await node.reloadCount()

      var revision: Int64 = 0
      for route in Self.routes { revision = try await etcd.putRoute(route.name, route.json) }
      try await node.waitApplied(revision)
      try await node.waitRouted("/strip/me", host: "other.test", to: "strip")

      // The oracle: the same values through the model and the route table.
      let oracle = try Self.oracle(Self.routes, servedServices: Self.services)
      #expect(
        try await node.routesInHAProxy() == Dictionary(uniqueKeysWithValues: oracle.entries.map { ($0.key, $0.value) }))
      let routesByName = try Dictionary(
        uniqueKeysWithValues: Self.parsedRoutes(Self.routes).map { ($0.name.rawValue, $0) })

      var table: [String] = []
      for testCase in Self.cases {
        // What the oracle says, against the spec above.
        let entry = oracle.match(host: testCase.host ?? "127.0.0.1:\(node.listenPort)", path: testCase.path)
        let oracleServer: String? =
          entry.map { $0.backend == RouteTable.unavailableBackend ? nil : String($0.backend.dropFirst("svc_".count)) }
          ?? "backend"
        let oracleForwarded =
          entry.map { routesByName[$0.route.rawValue]?.forwardedPath(testCase.path) } ?? testCase.path
        #expect(oracleServer == testCase.server, "oracle: \(testCase) → \(oracleServer ?? "503")")
        if testCase.server != nil {
          #expect(oracleForwarded.map { $0 + testCase.query } == testCase.forwarded, "oracle: \(testCase) forwards")
        }

        // What HAProxy does.
        let (status, body) = try await node.request(testCase.target, host: testCase.host)
        if let expected = testCase.server {
          let server = try #require(servers[expected])
          let forwarded = server.receivedPaths.last { $0 != Self.checkPath }
          table.append("\(testCase) → \(status) \(servedBy(body) ?? body) \(forwarded ?? "-")")
          #expect(status == 200 && servedBy(body) == expected, "\(testCase): got \(status) \(body.debugDescription)")
          #expect(forwarded == testCase.forwarded, "\(testCase): \(expected) received \(forwarded ?? "nothing")")
        } else {
          table.append("\(testCase) → \(status)")
          #expect(status == 503, "\(testCase): got \(status) \(body.debugDescription), expected 503")
        }
      }
      print("route matrix:\n  " + table.joined(separator: "\n  "))

      // Routes are map entries: not one reload.
      #expect(try await node.reloadCount() == reloadsBefore)
      let state = try await node.state()
      #expect(state.routeCount == Self.routes.count)
      #expect(state.routes?.first { $0.name == "down" }?.target == "unavailable")
      #expect(state.routes?.first { $0.name == "api-v2" }?.pathPrefix == "/api/v2")
      #expect(state.routes?.first { $0.name == "shop" }?.hosts == ["shop.example.org", "store.example.org"])
      #expect(state.routeProblems?.isEmpty == true, "\(state.routeProblems ?? [])")

      // A node without a default service answers what matches no route with a short 404.
      try await withExtraNode(cluster, name: "lb-nodefault", extraArguments: ["--no-default-service"]) { bare in
        try await bare.waitRouted("/api/v2", to: "apiv2")
        for (host, target) in [("other.test", "/nothing/here"), ("x.b.example.com", "/"), ("127.0.0.1", "/apix")] {
          let (status, body) = try await bare.request(target, host: host)
          #expect(status == 404, "GET \(target) Host: \(host) on a node without default: \(status) \(body)")
          #expect(
            body.contains(ConfigRenderer.noRouteBody) && body.utf8.count < 100, "404 body: \(body.debugDescription)")
        }
        #expect(servedBy(try await bare.request("/", host: "a.example.com").body) == "exact")
        #expect(try await bare.request("/down", host: "other.test").status == 503)
        #expect(try await bare.reloadCount() == 0)
      }
    }
  }

  @Test func aRouteToAServiceWithoutInstancesAnswers503AndServesWithinASecondOfItsRegistration() async throws {
    try await withNodes { _, nodes, etcd in
      let node = nodes[0]
      try await etcd.putRoute("late", #"{"service":"late","path_prefix":"/late"}"#)
      try await etcd.putRoute("gone", #"{"service":"gone","hosts":["gone.example.com"]}"#)
      let gone = try await HTTPTestServer.start(name: "gone")
      defer { Task { await gone.close() } }
      try await etcd.register("gone", port: gone.port, service: "gone")
      try await node.waitRouted("/", host: "gone.example.com", to: "gone")
      try await node.waitRouted("/late", to: nil, status: 503)
      let reloadsBefore = try await node.reloadCount()

      // The last instance goes: the backend stays until a reload happens anyway, empty, so a 503.
      let revision = try await etcd.deregister("gone", service: "gone")
      try await node.waitApplied(revision)
      try await node.waitRouted("/", host: "gone.example.com", to: nil, status: 503)
      var state = try await node.state()
      #expect(state.services.first { $0.name == "gone" }?.lingering == true, "\(state.services)")
      #expect(state.routes?.first { $0.name == "late" }?.target == "unavailable")
      #expect(try await node.reloadCount() == reloadsBefore)

      // The first registration of `late`: a new backend, one reload, traffic within a second. The last
      // reload is more than the minimum interval between reloads ago, as on a node that is not busy.
      try await Task.sleep(for: .milliseconds(600))
      let late = try await HTTPTestServer.start(name: "late")
      defer { Task { await late.close() } }
      let clock = ContinuousClock()
      let registered = clock.now
      try await etcd.register("late", port: late.port, service: "late")
      var firstServed: Duration?
      while registered.duration(to: clock.now) < .seconds(5) {
        if let (status, body) = try? await node.request("/late/first"), status == 200, servedBy(body) == "late" {
          firstServed = registered.duration(to: clock.now)
          break
        }
        try await Task.sleep(for: .milliseconds(5))
      }
      print(
        "first routed request of a new service: \(firstServed.map { "\($0)" } ?? "none within 5 s") after its registration"
      )
      let took = try #require(firstServed, "late never served")
      #expect(took <= .seconds(1), "the first request of a new service was served \(took) after its registration")
      #expect(late.receivedPaths.contains("/late/first"))
      #expect(try await node.reloadCount() == reloadsBefore + 1)
      // A new service is an ordinary event: no pass fails over it.
      let failedPasses = try await node.metric("switchyard_reconciles_total{result=\"failed\"}") ?? 0
      let failureLines = node.log().split(separator: "\n").filter { $0.contains("Reconcile pass failed") }
      #expect(failedPasses == 0, "\(failedPasses) failed reconcile passes: \(failureLines)")

      // The lingering backend stays only until a reload that happens anyway: this one. Its route still
      // answers 503.
      let dropped = await eventually(timeout: .seconds(3)) {
        let names = try await node.state().services.map(\.name)
        let file = try node.configSection("backend svc_gone")
        return names.contains("late") && !names.contains("gone") && file.isEmpty
      }
      state = try await node.state()
      #expect(
        dropped,
        "after the reload for svc_late, svc_gone is still in haproxy.cfg; /state services: \(state.services.map { "\($0.name) lingering \($0.lingering ?? false)" })"
      )
      #expect(state.routes?.first { $0.name == "gone" }?.target == "unavailable")
      #expect(try await node.request("/", host: "gone.example.com").status == 503)
    }
  }

  @Test func conflictsGoToTheNameThatSortsFirstAndAnInvalidValueLeavesTheLastValidInForce() async throws {
    try await withNodes { _, nodes, etcd in
      let node = nodes[0]
      let servers = try await startServices(["alpha", "beta", "gamma"], etcd: etcd)
      defer { Task { for server in servers.values { await server.close() } } }
      try await waitForBackends(["alpha", "beta", "gamma"], on: node)
      let reloadsBefore = try await node.reloadCount()

      // Two routes claim x.example.com/api: the name that sorts first wins, whichever came first.
      let second = (name: "b-second", json: #"{"service":"beta","hosts":["x.example.com"],"path_prefix":"/api"}"#)
      let first = (name: "a-first", json: #"{"service":"alpha","hosts":["x.example.com"],"path_prefix":"/api/"}"#)
      try await etcd.putRoute(second.name, second.json)
      try await node.waitRouted("/api/1", host: "x.example.com", to: "beta")
      try await node.waitApplied(try await etcd.putRoute(first.name, first.json))
      try await node.waitRouted("/api/1", host: "x.example.com", to: "alpha")
      let oracle = try Self.oracle([second, first], servedServices: ["alpha", "beta", "gamma"])
      #expect(oracle.match(host: "x.example.com", path: "/api/1")?.route.rawValue == "a-first")
      #expect(oracle.conflicts.map(\.loser.rawValue) == ["b-second"])
      var state = try await node.state()
      let problems = state.routeProblems ?? []
      #expect(
        problems.count == 1 && problems.allSatisfy { $0.contains("\"b-second\"") && $0.contains("\"a-first\"") },
        "routeProblems: \(problems)")
      #expect(state.routes?.first { $0.name == "b-second" }?.target == "shadowed")
      // Deleting the winner hands over to the other.
      try await node.waitApplied(try await etcd.deleteRoute(first.name))
      try await node.waitRouted("/api/1", host: "x.example.com", to: "beta")
      state = try await node.state()
      #expect(state.routeProblems?.isEmpty == true, "routeProblems: \(state.routeProblems ?? [])")

      // Invalid values of a route's key: each is listed, and the last valid value stays in force.
      try await etcd.putRoute("keep", #"{"service":"gamma","path_prefix":"/keep"}"#)
      try await node.waitRouted("/keep", to: "gamma")
      let mapBefore = try await node.routesInHAProxy()
      let invalid = [
        #"{"service":"beta","path_prefix":"/keep now"}"#,
        #"{"service":"beta","path_prefix":"/keep\nuse_backend svc_beta"}"#,
        #"{"service":"beta","path_prefix":"/keep;x"}"#,
        #"{"service":"beta","path_prefix":"/keep/ svc_beta:0"}"#,
        ##"{"service":"beta","path_prefix":"#/keep"}"##,
        #"{"service":"beta","hosts":["evil.example.com/ svc_beta:0"],"path_prefix":"/keep"}"#,
        #"{"service":"beta","hosts":["a.example.com\r\nX: y"],"path_prefix":"/keep"}"#,
        #"{"service":"svc beta","path_prefix":"/keep"}"#,
        #"{"service":"beta","path_prefix":"/keep","strip_prefx":true}"#,
        #"{"service":"beta","path_prefix":"/keep/../beta"}"#,
        #"not json"#,
      ]
      for value in invalid {
        let revision = try await etcd.putRoute("keep", value)
        try await node.waitApplied(revision)
        state = try await node.state()
        let listed = state.invalidEntries.first { $0.key == "/switchyard/routes/keep" }
        #expect(listed != nil, "\(value.debugDescription) is not listed in invalidEntries: \(state.invalidEntries)")
        #expect(!(listed?.reason.isEmpty ?? true))
        let (status, body) = try await node.request("/keep")
        #expect(status == 200 && servedBy(body) == "gamma", "after \(value.debugDescription): \(status) \(body)")
        #expect(state.routes?.first { $0.name == "keep" }?.service == "gamma")
      }
      #expect(try await node.routesInHAProxy() == mapBefore)
      let config = try node.config()
      #expect(!config.contains("use_backend svc_beta") && !config.contains("evil"))
      // A valid value again takes over, and the entry is no longer listed.
      try await node.waitApplied(try await etcd.putRoute("keep", #"{"service":"beta","path_prefix":"/keep"}"#))
      try await node.waitRouted("/keep", to: "beta")
      #expect(try await node.state().invalidEntries.isEmpty)
      #expect(try await node.reloadCount() == reloadsBefore)

      // The last valid value stays in force also across a reload (a new service) and the full read
      // that follows it.
      try await node.waitApplied(try await etcd.putRoute("keep", #"{"service":"gamma","path_prefix":"/keep now"}"#))
      let delta = try await HTTPTestServer.start(name: "delta")
      defer { Task { await delta.close() } }
      try await etcd.register("delta", port: delta.port, service: "delta")
      try await retrying(timeout: .seconds(5)) {
        guard try await node.reloadCount() == reloadsBefore + 1 else { throw TestSupportError("no reload yet") }
      }
      // The full pass after the reload.
      try await Task.sleep(for: .seconds(1))
      for _ in 0..<5 {
        let (status, body) = try await node.request("/keep")
        #expect(
          status == 200 && servedBy(body) == "beta",
          "after a reload, /keep answered \(status) \(body.debugDescription); the last valid value routes it to beta")
        try await Task.sleep(for: .milliseconds(100))
      }
      state = try await node.state()
      #expect(state.routes?.first { $0.name == "keep" }?.service == "beta", "\(state.routes ?? [])")
      #expect(state.invalidEntries.contains { $0.key == "/switchyard/routes/keep" })
    }
  }

  @Test func aTCPServiceIsServedOnItsOwnPortAndHTTPRoutesCannotReachIt() async throws {
    try await withNodes { _, nodes, etcd in
      let node = nodes[0]
      let echo = try await TCPEchoServer.start()
      defer { Task { await echo.close() } }
      let port = try FreePort.allocate()
      try await etcd.putSettings("cache", #"{"mode":"tcp","port":\#(port),"check":{"type":"tcp"}}"#)
      try await etcd.register("cache-1", port: echo.port, service: "cache")
      try await retrying(timeout: .seconds(10)) {
        let answer = try await tcpRoundTrip(port: port, message: "PING 1\r\n")
        guard answer == "PING 1\r\n" else {
          throw TestSupportError("echo through the node: \(answer.debugDescription)")
        }
      }
      // Several connections, one after the other, and a larger payload.
      let payload = String(repeating: "0123456789abcdef", count: 4096)
      #expect(try await tcpRoundTrip(port: port, message: payload) == payload)

      try await retrying(timeout: .seconds(5)) {
        let cache = try await node.state().services.first { $0.name == "cache" }
        guard cache?.mode == "tcp", cache?.port == port else {
          throw TestSupportError("/state: cache \(cache.map { "\($0)" } ?? "missing")")
        }
      }
      let frontend = try node.configSection("frontend tcp_cache")
      #expect(frontend.contains("mode tcp") && frontend.contains("bind 127.0.0.1:\(port)"), "\(frontend)")
      let backend = try node.configSection("backend svc_cache")
      #expect(backend.contains("mode tcp") && !backend.contains { $0.hasPrefix("option httpchk") }, "\(backend)")
      // A TCP check: the echo server would fail an HTTP one.
      try await retrying(timeout: .seconds(5)) {
        let row = try await node.stats().first { $0.proxyName == "svc_cache" && $0.serviceName == "cache-1" }
        guard row?.status == "UP", row?["check_status"] == "L4OK" else {
          throw TestSupportError("svc_cache/cache-1: \(row?.fields ?? [:])")
        }
      }

      // An HTTP route to it is refused, and reported.
      try await node.waitApplied(try await etcd.putRoute("to-cache", #"{"service":"cache","path_prefix":"/cache"}"#))
      let routes = try await node.state()
      #expect(routes.routes?.first { $0.name == "to-cache" }?.target == "rejected")
      #expect(routes.routeProblems?.contains { $0.contains("\"to-cache\"") && $0.contains("tcp") } == true)
      #expect(try await node.routesInHAProxy().keys.contains("/cache/") == false)

      // A tcp service that claims the node's own port gets no listener, and it is reported.
      try await etcd.putSettings("clash", #"{"mode":"tcp","port":\#(node.listenPort)}"#)
      try await etcd.register("clash-1", port: echo.port, service: "clash")
      try await retrying(timeout: .seconds(10)) {
        let problems = try await node.state().routeProblems ?? []
        guard problems.contains(where: { $0.contains("\"clash\"") && $0.contains("\(node.listenPort)") }) else {
          throw TestSupportError("routeProblems: \(problems)")
        }
      }
      #expect(try node.configSection("frontend tcp_clash").isEmpty)
      let backendOnly = try await HTTPTestServer.start(name: "b1")
      defer { Task { await backendOnly.close() } }
      try await etcd.register("b1", port: backendOnly.port)
      try await node.waitRouted("/", to: "b1")
      #expect(try await tcpRoundTrip(port: port, message: "still\n") == "still\n")
    }
  }

  // MARK: - Helpers

  /// Starts one test server per service, named like it, and registers it with ``checkPath``.
  func startServices(_ names: [String], etcd: EtcdClient) async throws -> [String: HTTPTestServer] {
    var servers: [String: HTTPTestServer] = [:]
    for name in names {
      let server = try await HTTPTestServer.start(name: name)
      servers[name] = server
      try await etcd.register(name, port: server.port, service: name, checkPath: Self.checkPath)
    }
    return servers
  }

  /// Waits until the node runs a backend for each of `services` with its server up.
  func waitForBackends(_ services: [String], on node: LBNode) async throws {
    try await retrying(timeout: .seconds(10)) {
      let state = try await node.state()
      for service in services {
        guard let entry = state.services.first(where: { $0.name == service }),
          entry.servers.contains(where: { $0.health == "up" })
        else { throw TestSupportError("\(service) has no server up: \(state.services)") }
      }
    }
  }

  static func parsedRoutes(_ routes: [(name: String, json: String)]) throws -> [Route] {
    try routes.map { try Route.parse(key: Array((Route.root + $0.name).utf8), value: Array($0.json.utf8)) }
  }

  /// The route table a node with instances of `servedServices` builds from `routes`.
  static func oracle(_ routes: [(name: String, json: String)], servedServices: [String]) throws -> RouteTable {
    let backends = try servedServices.map { try ServiceName(validating: $0) }
    return RouteTable(
      routes: try parsedRoutes(routes),
      httpBackends: Dictionary(uniqueKeysWithValues: backends.map { ($0, $0.haproxyBackendName) }),
      tcpServices: [])
  }
}
