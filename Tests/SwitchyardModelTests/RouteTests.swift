import Foundation
import SwitchyardModel
import Testing

@Suite("Routes and host patterns")
struct RouteTests: RefusedEntrySuite {
  static let key = "/switchyard/routes/r"

  static let api = try! ServiceName(validating: "api")

  /// Whether an error's description is one safe log line: no line breaks, NUL or other control characters.
  static func isOneSafeLine(_ error: RegistrationError) -> Bool {
    !error.description.unicodeScalars.contains { $0.properties.generalCategory == .control }
  }
  static let name = try! RouteName(validating: "api-v1")

  static func route(_ value: String, key: String = "/switchyard/routes/api-v1") throws(RegistrationError) -> Route {
    try Route.parse(key: Array(key.utf8), value: Array(value.utf8))
  }

  // MARK: - Names

  @Test(arguments: ["api", "a.b-c_D", String(repeating: "r", count: 128)])
  func acceptsRouteNames(text: String) throws {
    let name = try RouteName(validating: text)
    #expect(name.rawValue == text && name.description == text)
  }

  @Test(arguments: ["", ".", "..", "a/b", "a b", "a\nb", "a;b", "ü", String(repeating: "r", count: 129)])
  func refusesRouteNames(text: String) {
    #expect {
      _ = try RouteName(validating: text)
    } throws: { error in
      guard let error = error as? RegistrationError else { return false }
      return error.code == .invalidName && error.field == "name" && Self.isOneSafeLine(error)
    }
  }

  // MARK: - Host patterns

  @Test(
    arguments: [
      ("api.example.com", "api.example.com", HostPattern.Kind.exact),
      ("API.Example.COM", "api.example.com", .exact),
      ("*.example.com", "*.example.com", .wildcard),
      ("*.EXAMPLE.com", "*.example.com", .wildcard),
      ("localhost", "localhost", .exact),
      ("127.0.0.1", "127.0.0.1", .exact),
      ("xn--bcher-kva.example", "xn--bcher-kva.example", .exact),
      ("a-b.c0.example", "a-b.c0.example", .exact),
      (String(repeating: "a", count: 63) + ".com", String(repeating: "a", count: 63) + ".com", .exact),
      (longHost(253), longHost(253), .exact),
    ] as [(String, String, HostPattern.Kind)])
  func acceptsHostPatterns(input: String, text: String, kind: HostPattern.Kind) throws {
    let pattern = try HostPattern(validating: input)
    #expect(pattern.text == text && pattern.kind == kind && pattern.description == text)
  }

  /// A valid host of exactly `length` bytes: labels of 9 letters and a final shorter one.
  static func longHost(_ length: Int) -> String {
    var host = ""
    while host.utf8.count + 10 < length { host += "abcdefghi." }
    return host + String(repeating: "z", count: length - host.utf8.count)
  }

  @Test(
    arguments: [
      "", "*", "*.", "*.com", "**.example.com", "*a.example.com", "a.*.example.com", "example.*", ".example.com",
      "example.com.", "a..b", "-a.example.com", "a-.example.com", "a_b.example.com", "api.example.com:8080",
      "bücher.example", "a b.example.com", "a\nb.example.com", "*.example.com\nacl x hdr(host) -m reg .*",
      "a;b.example.com", "a#b.example.com", "a\"b.example.com", "a'b.example.com", "a\\b.example.com",
      "a\u{0}b.example.com", "a/b.example.com", "a%41.example.com", "a\tb.example.com", "a\u{202E}b.example.com",
      String(repeating: "a", count: 64) + ".com", longHost(254),
    ])
  func refusesHostPatterns(input: String) {
    do {
      let pattern = try HostPattern(validating: input)
      Issue.record("accepted \(pattern)")
    } catch {
      #expect(error.code == .invalidField && error.field == "hosts")
      #expect(Self.isOneSafeLine(error), "\(error)")
      #expect(input.count < 3 || !error.description.contains(input))
    }
  }

  @Test func refusesNonASCIIWithAPunycodeHint() {
    do {
      let pattern = try HostPattern(validating: "bücher.example")
      Issue.record("accepted \(pattern)")
    } catch {
      #expect(error.reason.contains("U+00FC") && error.reason.contains("punycode"), "\(error)")
    }
  }

  @Test(
    arguments: [
      ("api.example.com", "api.example.com", true),
      ("api.example.com", "x.api.example.com", false),
      ("api.example.com", "api.example.co", false),
      ("*.example.com", "a.example.com", true),
      ("*.example.com", "xn--bcher-kva.example.com", true),
      ("*.example.com", "a.b.example.com", false),
      ("*.example.com", "example.com", false),
      ("*.example.com", ".example.com", false),
      ("*.example.com", "aexample.com", false),
      ("*.example.com", "a.example.com.evil.net", false),
      ("127.0.0.1", "127.0.0.1", true),
    ])
  func matchesHosts(pattern: String, host: String, expected: Bool) throws {
    #expect(try HostPattern(validating: pattern).matches(host) == expected)
  }

  @Test func ordersExactBeforeWildcard() throws {
    let texts = ["*.b.example", "z.example", "*.a.example", "a.example"]
    let sorted = try texts.map { text throws(RegistrationError) in try HostPattern(validating: text) }.sorted()
    #expect(sorted.map(\.text) == ["a.example", "z.example", "*.a.example", "*.b.example"])
  }

  // MARK: - Path prefixes

  @Test(
    arguments: [
      ("/", "/", 0), ("/api", "/api", 1), ("/api/", "/api", 1), ("/api/v1", "/api/v1", 2),
      ("/a-b.c_d~e!f$g&h(i)j*k+l,m=n:o@p", "/a-b.c_d~e!f$g&h(i)j*k+l,m=n:o@p", 1), ("/%41%2f", "/%41%2f", 1),
      ("/...", "/...", 1), ("/.well-known", "/.well-known", 1),
      (String(repeating: "/a", count: 16), String(repeating: "/a", count: 16), 16),
    ])
  func acceptsPathPrefixes(input: String, normalized: String, segments: Int) throws {
    #expect(Route.pathPrefixProblem(input) == nil)
    #expect(Route.normalizedPathPrefix(input) == normalized)
    let route = try Route(name: Self.name, service: Self.api, pathPrefix: input)
    #expect(route.pathPrefix == normalized && route.pathSegments == segments)
  }

  @Test(
    arguments: [
      "", "api", "//", "/a//b", "/api//", "/a b", "/a\nadd map /etc/x 1", "/a\r", "/a\tb", "/a\u{0}", "/a;b", "/a#b",
      "/a'b", "/a\"b", "/a\\b", "/a?b", "/a<b>", "/a`b", "/a{b}", "/a|b", "/a^b", "/a[b]", "/é", "/a\u{7F}",
      "/%zz", "/%4", "/a%", "/.", "/..", "/a/../b", "/a/./b", "/%2e%2E", "/.%2e/x", "/%2E",
      "/" + String(repeating: "a", count: 256), String(repeating: "/a", count: 17),
    ])
  func refusesPathPrefixes(input: String) {
    let problem = Route.pathPrefixProblem(input)
    #expect(problem != nil)
    #expect(Route.normalizedPathPrefix(input) == nil)
    #expect(problem?.contains("\n") == false && problem?.contains("\u{0}") == false)
    do {
      _ = try Route(name: Self.name, service: Self.api, pathPrefix: input)
      Issue.record("accepted \(input)")
    } catch {
      #expect(error.code == .invalidField && error.field == "path_prefix" && Self.isOneSafeLine(error), "\(error)")
    }
  }

  @Test func namesTheBadCharacter() {
    #expect(Route.pathPrefixProblem("/a b")?.contains("a space") == true)
    #expect(Route.pathPrefixProblem("/a\nb")?.contains("a newline") == true)
    #expect(Route.pathPrefixProblem("/a;b")?.contains("\";\"") == true)
  }

  @Test(
    arguments: [
      ("/api", "/api", true), ("/api", "/api/", true), ("/api", "/api/x/y", true), ("/api", "/apix", false),
      ("/api", "/ap", false), ("/api", "/", false), ("/api", "/API", false), ("/api/v1", "/api/v1/users", true),
      ("/api/v1", "/api/v10", false), ("/", "/", true), ("/", "/anything", true),
    ])
  func matchesPaths(prefix: String, path: String, expected: Bool) throws {
    let route = try Route(name: Self.name, service: Self.api, pathPrefix: prefix)
    #expect(route.matchesPath(path) == expected)
  }

  @Test(
    arguments: [
      ("/api", true, "/api/users", "/users"), ("/api", true, "/api", "/"), ("/api", true, "/api/", "/"),
      ("/api", false, "/api/users", "/api/users"), ("/api", true, "/apix", nil), ("/", true, "/x", "/x"),
    ] as [(String, Bool, String, String?)])
  func forwardsPaths(prefix: String, strip: Bool, path: String, expected: String?) throws {
    let route = try Route(name: Self.name, service: Self.api, pathPrefix: prefix, stripPrefix: strip)
    #expect(route.forwardedPath(path) == expected)
  }

  // MARK: - Construction and the wire form

  @Test func normalizesHostsAndPrefix() throws {
    let hosts = try ["b.example", "*.example.com", "A.example", "b.example", "a.example"].map {
      text throws(RegistrationError) in try HostPattern(validating: text)
    }
    let route = try Route(name: Self.name, service: Self.api, hosts: hosts, pathPrefix: "/api/", stripPrefix: true)
    #expect(route.hosts.map(\.text) == ["a.example", "b.example", "*.example.com"])
    #expect(route.pathPrefix == "/api" && route.stripPrefix)
    #expect(route.path == "/switchyard/routes/api-v1" && Route.path(for: Self.name) == route.path)
    // Nothing to strip from "/".
    #expect(try Route(name: Self.name, service: Self.api, stripPrefix: true).stripPrefix == false)
  }

  @Test func refusesTooManyHosts() throws {
    let hosts = try (0...Route.maxHosts).map { index throws(RegistrationError) in
      try HostPattern(validating: "h\(index).example")
    }
    #expect(throws: RegistrationError.self) { try Route(name: Self.name, service: Self.api, hosts: hosts) }
    #expect(try Route(name: Self.name, service: Self.api, hosts: Array(hosts.dropLast())).hosts.count == 32)
  }

  @Test(
    arguments: [
      (#"{"service":"api"}"#, [], "/", false),
      (#"{"service":"api","hosts":[]}"#, [], "/", false),
      (#"{"service":"api","host":"API.example.com"}"#, ["api.example.com"], "/", false),
      (
        #"{"service":"api","hosts":["b.example","*.example.com","a.example"]}"#,
        ["a.example", "b.example", "*.example.com"], "/", false
      ),
      (#"{"service":"api","path_prefix":"/api/","strip_prefix":true}"#, [], "/api", true),
      (#"{"service":"api","path_prefix":"/","strip_prefix":false}"#, [], "/", false),
      (" {\"service\" : \"api\"}\n", [], "/", false),
    ] as [(String, [String], String, Bool)])
  func parsesRoutes(value: String, hosts: [String], prefix: String, strip: Bool) throws {
    let route = try Self.route(value)
    #expect(route.name == Self.name && route.service == Self.api)
    #expect(route.hosts.map(\.text) == hosts && route.pathPrefix == prefix && route.stripPrefix == strip)
  }

  @Test func encodesAndParsesBack() throws {
    let hosts = [try HostPattern(validating: "api.example.com")]
    let route = try Route(
      name: Self.name, service: Self.api, hosts: hosts, pathPrefix: "/api", stripPrefix: true, modRevision: 3)
    let text = String(decoding: route.encoded(), as: UTF8.self)
    #expect(text == #"{"hosts":["api.example.com"],"path_prefix":"/api","service":"api","strip_prefix":true}"#)
    let parsed = try Route.parse(key: Array(route.path.utf8), value: route.encoded(), modRevision: 3)
    #expect(parsed == route)

    let minimal = try Route(name: Self.name, service: Self.api)
    #expect(String(decoding: minimal.encoded(), as: UTF8.self) == #"{"service":"api"}"#)
    #expect(try Route.parse(key: Array(minimal.path.utf8), value: minimal.encoded()) == minimal)
  }

  /// One entry that must be refused, and how; `key` defaults to this suite's.
  typealias Refused = RefusedEntry<Self>

  static let refused: [Refused] = [
    // Keys.
    .init("key not under the root", key: "/switchyard/route/r", #"{"service":"api"}"#, .invalidKey, nil),
    .init("key with no name", key: "/switchyard/routes/", #"{"service":"api"}"#, .invalidKey, "name"),
    .init("key with two segments", key: "/switchyard/routes/a/b", #"{"service":"api"}"#, .invalidKey, nil),
    .init("key with a trailing slash", key: "/switchyard/routes/a/", #"{"service":"api"}"#, .invalidKey, nil),
    .init("key with a space", key: "/switchyard/routes/a b", #"{"service":"api"}"#, .invalidKey, "name"),
    .init("key with a newline", key: "/switchyard/routes/a\nb", #"{"service":"api"}"#, .invalidKey, "name"),
    .init("key \"..\"", key: "/switchyard/routes/..", #"{"service":"api"}"#, .invalidKey, "name"),
    .init(
      "key not UTF-8", keyBytes: Array("/switchyard/routes/a".utf8) + [0xff],
      valueBytes: Array(#"{"service":"api"}"#.utf8), .invalidKey, nil),
    // Values.
    .init("not JSON", "api", .invalidValue, nil),
    .init("a JSON array", #"["api"]"#, .invalidValue, nil),
    .init("empty", "", .invalidValue, nil),
    .init(
      "value not UTF-8", keyBytes: Array("/switchyard/routes/r".utf8),
      valueBytes: Array(#"{"service":"api","path_prefix":"/a"#.utf8) + [0xc3, 0x22, 0x7d], .invalidValue, nil),
    .init(
      "oversized", #"{"service":"api","path_prefix":"/"# + String(repeating: "a", count: 4100) + #""}"#,
      .invalidValue, nil),
    // Service.
    .init("no service", #"{"hosts":["a.example"]}"#, .invalidField, "service"),
    .init("service a number", #"{"service":1}"#, .invalidField, "service"),
    .init("service null", #"{"service":null}"#, .invalidField, "service"),
    .init("service with a space", #"{"service":"a b"}"#, .invalidName, "service"),
    .init("service with a newline", #"{"service":"api\nbackend evil"}"#, .invalidName, "service"),
    // Unknown fields.
    .init("a typo", #"{"service":"api","path_prefx":"/api"}"#, .invalidField, "path_prefx"),
    .init("an unknown field with a newline", #"{"service":"api","a\nb":1}"#, .invalidField, "a\\nb"),
    .init("an unknown field with a quote", #"{"service":"api","a\"b":1}"#, .invalidField, "a\\\"b"),
    // Hosts.
    .init("hosts a string", #"{"service":"api","hosts":"a.example"}"#, .invalidField, "hosts"),
    .init("hosts an object", #"{"service":"api","hosts":{"a":1}}"#, .invalidField, "hosts"),
    .init("hosts with a number", #"{"service":"api","hosts":["a.example",1]}"#, .invalidField, "hosts"),
    .init("hosts with an array", #"{"service":"api","hosts":[["a.example"]]}"#, .invalidField, "hosts"),
    .init("hosts with null", #"{"service":"api","hosts":[null]}"#, .invalidField, "hosts"),
    .init("host and hosts", #"{"service":"api","host":"a.example","hosts":[]}"#, .invalidField, "host"),
    .init("host an array", #"{"service":"api","host":["a.example"]}"#, .invalidField, "host"),
    .init("host invalid", #"{"service":"api","host":"a b"}"#, .invalidField, "host"),
    .init("host with a newline", #"{"service":"api","hosts":["a.example\nacl x"]}"#, .invalidField, "hosts"),
    .init("host with NUL", #"{"service":"api","hosts":["a.example\u0000"]}"#, .invalidField, "hosts"),
    .init("host \"*.com\"", #"{"service":"api","hosts":["*.com"]}"#, .invalidField, "hosts"),
    .init(
      "33 hosts",
      #"{"service":"api","hosts":["# + (0...32).map { "\"h\($0).example\"" }.joined(separator: ",") + "]}",
      .invalidField, "hosts"),
    // Path prefix and strip.
    .init("prefix a number", #"{"service":"api","path_prefix":1}"#, .invalidField, "path_prefix"),
    .init("prefix with a space", #"{"service":"api","path_prefix":"/a b"}"#, .invalidField, "path_prefix"),
    .init(
      "prefix with a map command", #"{"service":"api","path_prefix":"/a\nadd map x"}"#, .invalidField,
      "path_prefix"),
    .init("prefix with %zz", #"{"service":"api","path_prefix":"/%zz"}"#, .invalidField, "path_prefix"),
    .init("prefix with ..", #"{"service":"api","path_prefix":"/a/.."}"#, .invalidField, "path_prefix"),
    .init("prefix with #", #"{"service":"api","path_prefix":"/a#b"}"#, .invalidField, "path_prefix"),
    .init("prefix non-ASCII", #"{"service":"api","path_prefix":"/caf\u00e9"}"#, .invalidField, "path_prefix"),
    .init("prefix empty", #"{"service":"api","path_prefix":""}"#, .invalidField, "path_prefix"),
    .init("strip a string", #"{"service":"api","strip_prefix":"true"}"#, .invalidField, "strip_prefix"),
    .init("strip a number", #"{"service":"api","strip_prefix":1}"#, .invalidField, "strip_prefix"),
  ]

  @Test(arguments: refused)
  func refusesEntries(entry: Refused) {
    do {
      let route = try Route.parse(key: entry.key, value: entry.value)
      Issue.record("accepted \(route)")
    } catch {
      #expect(error.code == entry.code, "\(error)")
      #expect(error.field == entry.field, "\(error)")
      #expect(error.key == String(decoding: entry.key, as: UTF8.self))
      #expect(Self.isOneSafeLine(error), "\(error)")
    }
  }
}
