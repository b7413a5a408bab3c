import Foundation
import SwitchyardModel
import SwitchyardReconcile
import Testing

/// Whatever sits under `/switchyard/routes/` and `/switchyard/services/`, nothing reaches HAProxy's routes
/// map or configuration but validated tokens: the routes' version of ``InjectionTests``.
///
/// A map line is `key value`: a line break would add a line (`add map` takes its payload line by line), a
/// space or tab would end the key early, `;` ends a Runtime API command, and a key that starts with `#` is
/// a comment in the map file. None of them may come through, whatever the input.
@Suite struct RouteInjectionTests {
  static let root = Route.root

  /// Route values that must be refused. Every one carries `evil` (or `EVIL`) where a careless parser would
  /// copy it into a key or value, so that a line taken from it shows.
  static let hostileValues: [String] = [
    // Map syntax and line breaks in hosts.
    #"{"service":"web","hosts":["a.example.com\nadd map @1 /evil svc_evil:0"]}"#,
    #"{"service":"web","hosts":["a.example.com\r\nevil.example.com"]}"#,
    #"{"service":"web","hosts":["a.example.com evil.example.com"]}"#,
    #"{"service":"web","hosts":["a.example.com\tevil"]}"#,
    #"{"service":"web","hosts":["a.example.com;evil"]}"#,
    ##"{"service":"web","hosts":["#evil.example.com"]}"##,
    #"{"service":"web","hosts":["\"evil\".example.com"]}"#,
    #"{"service":"web","hosts":["'evil'.example.com"]}"#,
    #"{"service":"web","hosts":["evil\\.example.com"]}"#,
    #"{"service":"web","hosts":["evil.example.com:80"]}"#,
    #"{"service":"web","hosts":["evil.example.com/x"]}"#,
    #"{"service":"web","hosts":["évil.example.com"]}"#,
    #"{"service":"web","hosts":["evil.example.com\u0000"]}"#,
    #"{"service":"web","hosts":["evil.example.com\u2028x"]}"#,
    #"{"service":"web","hosts":["*"]}"#,
    #"{"service":"web","hosts":["*.com"]}"#,
    #"{"service":"web","hosts":["*evil.example.com"]}"#,
    #"{"service":"web","hosts":["evil.*.example.com"]}"#,
    #"{"service":"web","hosts":["-evil.example.com"]}"#,
    #"{"service":"web","hosts":["evil..example.com"]}"#,
    #"{"service":"web","hosts":[".evil.example.com"]}"#,
    #"{"service":"web","hosts":[""]}"#,
    #"{"service":"web","hosts":"evil.example.com"}"#,
    #"{"service":"web","hosts":[1]}"#,
    #"{"service":"web","hosts":[["evil.example.com"]]}"#,
    #"{"service":"web","host":"a.example.com","hosts":["evil.example.com"]}"#,
    #"{"service":"web","host":"evil example.com"}"#,
    // Map syntax and line breaks in path prefixes.
    #"{"service":"web","path_prefix":"/evil\nadd map @1 /x svc_evil:0"}"#,
    #"{"service":"web","path_prefix":"/evil\r\n"}"#,
    #"{"service":"web","path_prefix":"/evil svc_evil:0"}"#,
    #"{"service":"web","path_prefix":"/evil\tx"}"#,
    #"{"service":"web","path_prefix":"/evil;show map"}"#,
    #"{"service":"web","path_prefix":"/evil#x"}"#,
    ##"{"service":"web","path_prefix":"#evil"}"##,
    #"{"service":"web","path_prefix":"/\"evil\""}"#,
    #"{"service":"web","path_prefix":"/'evil'"}"#,
    #"{"service":"web","path_prefix":"/evil\\x"}"#,
    #"{"service":"web","path_prefix":"/evil?x=1"}"#,
    #"{"service":"web","path_prefix":"/evil%zz"}"#,
    #"{"service":"web","path_prefix":"/evil/../x"}"#,
    #"{"service":"web","path_prefix":"/evil/%2E%2e"}"#,
    #"{"service":"web","path_prefix":"//evil"}"#,
    #"{"service":"web","path_prefix":"evil"}"#,
    #"{"service":"web","path_prefix":""}"#,
    #"{"service":"web","path_prefix":"/évil"}"#,
    #"{"service":"web","path_prefix":"／evil"}"#,
    #"{"service":"web","path_prefix":"/evil\u0000"}"#,
    #"{"service":"web","path_prefix":["/evil"]}"#,
    // Services, flags, unknown fields.
    #"{"service":"web\nbackend evil"}"#,
    #"{"service":"web evil"}"#,
    #"{"service":"svc_web;evil"}"#,
    #"{"service":"../evil"}"#,
    #"{"service":""}"#,
    #"{"service":7}"#,
    #"{"hosts":["evil.example.com"]}"#,
    #"{"service":"web","strip_prefix":"evil"}"#,
    #"{"service":"web","strip_prefix":1}"#,
    #"{"service":"web","evil":1}"#,
    #"{"service":"web","path_prefx":"/evil"}"#,
    #"{"service":"web","hosts":["evil.example.com"],"Service":"x"}"#,
    #"{"service":"web","evil\nadd map":1}"#,
    // Not a JSON object.
    #"{"service":"web","hosts":["evil.example.com"]"#,
    #"evil"#,
    #"null"#,
    #"[]"#,
    #"["evil"]"#,
    #""evil""#,
    #""#,
    #"{"service":"web"} evil"#,
  ]

  /// Hostile values that are not templates: overlong, too many, not UTF-8.
  static var generatedHostileValues: [[UInt8]] {
    let label = String(repeating: "e", count: 63)
    let longHost = ([label, label, label, String(repeating: "v", count: 62)]).joined(separator: ".")  // 254 bytes
    let longLabel = String(repeating: "e", count: 64) + ".example.com"
    let longPath = "/" + String(repeating: "e", count: 256)  // 257 bytes
    let deepPath = String(repeating: "/e", count: 17)
    let manyHosts = (0...32).map { "\"h\($0).example.com\"" }.joined(separator: ",")
    let texts = [
      #"{"service":"web","hosts":[""# + longHost + #""]}"#,
      #"{"service":"web","hosts":[""# + longLabel + #""]}"#,
      #"{"service":"web","path_prefix":""# + longPath + #""}"#,
      #"{"service":"web","path_prefix":""# + deepPath + #""}"#,
      #"{"service":"web","hosts":["# + manyHosts + "]}",
      #"{"service":"web","evil":""# + String(repeating: "A", count: 5000) + #""}"#,
    ]
    var values = texts.map { Array($0.utf8) }
    // Not UTF-8: a lone continuation byte, and an overlong encoding of "\n".
    values.append(Array(#"{"service":"web","hosts":["evil"#.utf8) + [0x80] + Array(#".example.com"]}"#.utf8))
    values.append(Array(#"{"service":"web","path_prefix":"/evil"#.utf8) + [0xC0, 0x8A] + Array(#""}"#.utf8))
    values.append([0xFF, 0xFE] + Array("evil".utf8))
    return values
  }

  /// Keys under the routes' root that name no valid route, each with a valid value.
  static var hostileKeys: [[UInt8]] {
    let texts = [
      "evil route", "evil\nadd map @1 /x svc_x:0", "evil\r", "evil;x", "#evil", "evil\"x", "evil'x", "evil\\x",
      "evil/extra", "", "evil\tx", "évil", String(repeating: "e", count: 129),
    ]
    return texts.map { Array((root + $0).utf8) } + [
      Array((root + "evil").utf8) + [0xFF],
      Array(root.utf8) + [0xC3, 0x28],
    ]
  }

  static let validValue = Array(#"{"service":"web","hosts":["ok.example.com"],"path_prefix":"/ok"}"#.utf8)

  /// Values that parse: every edge of the rules, each of which must still give clean map lines.
  static let edgeValues: [String] = [
    #"{"service":"web","hosts":["API.Example.COM"]}"#,
    #"{"service":"web","host":"*.Tenants.Example.com","path_prefix":"/T/","strip_prefix":true}"#,
    #"{"service":"web","hosts":["xn--bcher-kva.example","1.2.3.4","a-b.c-d.example"]}"#,
    #"{"service":"web","path_prefix":"/a-._~!$&()*+,=:@%41/b"}"#,
    #"{"service":"web","path_prefix":"/e/e/e/e/e/e/e/e/e/e/e/e/e/e/e/e","strip_prefix":true}"#,
    #"{"service":"web","path_prefix":"/","strip_prefix":true}"#,
    #"{"service":"ghost","hosts":["ghost.example.com"]}"#,
    #"{"service":"a-b_c.d","path_prefix":"/abc"}"#,
    // Percent-encoded line break and space: three printable bytes each in the key, as `path` gives them.
    #"{"service":"web","path_prefix":"/nl%0a%0D%20","strip_prefix":true}"#,
  ]

  /// Whether one map line is `key value` with nothing that could end the key, the line or the command early.
  static func lineProblem(_ line: Substring) -> String? {
    let words = line.split(separator: " ", omittingEmptySubsequences: false)
    guard words.count == 2 else { return "has \(words.count) words" }
    let (key, value) = (words[0], words[1])
    if key.hasPrefix("#") { return "key starts with #" }
    for word in words {
      guard !word.isEmpty else { return "has an empty word" }
      for scalar in word.unicodeScalars where !(0x21...0x7E).contains(scalar.value) || scalar == ";" {
        return "contains U+\(String(scalar.value, radix: 16))"
      }
      if word.contains("\\") || word.contains("\"") || word.contains("'") { return "contains a quote or backslash" }
    }
    guard value.wholeMatch(of: /(svc_[A-Za-z0-9._-]+|sy_unavailable):[0-9]+/) != nil else {
      return "value is not backend:strip"
    }
    guard key.wholeMatch(of: /(\*\.)?[a-z0-9.-]*\/([A-Za-z0-9._~!$&()*+,=:@%-]+\/)*/) != nil else {
      return "key is not host/path/"
    }
    return nil
  }

  static func expectCleanMap(_ table: RouteTable, sourceLocation: SourceLocation = #_sourceLocation) {
    let text = table.mapText
    #expect(text.isEmpty || text.hasSuffix("\n"), sourceLocation: sourceLocation)
    #expect(!text.contains("\r") && !text.contains("\n\n"), sourceLocation: sourceLocation)
    #expect(!text.contains("evil") && !text.contains("EVIL"), "\(text)", sourceLocation: sourceLocation)
    let lines = text.split(separator: "\n", omittingEmptySubsequences: false).dropLast()
    #expect(lines.count == table.entries.count, sourceLocation: sourceLocation)
    for line in lines {
      #expect(
        lineProblem(line) == nil, "map line \(line.debugDescription): \(lineProblem(line) ?? "")",
        sourceLocation: sourceLocation)
    }
  }

  static let web = try! ServiceName(validating: "web")

  static func table(_ routes: [Route]) -> RouteTable {
    RouteTable(routes: routes, httpBackends: [.backend: "svc_backend", web: "svc_web"], tcpServices: [])
  }

  @Test func everyHostileRouteIsRefusedWithAnErrorThatNamesItsKey() {
    let values = Self.hostileValues.map { Array($0.utf8) } + Self.generatedHostileValues
    for (index, value) in values.enumerated() {
      let key = Array("\(Self.root)evil-\(index)".utf8)
      do {
        let route = try Route.parse(key: key, value: value, modRevision: 1)
        Issue.record("accepted \(String(decoding: value, as: UTF8.self).debugDescription) as \(route)")
      } catch {
        #expect(error.key == "\(Self.root)evil-\(index)")
        // The message is one line of printable text, whatever the input held.
        let text = error.description
        #expect(!text.contains("\n") && !text.contains("\r") && !text.contains("\u{0}"), "\(text.debugDescription)")
      }
    }
    for key in Self.hostileKeys {
      #expect(throws: RegistrationError.self, "\(String(decoding: key, as: UTF8.self).debugDescription)") {
        try Route.parse(key: key, value: Self.validValue)
      }
    }
  }

  @Test func onlyValidRoutesReachTheMapAndEveryLineIsClean() {
    var entries: [(key: [UInt8], value: [UInt8])] = []
    for (index, value) in (Self.hostileValues.map { Array($0.utf8) } + Self.generatedHostileValues).enumerated() {
      entries.append((Array("\(Self.root)evil-\(index)".utf8), value))
    }
    for key in Self.hostileKeys { entries.append((key, Self.validValue)) }
    for (index, value) in Self.edgeValues.enumerated() {
      entries.append((Array("\(Self.root)edge-\(index)".utf8), Array(value.utf8)))
    }
    let routes = entries.compactMap { try? Route.parse(key: $0.key, value: $0.value, modRevision: 1) }
    #expect(routes.map(\.name.rawValue).sorted() == Self.edgeValues.indices.map { "edge-\($0)" }.sorted())
    let table = Self.table(routes)
    Self.expectCleanMap(table)
    #expect(table.conflicts.isEmpty, "\(table.conflicts)")
    // Upper case is lowered, a trailing "/" dropped, a wildcard kept as one leading label.
    let keys = Set(table.entries.map(\.key))
    for expected in [
      "api.example.com/", "*.tenants.example.com/T/", "1.2.3.4/", "/a-._~!$&()*+,=:@%41/b/",
      "/e/e/e/e/e/e/e/e/e/e/e/e/e/e/e/e/", "/", "ghost.example.com/", "/nl%0a%0D%20/",
    ] {
      #expect(keys.contains(expected), "\(expected) missing from \(keys.sorted())")
    }
    #expect(table.entries.first { $0.key == "ghost.example.com/" }?.backend == RouteTable.unavailableBackend)
    #expect(table.entries.first { $0.key == "*.tenants.example.com/T/" }?.value == "svc_web:1")
    #expect(table.entries.first { $0.key == "/e/e/e/e/e/e/e/e/e/e/e/e/e/e/e/e/" }?.value == "svc_web:16")
  }

  /// A hostile value written over a valid route leaves that route in force, and its map line as it was;
  /// a hostile key beside it is listed and changes nothing.
  @Test func aHostileValueOverAValidRouteLeavesItInForce() {
    typealias Change = RegistrationMirror.Change
    let key = Array("\(Self.root)shop".utf8)
    let valid = Array(#"{"service":"web","hosts":["shop.example.com"],"path_prefix":"/shop","strip_prefix":true}"#.utf8)
    var mirror = RegistrationMirror(revision: 1, entries: [(key, valid, 1)])
    let before = Self.table(mirror.routes)
    #expect(before.mapText == "shop.example.com/shop/ svc_web:1\n")
    var revision: Int64 = 1
    let hostile = Self.hostileValues.map { Array($0.utf8) } + Self.generatedHostileValues
    for value in hostile {
      revision += 1
      mirror.apply([Change(key: key, value: value, modRevision: revision)])
      #expect(mirror.routes.map(\.name.rawValue) == ["shop"], "\(String(decoding: value, as: UTF8.self))")
      #expect(Self.table(mirror.routes) == before)
      #expect(mirror.invalid.map(\.key) == ["\(Self.root)shop"])
    }
    for hostileKey in Self.hostileKeys {
      revision += 1
      mirror.apply([Change(key: hostileKey, value: Self.validValue, modRevision: revision)])
    }
    #expect(Self.table(mirror.routes) == before)
    #expect(mirror.invalid.count == 1 + Self.hostileKeys.count)
    // The valid value again clears the report; a delete removes the route.
    mirror.apply([Change(key: key, value: valid, modRevision: revision + 1)])
    #expect(mirror.invalid.count == Self.hostileKeys.count)
    mirror.apply([Change(key: key, value: nil, modRevision: revision + 2)])
    #expect(mirror.routes.isEmpty)
  }

  /// Settings values that must be refused, each with the field its error names.
  static let hostileSettings: [(value: String, field: String?)] = [
    (#"{"mode":"tcp","port":0}"#, "port"),
    (#"{"mode":"tcp","port":70000}"#, "port"),
    (#"{"mode":"tcp","port":-1}"#, "port"),
    (#"{"mode":"tcp","port":"8080 evil"}"#, "port"),
    (#"{"mode":"tcp","port":80.5}"#, "port"),
    (#"{"mode":"tcp"}"#, "port"),
    (#"{"port":8080}"#, "port"),
    (#"{"mode":"evil"}"#, "mode"),
    (#"{"mode":"tcp\nevil","port":8080}"#, "mode"),
    (#"{"balance":"evil"}"#, "balance"),
    (#"{"balance":"roundrobin\n  server evil 6.6.6.6:80"}"#, "balance"),
    (#"{"balance":"uri"}"#, "balance"),
    (#"{"balance":"leastconn evil"}"#, "balance"),
    (#"{"check":{"path":"/healthz\nevil"}}"#, "check.path"),
    (#"{"check":{"path":"/healthz HTTP/1.0\r\nX-Evil: 1"}}"#, "check.path"),
    (#"{"check":{"path":"/healthz#evil"}}"#, "check.path"),
    (#"{"check":{"path":"/\"evil\""}}"#, "check.path"),
    (#"{"check":{"path":"evil"}}"#, "check.path"),
    (#"{"check":{"type":"tcp","path":"/evil"}}"#, "check.path"),
    (#"{"check":{"type":"evil"}}"#, "check.type"),
    (#"{"check":{"interval":"1 s"}}"#, "check.interval"),
    (#"{"check":{"interval":"evil"}}"#, "check.interval"),
    (#"{"check":{"interval":"0ms"}}"#, "check.interval"),
    (#"{"check":{"interval":"2h"}}"#, "check.interval"),
    (#"{"check":{"interval":1}}"#, "check.interval"),
    (#"{"check":{"interval":"1s","timeout":"2s"}}"#, "check.timeout"),
    (#"{"check":{"rise":0}}"#, "check.rise"),
    (#"{"check":{"fall":101}}"#, "check.fall"),
    (#"{"check":{"evil":1}}"#, "check.evil"),
    (#"{"check":"tcp"}"#, "check"),
    (#"{"timeout_server":"1s\n  server evil 6.6.6.6:80"}"#, "timeout_server"),
    (#"{"timeout_connect":"-1s"}"#, "timeout_connect"),
    (#"{"retries":11}"#, "retries"),
    (#"{"maxconn":0}"#, "maxconn"),
    (#"{"maxconn":"100 evil"}"#, "maxconn"),
    (#"{"evil":1}"#, "evil"),
    (#"{"balance":"leastconn""#, nil),
    (#"evil"#, nil),
    (#"[]"#, nil),
  ]

  @Test func hostileServiceSettingsAreRefusedNamingTheField() {
    let key = Array("\(ServiceSettings.root)web".utf8)
    for (value, field) in Self.hostileSettings {
      do {
        let settings = try ServiceSettings.parse(key: key, value: Array(value.utf8))
        Issue.record("accepted \(value.debugDescription) as \(settings)")
      } catch {
        #expect(error.field == field, "\(value.debugDescription): \(error)")
        #expect(!error.description.contains("\n"), "\(error.description.debugDescription)")
      }
    }
    for badKey in [
      "web svc", "web\nbackend evil", "web;x", "#web", "web/extra", "", "svc\"x", String(repeating: "s", count: 200),
    ] {
      #expect(throws: RegistrationError.self) {
        try ServiceSettings.parse(key: Array((ServiceSettings.root + badKey).utf8), value: Array("{}".utf8))
      }
    }
    #expect(throws: RegistrationError.self) {
      try ServiceSettings.parse(key: Array(ServiceSettings.root.utf8) + [0xFF], value: Array("{}".utf8))
    }
    #expect(throws: RegistrationError.self) {
      try ServiceSettings.parse(key: key, value: Array(#"{"balance":"leastconn"}"#.utf8) + [0xC0])
    }
  }

  // MARK: - The rendered configuration

  static func service(_ name: String) -> ServiceName { try! ServiceName(validating: name) }

  static func settings(_ service: String, _ json: String) throws -> ServiceSettings {
    try ServiceSettings.parse(key: Array("\(ServiceSettings.root)\(service)".utf8), value: Array(json.utf8))
  }

  static func route(_ name: String, _ json: String) throws -> Route {
    try Route.parse(key: Array("\(Self.root)\(name)".utf8), value: Array(json.utf8))
  }

  /// Services, settings and routes of every kind, for one node whose listen port is 8001 and stats 8401.
  static func everyKind() throws -> DesiredState {
    // As a controller orders them: the default service first, then by name.
    let services = [
      "backend", "api", "cache", "clash", "db", "db-copy", "lonely", "random", "rr", "sticky", "web",
    ].map(Self.service)
    let instances = [
      Fixture.instance("b1", "127.0.0.1", 9001, checkPath: "/healthz"),
      Fixture.instance("b2", "::1", 9002, state: .drain),
      Fixture.instance("b3", "localhost", 9003, state: .maint),
      Fixture.instance("w1", "127.0.0.1", 9101, service: "web", weight: 256),
      Fixture.instance("w2", "10.0.0.2", 9102, service: "web", weight: 0),
      Fixture.instance("a1", "127.0.0.1", 9201, service: "api"),
      Fixture.instance("s1", "127.0.0.1", 9301, service: "sticky"),
      Fixture.instance("s2", "127.0.0.2", 9302, service: "sticky"),
      Fixture.instance("r1", "127.0.0.1", 9401, service: "rr", checkPath: "/status?full=1"),
      Fixture.instance("x1", "127.0.0.1", 9451, service: "random"),
      Fixture.instance("d1", "127.0.0.1", 5432, service: "db"),
      Fixture.instance("c1", "127.0.0.1", 6379, service: "cache"),
      Fixture.instance("k1", "127.0.0.1", 9501, service: "clash"),
      Fixture.instance("k2", "127.0.0.1", 9502, service: "db-copy"),
    ]
    let settings = [
      try Self.settings(
        "web",
        #"{"balance":"leastconn","check":{"type":"http","path":"/healthz","interval":"2s","timeout":"500ms","rise":3,"fall":4},"timeout_connect":"1s","timeout_server":"60s","retries":2,"maxconn":100}"#
      ),
      try Self.settings(
        "api", #"{"balance":"random","check":{"type":"tcp","interval":"250ms","timeout":"250ms"},"maxconn":1}"#),
      try Self.settings("sticky", #"{"balance":"source","retries":0,"timeout_server":"60m"}"#),
      try Self.settings("rr", #"{"balance":"roundrobin","timeout_connect":"100ms","maxconn":100000}"#),
      try Self.settings("random", #"{"balance":"random","check":{"path":"/p%20a?b=c&d=(e)"}}"#),
      try Self.settings(
        "db",
        #"{"mode":"tcp","port":15432,"balance":"leastconn","check":{"type":"tcp","interval":"5s"},"timeout_server":"60m"}"#
      ),
      try Self.settings("cache", #"{"mode":"tcp","port":16379,"maxconn":10,"retries":10}"#),
      // A port the node uses itself, and one another tcp service holds already: no listener, reported.
      try Self.settings("clash", #"{"mode":"tcp","port":8001,"check":{"type":"tcp"}}"#),
      try Self.settings("db-copy", #"{"mode":"tcp","port":15432}"#),
      try Self.settings("lonely", #"{"balance":"leastconn","check":{"type":"tcp"}}"#),
    ]
    let desired = DesiredState(
      revision: 3, services: services, instances: instances,
      settings: Dictionary(uniqueKeysWithValues: settings.map { ($0.service, $0) }))
    let routes = [
      try route("exact", #"{"service":"api","hosts":["api.example.com"]}"#),
      try route(
        "exact-prefix", #"{"service":"web","hosts":["api.example.com"],"path_prefix":"/v2","strip_prefix":true}"#),
      try route("wildcard", #"{"service":"web","hosts":["*.example.com"],"path_prefix":"/w","strip_prefix":true}"#),
      try route("many", #"{"service":"sticky","hosts":["a.example.org","B.Example.org","*.tenants.example.org"]}"#),
      try route("nohost", #"{"service":"rr","path_prefix":"/static"}"#),
      try route("deep", #"{"service":"random","path_prefix":"/e/e/e/e/e/e/e/e/e/e/e/e/e/e/e/e","strip_prefix":true}"#),
      try route("chars", #"{"service":"web","path_prefix":"/a-._~!$&()*+,=:@%41"}"#),
      try route("to-tcp", #"{"service":"db","hosts":["db.example.com"]}"#),
      try route("to-ghost", #"{"service":"ghost","hosts":["ghost.example.com"]}"#),
      try route("to-lonely", #"{"service":"lonely","path_prefix":"/lonely"}"#),
      try route("zz-conflict", #"{"service":"web","hosts":["api.example.com"]}"#),
    ]
    return desired.with(routes: desired.routeTable(routes))
  }

  static func nodeSettings(in directory: String) throws -> NodeSettings {
    try NodeSettings(
      nodeID: "lb1",
      listen: HostPort(parsing: "127.0.0.1:8001"),
      stats: HostPort(parsing: "127.0.0.1:8401"),
      adminSocketPath: "\(directory)/admin.sock",
      routesMapPath: "\(directory)/routes.map"
    )
  }

  @Test func routesNeverEnterTheConfigurationOnlyTheMap() throws {
    let settings = try Self.nodeSettings(in: "/var/lib/switchyard/lb1")
    let desired = try Self.everyKind()
    let rendered = ConfigRenderer.render(desired, settings: settings)
    let without = ConfigRenderer.render(desired.with(routes: .empty), settings: settings)
    // Route changes cost no reload: the configuration is the same with any routes.
    #expect(rendered.text == without.text && rendered.structure == without.structure)
    #expect(rendered.routesMap == desired.routes.mapText)
    Self.expectCleanMap(desired.routes)
    #expect(desired.routes.rejected.map(\.route.rawValue) == ["to-tcp"])
    #expect(desired.routes.conflicts.map(\.loser.rawValue) == ["zz-conflict"])
    #expect(desired.routes.entries.first { $0.route.rawValue == "to-ghost" }?.backend == RouteTable.unavailableBackend)
    #expect(desired.routes.entries.first { $0.route.rawValue == "to-lonely" }?.backend == "svc_lonely")
    // A port the node uses, or one taken by a service that sorts first, gets no listener.
    let tcp = desired.tcpListeners(node: settings)
    #expect(tcp.listeners.map(\.port) == [16379, 15432])
    #expect(tcp.conflicts.count == 2, "\(tcp.conflicts)")
    let binds = rendered.text.split(separator: "\n").filter { $0.hasPrefix("  bind ") }
    #expect(
      binds == ["  bind 127.0.0.1:8001", "  bind 127.0.0.1:8401", "  bind 127.0.0.1:16379", "  bind 127.0.0.1:15432"])
    // Every line is indented config or a section header; nothing from etcd starts a line or a comment.
    for line in rendered.text.split(separator: "\n") {
      #expect(!line.contains("\r") && !line.contains("\t") && !line.contains("\\n"), "\(line)")
      if line.hasPrefix("#") || line.hasPrefix("  #") {
        #expect(line.hasPrefix("# ") || line.hasPrefix("  # Routes: "))
      }
    }
  }

  /// What `haproxy -c` says about a configuration of every kind of route and setting, with its map file.
  @Test(.enabled(if: Self.haproxy != nil, "needs haproxy in PATH"))
  func aConfigurationOfEveryKindPassesHAProxysCheckWithoutWarnings() throws {
    let directory = FileManager.default.temporaryDirectory.appendingPathComponent(
      "sy-route-inj-\(UUID().uuidString.prefix(8))"
    ).path
    try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
    defer { try? FileManager.default.removeItem(atPath: directory) }
    let settings = try Self.nodeSettings(in: directory)
    let desired = try Self.everyKind()
    let rendered = ConfigRenderer.render(desired, settings: settings)
    #expect(!rendered.routesMap.isEmpty)
    try rendered.routesMap.write(toFile: settings.routesMapPath, atomically: true, encoding: .utf8)
    // The ACME challenge map the frontend always names; the controller keeps it, empty without a challenge.
    try "".write(toFile: settings.acmeMapPath, atomically: true, encoding: .utf8)
    let config = "\(directory)/haproxy.cfg"
    try rendered.text.write(toFile: config, atomically: true, encoding: .utf8)
    let (status, output) = try Self.run(Self.haproxy!, ["-c", "-f", config])
    #expect(status == 0, "haproxy -c failed:\n\(output)\n\(rendered.text)")
    #expect(output.contains("Configuration file is valid"), "\(output)")
    let complaints = output.split(separator: "\n").filter { $0.contains("[WARNING]") || $0.contains("[ALERT]") }
    #expect(complaints.isEmpty, "haproxy -c complained:\n\(complaints.joined(separator: "\n"))")
    // With no routes at all, the map file is empty and the configuration still passes.
    try "".write(toFile: settings.routesMapPath, atomically: true, encoding: .utf8)
    let (emptyStatus, emptyOutput) = try Self.run(Self.haproxy!, ["-c", "-f", config])
    #expect(emptyStatus == 0 && !emptyOutput.contains("[WARNING]"), "\(emptyOutput)")
  }

  /// `haproxy` from PATH or the usual sbin directories.
  static let haproxy: String? = {
    let path = ProcessInfo.processInfo.environment["PATH"] ?? ""
    let directories = path.split(separator: ":").map(String.init) + ["/usr/sbin", "/usr/local/sbin", "/sbin"]
    return directories.map { "\($0)/haproxy" }.first { FileManager.default.isExecutableFile(atPath: $0) }
  }()

  /// Runs `executable` to completion; its exit status and its output (stdout and stderr together).
  static func run(_ executable: String, _ arguments: [String]) throws -> (Int32, String) {
    let process = Process()
    process.executableURL = URL(fileURLWithPath: executable)
    process.arguments = arguments
    let pipe = Pipe()
    process.standardOutput = pipe
    process.standardError = pipe
    try process.run()
    let data = pipe.fileHandleForReading.readDataToEndOfFile()
    process.waitUntilExit()
    return (process.terminationStatus, String(decoding: data, as: UTF8.self))
  }
}
