import ArgumentParser
import EtcdClient
import Foundation
import SwitchyardModel
import SwitchyardReconcile
import Testing

@testable import SwitchyardCLI

/// `switchyard route …`, `switchyard service …` and the routing part of `switchyard status`: argument
/// validation without etcd, then the commands against a real etcd.
@Suite("route and service commands")
struct RouteCommandTests {
  /// The message ArgumentParser prints for `arguments`, or `nil` when they parse and validate.
  func refusal<Command: ParsableArguments>(_ command: Command.Type, _ arguments: [String]) -> String? {
    do {
      _ = try Command.parse(arguments)
      return nil
    } catch {
      return Command.message(for: error)
    }
  }

  // MARK: - route set: validation without etcd

  @Test("route set builds the model's route: hosts lower-cased and sorted, the prefix normalized")
  func routeFromFlags() throws {
    let command = try RouteSetCommand.parse([
      "api", "--service", "api", "--host", "*.Example.com", "--host", "API.example.com", "--path-prefix", "/api/",
      "--strip-prefix",
    ])
    let route = try command.route()
    #expect(route.name.rawValue == "api")
    #expect(route.service.rawValue == "api")
    #expect(route.hosts.map(\.text) == ["api.example.com", "*.example.com"])
    #expect(route.pathPrefix == "/api")
    #expect(route.stripPrefix)
    #expect(route.path == "/switchyard/routes/api")
    let plain = try RouteSetCommand.parse(["web", "--service", "backend"]).route()
    #expect(plain.hosts.isEmpty && plain.pathPrefix == "/" && !plain.stripPrefix)
  }

  @Test(
    "route set refuses bad input naming the flag",
    arguments: [
      (["a b", "--service", "api"], "NAME:"),
      (["api", "--service", "a/b"], "--service:"),
      (["api", "--service", "api", "--host", "a b.example.com"], "--host \"a b.example.com\": contains a space"),
      (["api", "--service", "api", "--host", "*.com"], "--host \"*.com\": a wildcard needs"),
      (["api", "--service", "api", "--host", "api.example.com:80"], "give the host without a port"),
      (["api", "--service", "api", "--path-prefix", "api"], "--path-prefix: \"api\" does not start with \"/\""),
      (["api", "--service", "api", "--path-prefix", "/a b"], "--path-prefix: contains a space"),
      (["api", "--service", "api", "--path-prefix", "/a/../b"], "--path-prefix: has a \".\" or \"..\" segment"),
      (["api", "--service", "api", "--strip-prefix"], "--strip-prefix: the path prefix \"/\" has nothing to strip"),
      (["api"], "--service"),
    ])
  func routeRefusals(arguments: [String], expected: String) {
    let message = refusal(RouteSetCommand.self, arguments)
    #expect(message?.contains(expected) == true, "\(arguments): \(message ?? "accepted")")
  }

  @Test("a hostile host is named escaped, never raw")
  func hostileHost() {
    let message = refusal(RouteSetCommand.self, ["api", "--service", "api", "--host", "a\n\u{1B}[31m.example.com"])
    #expect(message?.contains("--host \"a\\n\\u{1B}[31m.example.com\"") == true, "\(message ?? "accepted")")
    #expect(message?.contains("\u{1B}") == false)
  }

  // MARK: - service set: validation and merging without etcd

  @Test(
    "service set refuses bad flags naming the flag",
    arguments: [
      (["api"], "nothing to change"),
      (["a/b", "--balance", "leastconn"], "NAME:"),
      (["api", "--balance", "fastest"], "--balance: \"fastest\" is not one of roundrobin, leastconn, random, source"),
      (["api", "--mode", "udp"], "--mode: \"udp\" is not one of http, tcp"),
      (["api", "--check-interval", "2h"], "--check-interval: \"2h\" is not a duration"),
      (["api", "--timeout-server=-1s"], "--timeout-server: \"-1s\" is not a duration"),
      (["api", "--timeout-server", "2h"], "--timeout-server:"),
      (["api", "--check-path", "/healthz", "--check-tcp"], "--check-path and --check-tcp exclude each other"),
      (["api", "--check-path", "no-slash"], "--check-path:"),
      (["api", "--check-interval", "1s", "--check-timeout", "2s"], "--check-timeout: 2s is longer than"),
      (["api", "--rise", "0"], "--rise: 0 is outside 1–100"),
      (["api", "--fall", "101"], "--fall: 101 is outside 1–100"),
      (["api", "--retries", "11"], "--retries: 11 is outside 0–10"),
      (["api", "--maxconn", "0"], "--maxconn: 0 is outside 1–100000"),
      (["api", "--mode", "tcp", "--port", "70000"], "--port: 70000 is outside 1–65535"),
      (["api", "--mode", "http", "--port", "80"], "--port: only a tcp service has a port"),
      (["api", "--mode", "tcp", "--reset"], "--mode tcp: a tcp service needs a port"),
      (["api", "--unset", "colour"], "--unset: \"colour\" is not one of"),
      (["api", "--unset", "maxconn", "--maxconn", "5"], "--unset maxconn and --maxconn exclude each other"),
      (["api", "--unset", "check", "--check-tcp"], "--unset check and the --check-*"),
    ])
  func serviceRefusals(arguments: [String], expected: String) {
    let message = refusal(ServiceSetCommand.self, arguments)
    #expect(message?.contains(expected) == true, "\(arguments): \(message ?? "accepted")")
  }

  @Test("flags that settings in etcd may complete are left to the run: a port, tcp mode without a port")
  func lenientFlags() {
    #expect(refusal(ServiceSetCommand.self, ["redis", "--port", "6380"]) == nil)
    #expect(refusal(ServiceSetCommand.self, ["redis", "--mode", "tcp"]) == nil)
    #expect(refusal(ServiceSetCommand.self, ["api", "--timeout-server", "30"]) == nil)
  }

  func settings(_ json: String, service: String = "api") throws -> ServiceSettings {
    try ServiceSettings.parse(key: Array(("/switchyard/services/" + service).utf8), value: Array(json.utf8))
  }

  func merge(_ arguments: [String], into json: String?) throws -> String {
    let current = try json.map { try settings($0) }
    let merged = try ServiceSetCommand.parse(["api"] + arguments).merged(into: current)
    return String(decoding: merged.encoded(), as: UTF8.self)
  }

  @Test("service set changes only what the flags give")
  func mergeKeepsTheRest() throws {
    #expect(try merge(["--balance", "leastconn"], into: nil) == #"{"balance":"leastconn"}"#)
    #expect(
      try merge(["--timeout-server", "5s"], into: #"{"balance":"leastconn"}"#)
        == #"{"balance":"leastconn","timeout_server":"5s"}"#)
    #expect(
      try merge(["--rise", "3"], into: #"{"check":{"interval":"2s","type":"tcp"}}"#)
        == #"{"check":{"interval":"2s","rise":3,"type":"tcp"}}"#)
    #expect(
      try merge(["--check-path", "/healthz"], into: #"{"check":{"interval":"2s","type":"tcp"}}"#)
        == #"{"check":{"interval":"2s","path":"/healthz","type":"http"}}"#)
    #expect(
      try merge(["--check-tcp"], into: #"{"check":{"path":"/healthz","type":"http"}}"#)
        == #"{"check":{"type":"tcp"}}"#)
    #expect(try merge(["--timeout-connect", "2"], into: nil) == #"{"timeout_connect":"2s"}"#)
    #expect(try merge(["--reset", "--retries", "1"], into: #"{"balance":"source","maxconn":9}"#) == #"{"retries":1}"#)
    #expect(
      try merge(["--unset", "maxconn", "--unset", "check-path"], into: #"{"check":{"path":"/h"},"maxconn":9}"#) == "{}")
  }

  @Test("tcp needs a port, given or in etcd; http drops it")
  func modeAndPort() throws {
    #expect(
      try merge(["--mode", "tcp", "--port", "6379"], into: nil) == #"{"mode":"tcp","port":6379}"#)
    #expect(try merge(["--port", "6380"], into: #"{"mode":"tcp","port":6379}"#) == #"{"mode":"tcp","port":6380}"#)
    #expect(try merge(["--mode", "tcp"], into: #"{"mode":"tcp","port":6379}"#) == #"{"mode":"tcp","port":6379}"#)
    #expect(
      try merge(["--mode", "http"], into: #"{"balance":"source","mode":"tcp","port":6379}"#) == #"{"balance":"source"}"#
    )
    #expect(throws: ValidationError.self) { try merge(["--mode", "tcp"], into: nil) }
    #expect(throws: ValidationError.self) { try merge(["--port", "6379"], into: #"{"balance":"source"}"#) }
  }

  @Test("a merged value that clashes with one in etcd names both flags")
  func clashWithEtcd() throws {
    do {
      _ = try merge(["--check-interval", "500ms"], into: #"{"check":{"interval":"2s","timeout":"1s"}}"#)
      Issue.record("accepted a check timeout longer than the interval")
    } catch let error as ValidationError {
      #expect(error.message.contains("--check-timeout: 1s is longer than check.interval 500ms"), "\(error.message)")
      #expect(error.message.contains("the value in etcd"), "\(error.message)")
    }
  }

  // MARK: - Listings without etcd

  func entry(_ key: String, _ value: String, revision: Int64 = 1) -> KeyValue {
    KeyValue(key: Array(key.utf8), value: Array(value.utf8), modRevision: revision)
  }

  @Test("route ls: sorted by name, the shadowed route named, invalid entries escaped")
  func routeListing() throws {
    let listing = RouteListing(
      revision: 9,
      routeEntries: [
        entry("/switchyard/routes/zz", #"{"service":"api"}"#),
        entry("/switchyard/routes/web", #"{"service":"backend"}"#),
        entry(
          "/switchyard/routes/api", #"{"hosts":["a.example.com","b.example.com"],"path_prefix":"/v1","service":"api"}"#),
        entry("/switchyard/routes/api2", #"{"host":"a.example.com","path_prefix":"/v1/","service":"api"}"#),
        entry("/switchyard/routes/db", #"{"service":"redis"}"#),
        entry("/switchyard/routes/bad\n\u{1B}[2J", #"{"service":"api"}"#),
        entry("/switchyard/routes/typo", #"{"service":"api","path_prefx\u001b":"/"}"#),
      ],
      registrationEntries: [
        entry("/services/api/a1", #"{"address":"127.0.0.1","port":8080}"#),
        entry("/services/api/a2", #"{"address":"127.0.0.1","port":8081}"#),
        entry("/services/backend/b1", "not json"),
      ],
      settingsEntries: [entry("/switchyard/services/redis", #"{"mode":"tcp","port":6379}"#)]
    )
    let lines = listing.lines
    let text = lines.joined(separator: "\n")
    #expect(listing.routes.map(\.name.rawValue) == ["api", "api2", "db", "web", "zz"])
    let status = Dictionary(listing.document.routes.map { ($0.name, $0.status) }, uniquingKeysWith: { a, _ in a })
    #expect(status["api"] == "ok")
    #expect(status["api2"] == "shadowed by api")
    #expect(status["web"] == "503: no instances")
    #expect(status["zz"] == "shadowed by web")
    #expect(status["db"] == "unused: redis is a tcp service")
    #expect(listing.document.routes.first { $0.name == "api" }?.instances == 2)
    #expect(text.contains(#"route "api2" claims a.example.com /v1, which route "api" holds"#), "\(text)")
    #expect(text.contains(#"/switchyard/routes/bad\n\u{1B}[2J: "#), "\(text)")
    #expect(text.contains(#"path_prefx\u{1B}"#), "\(text)")
    #expect(!text.contains("\u{1B}"))
    #expect(lines.allSatisfy { !$0.contains("\n") })
    #expect(lines[1].hasPrefix("NAME  HOSTS"))
    #expect(lines.contains { $0.hasPrefix("api ") && $0.contains("a.example.com,b.example.com") && $0.contains("/v1") })
  }

  @Test("a route that loses only some of its hosts is partly shadowed")
  func partlyShadowed() {
    let listing = RouteListing(
      revision: 1,
      routeEntries: [
        entry("/switchyard/routes/a", #"{"host":"x.example.com","service":"api"}"#),
        entry("/switchyard/routes/b", #"{"hosts":["x.example.com","y.example.com"],"service":"api"}"#),
      ],
      registrationEntries: [entry("/services/api/a1", #"{"address":"127.0.0.1","port":8080}"#)],
      settingsEntries: [])
    #expect(listing.status(of: listing.routes[1]) == "partly shadowed by a")
  }

  @Test("service ls: services with registrations or settings, effective balance, invalid settings")
  func serviceListing() throws {
    let listing = ServiceListing(
      revision: 4,
      registrationEntries: [
        entry("/services/api/a1", #"{"address":"127.0.0.1","port":8080}"#),
        entry("/services/backend/b1", #"{"address":"127.0.0.1","port":8081}"#),
        entry("/services/backend/b2", #"{"address":"127.0.0.1","port":8082}"#),
      ],
      settingsEntries: [
        entry("/switchyard/services/api", #"{"balance":"leastconn"}"#),
        entry("/switchyard/services/redis", #"{"mode":"tcp","port":6379}"#),
        entry("/switchyard/services/broken", #"{"balance":"fast"}"#),
      ],
      node: try nodeDefaults())
    let items = Dictionary(listing.items.map { ($0.name, $0) }, uniquingKeysWith: { a, _ in a })
    #expect(listing.items.map(\.name) == ["api", "backend", "broken", "redis"])
    #expect(items["api"]?.balance == "leastconn" && items["api"]?.instances == 1 && items["api"]?.settings == "etcd")
    #expect(items["backend"]?.balance == "roundrobin" && items["backend"]?.settings == "defaults")
    #expect(items["backend"]?.instances == 2)
    #expect(items["redis"]?.mode == "tcp" && items["redis"]?.port == 6379 && items["redis"]?.instances == 0)
    #expect(items["broken"]?.settings == "invalid")
    #expect(listing.lines.joined(separator: "\n").contains(#"/switchyard/services/broken: field "balance""#))
  }

  @Test("service show fills in the node defaults and says where each value comes from")
  func serviceReport() throws {
    let report = ServiceReport(
      service: try ServiceName(validating: "api"), revision: 3,
      settingsEntry: entry("/switchyard/services/api", #"{"check":{"rise":3},"timeout_server":"5s"}"#),
      registrationEntries: [
        entry("/services/api/a1", #"{"address":"127.0.0.1","port":8080,"check":{"path":"/healthz"}}"#)
      ],
      node: try nodeDefaults())
    let values = Dictionary(report.values.map { ($0.id, $0) }, uniquingKeysWith: { a, _ in a })
    let defaults = NodeSettings.HealthCheck()
    #expect(values["mode"]?.value == "http" && values["mode"]?.source == "default")
    #expect(values["balance"]?.value == "roundrobin")
    #expect(values["checkPath"]?.value == "/healthz" && values["checkPath"]?.source == "registrations")
    #expect(values["checkInterval"]?.value == ServiceSettings.durationText(defaults.interval))
    #expect(values["rise"]?.value == "3" && values["rise"]?.source == "etcd")
    #expect(values["timeoutServer"]?.value == "5s" && values["timeoutServer"]?.source == "etcd")
    #expect(values["timeoutConnect"]?.value == ServiceSettings.durationText(defaults.timeout))
    #expect(values["retries"]?.value == "3" && values["maxconn"]?.value == "none")
    #expect(report.lines.contains { $0.contains(#"{"check":{"rise":3,"type":"http"},"timeout_server":"5s"}"#) })
  }

  // MARK: - status

  @Test("status shows each node's services, routes and route problems from /state, escaped")
  func statusRouting() throws {
    var snapshot = NodeSnapshot(
      node: "lb1", ready: true, notReadyReasons: [], appliedRevision: 7, haproxyPID: 1, haproxyRunning: true,
      haproxyAdopted: false, etcdConnected: true, watchSilentSeconds: nil, etcdWatchEndpoint: nil, reloads: 0,
      haproxyRestarts: 0, lastError: nil,
      services: [
        .init(
          name: "api", backend: "svc_api", checkPath: "/",
          servers: [
            .init(name: "a1", address: "127.0.0.1:1", weight: 100, adminState: "ready", health: "up", registered: true),
            .init(
              name: "a0", address: "127.0.0.1:2", weight: 100, adminState: "drain", health: "up", registered: false),
          ], mode: "http", balance: "leastconn", lingering: false),
        .init(
          name: "redis", backend: "svc_redis", checkPath: "/", servers: [], mode: "tcp", port: 6379, balance: "source"),
      ],
      invalidEntries: [],
      routes: [
        .init(
          name: "api", service: "api", hosts: ["api.example.com"], pathPrefix: "/v1", stripPrefix: true,
          target: "svc_api"),
        .init(name: "zz", service: "api", hosts: [], pathPrefix: "/", stripPrefix: false, target: "shadowed"),
      ],
      routeCount: 3,
      routeProblems: ["route \"zz\" claims any host /\n\u{1B}[2J"])
    var lines = StatusCommand.routingLines(snapshot)
    let text = lines.joined(separator: "\n")
    #expect(
      lines.contains { $0.hasPrefix("  api ") && $0.contains("http") && $0.contains("leastconn") && $0.hasSuffix(" 1") }
    )
    #expect(
      lines.contains { $0.hasPrefix("  redis ") && $0.contains("tcp") && $0.contains("6379") && $0.hasSuffix(" 0") })
    #expect(text.contains("routes: 3 (the first 2 by name)"))
    #expect(
      lines.contains {
        $0.contains("api.example.com") && $0.contains("/v1 (strip)") && $0.contains("-> api") && $0.hasSuffix("svc_api")
      })
    #expect(lines.contains { $0.hasPrefix("    zz ") && $0.contains("*") && $0.hasSuffix("shadowed") })
    #expect(text.contains(#"route problem: route \"zz\" claims any host /\n\u{1B}[2J"#), "\(text)")
    #expect(!text.contains("\u{1B}"))

    // A controller that predates routes and settings reports neither: nothing is added.
    snapshot.routes = nil
    snapshot.routeCount = nil
    snapshot.routeProblems = nil
    snapshot.services = snapshot.services.map { service in
      var old = service
      old.mode = nil
      old.port = nil
      old.balance = nil
      old.lingering = nil
      return old
    }
    lines = StatusCommand.routingLines(snapshot)
    #expect(lines.isEmpty, "\(lines)")
  }
}
