import Foundation
import Testing

@testable import SwitchyardModel

@Suite("Registration values")
struct RegistrationTests {
  static let malformed: [(String, String?, String)] = [
    ("{\"address\":", nil, "bad JSON"),
    ("{\"address\":\"127.0.0.1\"}", "port", "missing port"),
    ("{\"port\":80}", "address", "missing address"),
    ("{\"address\":\"\",\"port\":80}", "address", "empty address"),
    ("{\"address\":\"127.0.0.1\",\"port\":0}", "port", "port 0"),
    ("{\"address\":\"127.0.0.1\",\"port\":70000}", "port", "port 70000"),
    ("{\"address\":\"127.0.0.1\",\"port\":-1}", "port", "negative port"),
    ("{\"address\":\"127.0.0.1\",\"port\":\"80\"}", "port", "port as a string"),
    ("{\"address\":\"127.0.0.1\",\"port\":80.5}", "port", "fractional port"),
    ("{\"address\":\"127.0.0.1\",\"port\":true}", "port", "port as a boolean"),
    ("{\"address\":80,\"port\":80}", "address", "address as a number"),
    (
      "{\"address\":\"127.0.0.1\\n    server evil 6.6.6.6:80\",\"port\":80}", "address",
      "address with a newline and a directive"
    ),
    ("{\"address\":\"127.0.0.1 check\",\"port\":80}", "address", "address with a space"),
    ("{\"address\":\"256.1.1.1\",\"port\":80}", "address", "IPv4 octet over 255"),
    ("{\"address\":\"1.2.3\",\"port\":80}", "address", "IPv4 with three parts"),
    ("{\"address\":\"01.2.3.4\",\"port\":80}", "address", "IPv4 with a leading zero"),
    ("{\"address\":\":::1\",\"port\":80}", "address", "IPv6 with three colons"),
    ("{\"address\":\"1::2::3\",\"port\":80}", "address", "IPv6 with two double colons"),
    ("{\"address\":\"[::1\",\"port\":80}", "address", "IPv6 with a bracket"),
    ("{\"address\":\"1:2:3:4:5:6:7:8:9\",\"port\":80}", "address", "IPv6 with nine groups"),
    ("{\"address\":\"-bad.example\",\"port\":80}", "address", "host name starting with -"),
    ("{\"address\":\"a#b\",\"port\":80}", "address", "host name with #"),
    ("{\"address\":\"127.0.0.1\",\"port\":80,\"weight\":257}", "weight", "weight 257"),
    ("{\"address\":\"127.0.0.1\",\"port\":80,\"weight\":-1}", "weight", "weight -1"),
    ("{\"address\":\"127.0.0.1\",\"port\":80,\"state\":\"down\"}", "state", "unknown state"),
    ("{\"address\":\"127.0.0.1\",\"port\":80,\"check\":{\"path\":\"healthz\"}}", "check.path", "path without /"),
    ("{\"address\":\"127.0.0.1\",\"port\":80,\"check\":{\"path\":\"/a b\"}}", "check.path", "path with a space"),
    ("{\"address\":\"127.0.0.1\",\"port\":80,\"check\":{\"path\":\"/a\\nb\"}}", "check.path", "path with a newline"),
    ("{\"address\":\"127.0.0.1\",\"port\":80,\"check\":{\"path\":\"/a#b\"}}", "check.path", "path with #"),
    ("{\"address\":\"127.0.0.1\",\"port\":80,\"check\":\"/x\"}", "check", "check as a string"),
    ("{\"address\":\"127.0.0.1\",\"port\":80,\"meta\":{\"zone\":1}}", "meta", "meta value not a string"),
    ("{\"address\":\"127.0.0.1\",\"port\":80,\"meta\":{\"a b\":\"x\"}}", "meta", "meta key with a space"),
    ("{\"address\":\"127.0.0.1\",\"port\":80,\"meta\":{\"z\":\"a\\u0000b\"}}", "meta", "meta value with NUL"),
    ("[1,2]", nil, "JSON array"),
    ("\"127.0.0.1:80\"", nil, "JSON string"),
    ("127.0.0.1", nil, "plain without port"),
    ("127.0.0.1:", "port", "plain with empty port"),
    ("127.0.0.1:0", "port", "plain port 0"),
    ("127.0.0.1:70000", "port", "plain port 70000"),
    ("127.0.0.1:80x", "port", "plain port with a letter"),
    ("::1:8080", nil, "plain IPv6 without brackets"),
    ("[::1]8080", nil, "plain IPv6 without colon"),
    ("host name:80", nil, "plain host with a space"),
    ("127.0.0.1:80\nserver evil 6.6.6.6:80", nil, "plain value with a newline"),
  ]

  @Test("rejects malformed values, naming the field", arguments: malformed)
  func rejectsMalformed(value: String, field: String?, label: String) {
    do {
      let parsed = try Registration.parse(Array(value.utf8))
      Issue.record("\(label): accepted as \(parsed)")
    } catch {
      #expect(error.field == field, "\(label): \(error)")
      #expect(!error.reason.isEmpty)
      #expect(!error.description.contains("\n"), "error messages stay on one line: \(error)")
    }
  }

  @Test("rejects non-UTF-8 and oversized values")
  func rejectsBytes() {
    #expect(throws: RegistrationError.self) { try Registration.parse([0x31, 0xff, 0xfe]) }
    let huge =
      Array("{\"address\":\"127.0.0.1\",\"port\":80,\"meta\":{\"a\":\"".utf8) + Array(repeating: 0x61, count: 5000)
    #expect(throws: RegistrationError.self) { try Registration.parse(huge) }
  }

  @Test("accepts the documented forms")
  func acceptsValid() throws {
    let minimal = try Registration.parse(Array("{\"address\":\"127.0.0.1\",\"port\":9001}".utf8))
    #expect(minimal.address == .ipv4("127.0.0.1") && minimal.port == 9001)
    #expect(minimal.weight == 100 && minimal.state == .up && minimal.checkPath == nil)

    let full = try Registration.parse(
      Array(
        """
        {"address":"127.0.0.1","port":9001,"weight":50,"state":"drain","check":{"path":"/healthz?x=1"},
         "meta":{"zone":"a"},"future":"ignored"}
        """.utf8
      )
    )
    #expect(full.weight == 50 && full.state == .drain && full.checkPath == "/healthz?x=1" && full.meta == ["zone": "a"])

    let plain = try Registration.parse(Array("10.0.0.5:8080".utf8))
    #expect(plain.hostPort == "10.0.0.5:8080" && plain.state == .up && plain.weight == 100)
    let ipv6 = try Registration.parse(Array("[::1]:8080".utf8))
    #expect(ipv6.address == .ipv6("::1") && ipv6.hostPort == "[::1]:8080")
    let mapped = try Registration.parse(Array("{\"address\":\"::ffff:10.0.0.1\",\"port\":1}".utf8))
    #expect(mapped.address == .ipv6("::ffff:10.0.0.1"))
    let host = try Registration.parse(Array("backend-1.internal:8080".utf8))
    #expect(host.address == .hostname("backend-1.internal"))
    let full8 = try Registration.parse(Array("{\"address\":\"2001:db8:0:0:0:0:0:1\",\"port\":443}".utf8))
    #expect(full8.hostPort == "[2001:db8:0:0:0:0:0:1]:443")
  }

  @Test("encoding is canonical and parses back to the same registration")
  func roundTrip() throws {
    let registration = try Registration(
      address: Address(validating: "127.0.0.1"),
      port: 9001,
      weight: 100,
      state: .up,
      checkPath: "/healthz",
      meta: ["zone": "a", "version": "1.2"]
    )
    let encoded = String(decoding: registration.encoded(), as: UTF8.self)
    #expect(
      encoded
        == #"{"address":"127.0.0.1","check":{"path":"/healthz"},"meta":{"version":"1.2","zone":"a"},"port":9001,"state":"up","weight":100}"#
    )
    #expect(try Registration.parse(registration.encoded()) == registration)
    #expect(registration.with(state: .drain).encoded() != registration.encoded())
  }
}

@Suite("Names and keys")
struct KeyTests {
  @Test("parses registration keys")
  func parsesKeys() throws {
    let key = try RegistrationKey(parsing: "/services/backend/backend-1")
    #expect(key.service == .backend && key.instance.rawValue == "backend-1")
    #expect(key.path == "/services/backend/backend-1")
    #expect(RegistrationKey.prefix(for: .backend) == "/services/backend/")
    #expect(key.service.haproxyBackendName == "svc_backend")
    #expect(key.instance.haproxyServerName == "backend-1")
  }

  @Test(
    "rejects malformed keys",
    arguments: [
      "/services/backend", "/services/backend/", "/services//x", "/services/backend/a/b", "/other/backend/a",
      "/services/back end/a", "/services/backend/a\nb", "/services/backend/é", "/services/backend/..",
      "/services/backend/a:b", "services/backend/a",
    ]
  )
  func rejectsKeys(key: String) {
    #expect(throws: RegistrationError.self) { try RegistrationKey(parsing: key) }
  }

  @Test(
    "names allow letters, digits, -, _ and . only",
    arguments: ["a b", "a\nb", "", "a/b", "a:b", ".", String(repeating: "x", count: 64)])
  func rejectsServiceNames(name: String) {
    #expect(throws: RegistrationError.self) { try ServiceName(validating: name) }
  }

  @Test("one bad entry never holds back the good ones")
  func parseAll() {
    let good = Array("{\"address\":\"127.0.0.1\",\"port\":9001}".utf8)
    let (valid, invalid) = ServiceInstance.parseAll([
      (key: "/services/backend/b", value: good, modRevision: 3),
      (key: "/services/backend/garbage", value: Array("not json".utf8), modRevision: 4),
      (key: "/services/backend/a", value: Array("127.0.0.1:9002".utf8), modRevision: 5),
      (key: "/services/backend/x/y", value: good, modRevision: 6),
    ])
    #expect(valid.map(\.key.instance.rawValue) == ["a", "b"])
    #expect(invalid.map(\.key) == ["/services/backend/garbage", "/services/backend/x/y"])
    #expect(invalid[0].description.hasPrefix("/services/backend/garbage: "))
  }
}
