import Foundation
import SwitchyardModel
import Testing

@Suite("Service settings")
struct ServiceSettingsTests: RefusedEntrySuite {
  static let redis = try! ServiceName(validating: "redis")
  static let key = "/switchyard/services/redis"

  static func settings(_ value: String, key: String = key) throws(RegistrationError) -> ServiceSettings {
    try ServiceSettings.parse(key: Array(key.utf8), value: Array(value.utf8))
  }

  // MARK: - Durations

  @Test(
    arguments: [
      ("250ms", Duration.milliseconds(250)), ("2s", .seconds(2)), ("1m", .seconds(60)), ("0s", .zero),
      ("007s", .seconds(7)), ("1500ms", .milliseconds(1500)), ("60m", .seconds(3600)),
      ("999999999999ms", .milliseconds(999_999_999_999)),
    ])
  func parsesDurations(text: String, expected: Duration) {
    #expect(ServiceSettings.parseDuration(text) == expected)
  }

  @Test(
    arguments: [
      "", "s", "ms", "2", "2h", "2 s", " 2s", "2s ", "2s\n", "-2s", "+2s", "1.5s", "2S", "2MS", "2sec", "1e3ms",
      "٣s", "２s", "0x10s", "9999999999999s", "2s2s",
    ])
  func refusesDurations(text: String) {
    #expect(ServiceSettings.parseDuration(text) == nil)
  }

  @Test(
    arguments: [
      (Duration.seconds(2), "2s"), (.milliseconds(1500), "1500ms"), (.seconds(60), "60s"),
      (.milliseconds(100), "100ms"),
      (.zero, "0s"), (.seconds(3600), "3600s"),
    ])
  func writesDurations(value: Duration, text: String) {
    #expect(ServiceSettings.durationText(value) == text)
    #expect(ServiceSettings.parseDuration(text) == value)
  }

  // MARK: - Reading and writing

  @Test func parsesEveryField() throws {
    let value = """
      {"balance":"leastconn","mode":"tcp","port":6379,"check":{"type":"tcp","interval":"2s","timeout":"500ms",\
      "rise":2,"fall":3},"timeout_connect":"1s","timeout_server":"60s","retries":2,"maxconn":100}
      """
    let settings = try Self.settings(value)
    #expect(settings.service == Self.redis && settings.path == Self.key)
    #expect(settings.balance == .leastconn && settings.mode == .tcp && settings.port == 6379)
    #expect(
      settings.check
        == ServiceSettings.Check(kind: .tcp, interval: .seconds(2), timeout: .milliseconds(500), rise: 2, fall: 3))
    #expect(settings.timeoutConnect == .seconds(1) && settings.timeoutServer == .seconds(60))
    #expect(settings.retries == 2 && settings.maxconn == 100)
    #expect(
      String(decoding: settings.encoded(), as: UTF8.self)
        == #"{"balance":"leastconn","check":{"fall":3,"interval":"2s","rise":2,"timeout":"500ms","type":"tcp"},"#
        + #""maxconn":100,"mode":"tcp","port":6379,"retries":2,"timeout_connect":"1s","timeout_server":"60s"}"#)
  }

  @Test func emptySettingsAreTheNodesDefaults() throws {
    let settings = try Self.settings("{}")
    #expect(settings == (try ServiceSettings(service: Self.redis)))
    #expect(settings.balance == nil && settings.mode == .http && settings.port == nil && settings.check == nil)
    #expect(String(decoding: settings.encoded(), as: UTF8.self) == "{}")
  }

  @Test(
    arguments: [
      #"{}"#,
      #"{"mode":"http"}"#,
      #"{"balance":"source","check":{}}"#,
      #"{"check":{"path":"/healthz?full=1","interval":"1500ms"}}"#,
      #"{"check":{"type":"http","timeout":"1m","interval":"1m"}}"#,
      #"{"mode":"tcp","port":1,"check":{"type":"tcp"},"retries":0,"maxconn":100000}"#,
      #"{"mode":"tcp","port":65535,"check":{"type":"http","path":"/"}}"#,
      #"{"timeout_connect":"100ms","timeout_server":"60m","retries":10,"maxconn":1}"#,
      #"{"retries":2.0}"#,
      " {\"balance\" : \"random\"}\n",
    ])
  func roundTrips(value: String) throws {
    let settings = try Self.settings(value)
    let again = try ServiceSettings.parse(key: Array(settings.path.utf8), value: settings.encoded(), modRevision: 7)
    #expect(again.modRevision == 7)
    var expected = settings
    expected.modRevision = 7
    #expect(again == expected)
    #expect(again.encoded() == settings.encoded())
  }

  @Test func normalizesDurationsAndLeavesTheDefaultModeOut() throws {
    let settings = try Self.settings(#"{"mode":"http","timeout_server":"2m","check":{"interval":"2000ms"}}"#)
    #expect(
      String(decoding: settings.encoded(), as: UTF8.self)
        == #"{"check":{"interval":"2s","type":"http"},"timeout_server":"120s"}"#)
  }

  // MARK: - Validation

  @Test func validatesWhatIsBuilt() throws {
    #expect(throws: RegistrationError.self) { try ServiceSettings(service: Self.redis, mode: .tcp) }
    #expect(throws: RegistrationError.self) { try ServiceSettings(service: Self.redis, port: 80) }
    #expect(throws: RegistrationError.self) {
      try ServiceSettings(service: Self.redis, timeoutConnect: .microseconds(150_500))
    }
    #expect(throws: RegistrationError.self) { try ServiceSettings(service: Self.redis, timeoutServer: .seconds(-1)) }
    #expect(throws: RegistrationError.self) {
      try ServiceSettings(service: Self.redis, check: .init(kind: .tcp, path: "/healthz"))
    }
    var settings = try ServiceSettings(service: Self.redis, mode: .tcp, port: 6379)
    settings.retries = 11
    do {
      try settings.validate()
      Issue.record("accepted retries 11")
    } catch {
      #expect(error.field == "retries" && error.code == .invalidField)
    }
    settings.retries = 10
    try settings.validate()
  }

  /// One entry that must be refused, and how; `key` defaults to this suite's.
  typealias Refused = RefusedEntry<Self>

  static let refused: [Refused] = [
    // Keys.
    .init("key not under the root", key: "/switchyard/service/redis", "{}", .invalidKey, nil),
    .init("key with no service", key: "/switchyard/services/", "{}", .invalidKey, "service"),
    .init("key with two segments", key: "/switchyard/services/redis/x", "{}", .invalidKey, nil),
    .init("key with a trailing slash", key: "/switchyard/services/redis/", "{}", .invalidKey, nil),
    .init("key with a space", key: "/switchyard/services/re dis", "{}", .invalidKey, "service"),
    .init("key with a newline", key: "/switchyard/services/re\ndis", "{}", .invalidKey, "service"),
    .init(
      "key too long", key: "/switchyard/services/" + String(repeating: "s", count: 64), "{}", .invalidKey, "service"),
    .init(
      "key not UTF-8", keyBytes: Array("/switchyard/services/r".utf8) + [0xfe], valueBytes: Array("{}".utf8),
      .invalidKey, nil),
    // Values.
    .init("not JSON", "leastconn", .invalidValue, nil),
    .init("a JSON array", "[]", .invalidValue, nil),
    .init("a JSON string", #""{}""#, .invalidValue, nil),
    .init("empty", "", .invalidValue, nil),
    .init(
      "value not UTF-8", keyBytes: Array(key.utf8), valueBytes: Array(#"{"balance":""#.utf8) + [0xff, 0x22, 0x7d],
      .invalidValue, nil),
    .init("oversized", #"{"balance":"leastconn"}"# + String(repeating: " ", count: 4096), .invalidValue, nil),
    // Unknown fields.
    .init("a typo", #"{"balanse":"leastconn"}"#, "balanse"),
    .init("an unknown field with a newline", #"{"a\nb":1}"#, "a\\nb"),
    .init("an unknown field with NUL", #"{"a\u0000":1}"#, "a\\u{0}"),
    .init("an unknown check field", #"{"check":{"intervall":"2s"}}"#, "check.intervall"),
    .init("a top-level field in check", #"{"check":{"retries":2}}"#, "check.retries"),
    // Balance and mode.
    .init("balance unknown", #"{"balance":"fastest"}"#, "balance"),
    .init("balance upper-case", #"{"balance":"LEASTCONN"}"#, "balance"),
    .init("balance a number", #"{"balance":1}"#, "balance"),
    .init("balance with a newline", #"{"balance":"leastconn\n  server x"}"#, "balance"),
    .init("balance null", #"{"balance":null}"#, "balance"),
    .init("mode udp", #"{"mode":"udp"}"#, "mode"),
    .init("mode a boolean", #"{"mode":true}"#, "mode"),
    // Port.
    .init("tcp without a port", #"{"mode":"tcp"}"#, "port"),
    .init("http with a port", #"{"port":8080}"#, "port"),
    .init("port 0", #"{"mode":"tcp","port":0}"#, "port"),
    .init("port 70000", #"{"mode":"tcp","port":70000}"#, "port"),
    .init("port a string", #"{"mode":"tcp","port":"6379"}"#, "port"),
    .init("port fractional", #"{"mode":"tcp","port":6379.5}"#, "port"),
    // Check.
    .init("check a string", #"{"check":"tcp"}"#, "check"),
    .init("check an array", #"{"check":[]}"#, "check"),
    .init("check type udp", #"{"check":{"type":"udp"}}"#, "check.type"),
    .init("check path with tcp", #"{"check":{"type":"tcp","path":"/healthz"}}"#, "check.path"),
    .init("check path relative", #"{"check":{"path":"healthz"}}"#, "check.path"),
    .init("check path with a space", #"{"check":{"path":"/a b"}}"#, "check.path"),
    .init("check path with a newline", #"{"check":{"path":"/a\nhttp-check send"}}"#, "check.path"),
    .init("check path with #", #"{"check":{"path":"/a#b"}}"#, "check.path"),
    .init("check path with %zz", #"{"check":{"path":"/%zz"}}"#, "check.path"),
    .init("check path with a quote", #"{"check":{"path":"/a\"b"}}"#, "check.path"),
    .init("check path with a backslash", #"{"check":{"path":"/a\\b"}}"#, "check.path"),
    .init("check path non-ASCII", #"{"check":{"path":"/caf\u00e9"}}"#, "check.path"),
    .init("check path a number", #"{"check":{"path":1}}"#, "check.path"),
    .init("check path too long", #"{"check":{"path":"/"# + String(repeating: "a", count: 256) + #""}}"#, "check.path"),
    .init("check interval without unit", #"{"check":{"interval":"2"}}"#, "check.interval"),
    .init("check interval a number", #"{"check":{"interval":2}}"#, "check.interval"),
    .init("check interval too short", #"{"check":{"interval":"50ms"}}"#, "check.interval"),
    .init("check interval too long", #"{"check":{"interval":"61m"}}"#, "check.interval"),
    .init("check interval in hours", #"{"check":{"interval":"1h"}}"#, "check.interval"),
    .init("check interval with a newline", #"{"check":{"interval":"2s\nx"}}"#, "check.interval"),
    .init("check timeout zero", #"{"check":{"timeout":"0ms"}}"#, "check.timeout"),
    .init("check timeout over the interval", #"{"check":{"interval":"1s","timeout":"2s"}}"#, "check.timeout"),
    .init("check rise 0", #"{"check":{"rise":0}}"#, "check.rise"),
    .init("check rise a string", #"{"check":{"rise":"2"}}"#, "check.rise"),
    .init("check fall 101", #"{"check":{"fall":101}}"#, "check.fall"),
    .init("check fall null", #"{"check":{"fall":null}}"#, "check.fall"),
    // Timeouts, retries, maxconn.
    .init("timeout_connect too short", #"{"timeout_connect":"99ms"}"#, "timeout_connect"),
    .init("timeout_connect with a space", #"{"timeout_connect":"1 s"}"#, "timeout_connect"),
    .init("timeout_connect negative", #"{"timeout_connect":"-1s"}"#, "timeout_connect"),
    .init("timeout_server zero", #"{"timeout_server":"0s"}"#, "timeout_server"),
    .init("timeout_server too long", #"{"timeout_server":"3600001ms"}"#, "timeout_server"),
    .init("timeout_server an object", #"{"timeout_server":{"s":1}}"#, "timeout_server"),
    .init("retries 11", #"{"retries":11}"#, "retries"),
    .init("retries -1", #"{"retries":-1}"#, "retries"),
    .init("retries 1.5", #"{"retries":1.5}"#, "retries"),
    .init("retries beyond Int64", #"{"retries":99999999999999999999}"#, "retries"),
    .init("maxconn 0", #"{"maxconn":0}"#, "maxconn"),
    .init("maxconn 100001", #"{"maxconn":100001}"#, "maxconn"),
    .init("maxconn a boolean", #"{"maxconn":true}"#, "maxconn"),
  ]

  @Test(arguments: refused)
  func refusesEntries(entry: Refused) {
    do {
      let settings = try ServiceSettings.parse(key: entry.key, value: entry.value)
      Issue.record("accepted \(settings)")
    } catch {
      #expect(error.code == entry.code, "\(error)")
      #expect(error.field == entry.field, "\(error)")
      #expect(error.key == String(decoding: entry.key, as: UTF8.self))
      #expect(RouteTests.isOneSafeLine(error), "\(error)")
    }
  }

  @Test func listsTheBalanceAlgorithms() {
    do {
      _ = try Self.settings(#"{"balance":"fastest"}"#)
    } catch {
      #expect(error.reason == #""fastest" is not one of "roundrobin", "leastconn", "random", "source""#)
    }
  }
}
