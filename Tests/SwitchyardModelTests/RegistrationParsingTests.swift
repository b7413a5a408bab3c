import Foundation
import Testing

@testable import SwitchyardModel

/// One value that must be refused, and how.
struct Malformed: CustomTestStringConvertible, Sendable {
  var label: String
  var value: [UInt8]
  var code: RegistrationError.Code
  var field: String?

  init(_ label: String, _ value: String, _ code: RegistrationError.Code, _ field: String?) {
    self.label = label
    self.value = Array(value.utf8)
    self.code = code
    self.field = field
  }

  init(_ label: String, bytes: [UInt8], _ code: RegistrationError.Code, _ field: String?) {
    self.label = label
    self.value = bytes
    self.code = code
    self.field = field
  }

  var testDescription: String { label }
}

/// `{"address":"127.0.0.1","port":80,<extra>}` (also used by ``RegistrationAcceptanceTests``)
func json(_ extra: String) -> String { #"{"address":"127.0.0.1","port":80,"# + extra + "}" }

@Suite("Registration values that are refused")
struct RegistrationParsingTests {
  static let malformed: [Malformed] = [
    // Not a value at all.
    .init("bad JSON", #"{"address":"#, .invalidValue, nil),
    .init("JSON with trailing garbage", #"{"address":"127.0.0.1","port":80} x"#, .invalidValue, nil),
    .init("JSON array", "[1,2]", .invalidValue, nil),
    .init("JSON string", #""127.0.0.1:80""#, .invalidValue, nil),
    .init("JSON number (read as a host without port)", "8080", .invalidField, "port"),
    .init("JSON true (read as a host without port)", "true", .invalidField, "port"),
    .init("empty value", "", .invalidValue, nil),
    .init("only whitespace", " \n", .invalidValue, nil),
    .init("non-UTF-8 bytes", bytes: [0x31, 0x32, 0x37, 0xff, 0xfe, 0x3a, 0x38, 0x30], .invalidValue, nil),
    .init(
      "truncated UTF-8", bytes: Array(#"{"address":"a","port":80,"meta":{"z":""#.utf8) + [0xc3], .invalidValue, nil),
    .init(
      "oversized value",
      json(#""meta":{"a":""# + String(repeating: "x", count: 5000) + #""}"#),
      .invalidValue,
      nil
    ),
    // Port.
    .init("missing port", #"{"address":"127.0.0.1"}"#, .invalidField, "port"),
    .init("port 0", #"{"address":"127.0.0.1","port":0}"#, .invalidField, "port"),
    .init("port 70000", #"{"address":"127.0.0.1","port":70000}"#, .invalidField, "port"),
    .init("port -1", #"{"address":"127.0.0.1","port":-1}"#, .invalidField, "port"),
    .init("port as a string", #"{"address":"127.0.0.1","port":"80"}"#, .invalidField, "port"),
    .init("fractional port", #"{"address":"127.0.0.1","port":80.5}"#, .invalidField, "port"),
    .init("port beyond Int64", #"{"address":"127.0.0.1","port":99999999999999999999}"#, .invalidField, "port"),
    .init("port as a boolean", #"{"address":"127.0.0.1","port":true}"#, .invalidField, "port"),
    .init("port null", #"{"address":"127.0.0.1","port":null}"#, .invalidField, "port"),
    // Address.
    .init("missing address", #"{"port":80}"#, .invalidField, "address"),
    .init("empty address", #"{"address":"","port":80}"#, .invalidField, "address"),
    .init("address as a number", #"{"address":80,"port":80}"#, .invalidField, "address"),
    .init(
      "address with a newline and a HAProxy directive",
      #"{"address":"127.0.0.1\n    server evil 6.6.6.6:80","port":80}"#,
      .invalidField,
      "address"
    ),
    .init("address with a carriage return", #"{"address":"127.0.0.1\r","port":80}"#, .invalidField, "address"),
    .init("address with NUL", #"{"address":"127.0.0.1\u0000","port":80}"#, .invalidField, "address"),
    .init("address with a space", #"{"address":"127.0.0.1 check","port":80}"#, .invalidField, "address"),
    .init("address with a quote", #"{"address":"a\"b","port":80}"#, .invalidField, "address"),
    .init("address with #", #"{"address":"a#b","port":80}"#, .invalidField, "address"),
    .init("address with $", #"{"address":"${HOME}","port":80}"#, .invalidField, "address"),
    .init("address with a port", #"{"address":"127.0.0.1:80","port":80}"#, .invalidField, "address"),
    .init("HAProxy address prefix", #"{"address":"unix@/tmp/x","port":80}"#, .invalidField, "address"),
    .init("IPv4 octet over 255", #"{"address":"256.1.1.1","port":80}"#, .invalidField, "address"),
    .init("IPv4 with three parts", #"{"address":"1.2.3","port":80}"#, .invalidField, "address"),
    .init("IPv4 with five parts", #"{"address":"1.2.3.4.5","port":80}"#, .invalidField, "address"),
    .init("IPv4 with a leading zero", #"{"address":"010.0.0.1","port":80}"#, .invalidField, "address"),
    .init("IPv4 with an empty part", #"{"address":"1..2.3","port":80}"#, .invalidField, "address"),
    .init("unspecified IPv4", #"{"address":"0.0.0.0","port":80}"#, .invalidField, "address"),
    .init("unspecified IPv6", #"{"address":"::","port":80}"#, .invalidField, "address"),
    .init("IPv6 with three colons", #"{"address":":::1","port":80}"#, .invalidField, "address"),
    .init("IPv6 with two double colons", #"{"address":"1::2::3","port":80}"#, .invalidField, "address"),
    .init("IPv6 with an open bracket", #"{"address":"[::1","port":80}"#, .invalidField, "address"),
    .init("IPv6 in brackets", #"{"address":"[::1]","port":80}"#, .invalidField, "address"),
    .init("IPv6 with nine groups", #"{"address":"1:2:3:4:5:6:7:8:9","port":80}"#, .invalidField, "address"),
    .init("IPv6 with seven groups", #"{"address":"1:2:3:4:5:6:7","port":80}"#, .invalidField, "address"),
    .init("IPv6 with a long group", #"{"address":"12345::1","port":80}"#, .invalidField, "address"),
    .init("IPv6 with a zone", #"{"address":"fe80::1%eth0","port":80}"#, .invalidField, "address"),
    .init("IPv6 with a bad IPv4 tail", #"{"address":"::ffff:1.2.3.256","port":80}"#, .invalidField, "address"),
    .init("host name starting with -", #"{"address":"-bad.example","port":80}"#, .invalidField, "address"),
    .init("host name with _", #"{"address":"back_end","port":80}"#, .invalidField, "address"),
    .init("host name with an empty label", #"{"address":"a..b","port":80}"#, .invalidField, "address"),
    .init("host name with a trailing dot", #"{"address":"example.com.","port":80}"#, .invalidField, "address"),
    .init("host name with a numeric last label", #"{"address":"example.123","port":80}"#, .invalidField, "address"),
    .init("non-ASCII host name", #"{"address":"bäckend","port":80}"#, .invalidField, "address"),
    .init(
      "host name label over 63",
      #"{"address":""# + String(repeating: "a", count: 64) + #".example","port":80}"#,
      .invalidField,
      "address"
    ),
    .init(
      "host name over 253",
      #"{"address":""# + Array(repeating: String(repeating: "a", count: 50), count: 6).joined(separator: ".")
        + #"","port":80}"#,
      .invalidField,
      "address"
    ),
    // Weight and state.
    .init("weight 257", json(#""weight":257"#), .invalidField, "weight"),
    .init("weight -1", json(#""weight":-1"#), .invalidField, "weight"),
    .init("weight as a string", json(#""weight":"100""#), .invalidField, "weight"),
    .init("fractional weight", json(#""weight":1.5"#), .invalidField, "weight"),
    .init("unknown state", json(#""state":"down""#), .invalidField, "state"),
    .init("state in capitals", json(#""state":"UP""#), .invalidField, "state"),
    .init("state as a number", json(#""state":1"#), .invalidField, "state"),
    // Check.
    .init("check as a string", json(#""check":"/healthz""#), .invalidField, "check"),
    .init("check path as a number", json(#""check":{"path":1}"#), .invalidField, "check.path"),
    .init("check path without /", json(#""check":{"path":"healthz"}"#), .invalidField, "check.path"),
    .init("check path with a space", json(#""check":{"path":"/a b"}"#), .invalidField, "check.path"),
    .init(
      "check path with a directive", json(#""check":{"path":"/a\nserver x 6.6.6.6:80"}"#), .invalidField, "check.path"),
    .init("check path with a tab", json(#""check":{"path":"/a\tb"}"#), .invalidField, "check.path"),
    .init("check path with #", json(#""check":{"path":"/a#b"}"#), .invalidField, "check.path"),
    .init("check path with a quote", json(#""check":{"path":"/a\"b"}"#), .invalidField, "check.path"),
    .init("check path with $", json(#""check":{"path":"/${X}"}"#), .invalidField, "check.path"),
    .init("check path with a backslash", json(#""check":{"path":"/a\\b"}"#), .invalidField, "check.path"),
    .init("check path with a bad escape", json(#""check":{"path":"/a%zz"}"#), .invalidField, "check.path"),
    .init("check path with non-ASCII", json(#""check":{"path":"/é"}"#), .invalidField, "check.path"),
    .init(
      "check path too long",
      json(#""check":{"path":"/"# + String(repeating: "a", count: 256) + #""}"#),
      .invalidField,
      "check.path"
    ),
    // Meta.
    .init("meta as an array", json(#""meta":["a"]"#), .invalidField, "meta"),
    .init("meta value not a string", json(#""meta":{"zone":1}"#), .invalidField, "meta"),
    .init("meta key with a space", json(#""meta":{"a b":"x"}"#), .invalidField, "meta"),
    .init("meta key with a newline", json(#""meta":{"a\nb":"x"}"#), .invalidField, "meta"),
    .init("meta value with NUL", json(#""meta":{"z":"a\u0000b"}"#), .invalidField, "meta"),
    .init("meta value with a newline", json(#""meta":{"z":"a\nb"}"#), .invalidField, "meta"),
    .init("meta value with a C1 control", json(#""meta":{"z":"a\u0085b"}"#), .invalidField, "meta"),
    .init("meta value with a bidi override", json(#""meta":{"z":"a\u202Eb"}"#), .invalidField, "meta"),
    .init(
      "meta value too long",
      json(#""meta":{"z":""# + String(repeating: "x", count: 257) + #""}"#),
      .invalidField,
      "meta"
    ),
    .init(
      "meta too large in total",
      json(
        #""meta":{"#
          + (0..<10).map { #""k\#($0)":""# + String(repeating: "x", count: 250) + #"""# }
          .joined(separator: ",") + "}"),
      .invalidField,
      "meta"
    ),
    // The original demo's plain host:port.
    .init("plain without port", "127.0.0.1", .invalidField, "port"),
    .init("plain host name without port", "backend-1", .invalidField, "port"),
    .init("plain with an empty port", "127.0.0.1:", .invalidField, "port"),
    .init("plain port 0", "127.0.0.1:0", .invalidField, "port"),
    .init("plain port 70000", "127.0.0.1:70000", .invalidField, "port"),
    .init("plain port -1", "127.0.0.1:-1", .invalidField, "port"),
    .init("plain port with a letter", "127.0.0.1:80x", .invalidField, "port"),
    .init("plain port beyond Int", "127.0.0.1:99999999999999999999", .invalidField, "port"),
    .init("plain without host", ":8080", .invalidField, "address"),
    .init("plain bad IPv4", "256.1.1.1:80", .invalidField, "address"),
    .init("plain unspecified IPv4", "0.0.0.0:8080", .invalidField, "address"),
    .init("plain IPv6 without brackets", "::1:8080", .invalidField, "address"),
    .init("plain IPv6 with an open bracket", "[::1:8080", .invalidField, "address"),
    .init("plain IPv6 without port", "[::1]", .invalidField, "port"),
    .init("plain IPv6 without colon", "[::1]8080", .invalidField, "port"),
    .init("plain IPv6 with a bad port", "[::1]:x", .invalidField, "port"),
    .init("plain invalid IPv6", "[1::2::3]:80", .invalidField, "address"),
    .init("plain IPv4 in brackets", "[127.0.0.1]:80", .invalidField, "address"),
    .init("plain host with a space", "host name:80", .invalidValue, nil),
    .init("plain value with a newline and a directive", "127.0.0.1:80\nserver evil 6.6.6.6:80", .invalidValue, nil),
    .init("plain value with a comment", "127.0.0.1:80#x", .invalidValue, nil),
    .init("plain URL", "http://127.0.0.1:80", .invalidValue, nil),
  ]

  @Test("refuses malformed values, naming the field", arguments: malformed)
  func refusesMalformed(_ testCase: Malformed) {
    do {
      let parsed = try Registration.parse(testCase.value)
      Issue.record("accepted as \(parsed)")
    } catch {
      #expect(error.code == testCase.code, "\(error)")
      #expect(error.field == testCase.field, "\(error)")
      #expect(error.key == nil)
      #expect(!error.reason.isEmpty)
      // Safe to log: one line of printable ASCII plus the en dash and ellipsis, and short.
      let printable = error.description.unicodeScalars.allSatisfy { (" "..."~").contains($0) || $0 == "–" || $0 == "…" }
      #expect(printable, "\(error)")
      #expect(error.description.utf8.count < 300, "\(error)")
    }
  }

  @Test(
    "reasons are precise",
    arguments: [
      (#"{"address":"127.0.0.1","port":70000}"#, #"field "port": 70000 is outside 1–65535"#),
      (#"{"address":"127.0.0.1","port":80.5}"#, #"field "port": 80.5 is not an integer"#),
      (#"{"address":"127.0.0.1","port":"80"}"#, #"field "port": must be an integer from 1–65535, not a string"#),
      (#"{"address":"127.0.0.1"}"#, #"field "port": is missing"#),
      (#"{"address":"a\nb","port":80}"#, #"field "address": contains a newline"#),
      (json(#""weight":257"#), #"field "weight": 257 is outside 0–256"#),
      (json(#""state":"down""#), #"field "state": "down" is not one of "up", "drain", "maint""#),
      (json(#""check":{"path":"/a b"}"#), #"field "check.path": contains a space"#),
      (
        json(#""meta":{"a\nb":"x"}"#),
        #"field "meta": key "a\nb" contains a newline; only letters, digits, "-", "_" and "." are allowed"#
      ),
      (
        "[1,2]",
        #"value is neither a JSON object nor host:port: contains ","; "#
          + #"host:port holds only letters, digits, ".", "-", ":", "[" and "]""#
      ),
      ("", "value is empty"),
      ("127.0.0.1", #"field "port": is missing; expected host:port"#),
    ]
  )
  func preciseReasons(value: String, description: String) {
    do {
      let parsed = try Registration.parse(Array(value.utf8))
      Issue.record("accepted as \(parsed)")
    } catch {
      #expect(error.description == description)
    }
  }

  @Test("refuses non-UTF-8 and oversized values before reading them")
  func refusesBytes() throws {
    let notUTF8 = #expect(throws: RegistrationError.self) { try Registration.parse([0x7b, 0xff, 0x7d]) }
    #expect(notUTF8?.description == "value is not valid UTF-8")
    let oversized = #expect(throws: RegistrationError.self) {
      try Registration.parse(Array(repeating: 0x20, count: Registration.maxValueBytes + 1))
    }
    #expect(oversized?.description == "value is 4097 bytes; at most 4096 are accepted")
  }

  @Test("writers are held to the same rules")
  func writersAreValidated() throws {
    let address = try Address(validating: "127.0.0.1")
    #expect(throws: RegistrationError.self) { try Registration(address: address, port: 0) }
    #expect(throws: RegistrationError.self) { try Registration(address: address, port: 80, weight: 257) }
    #expect(throws: RegistrationError.self) { try Registration(address: address, port: 80, checkPath: "/a\nb") }
    #expect(throws: RegistrationError.self) { try Registration(address: address, port: 80, meta: ["a\nb": "x"]) }
    let unspecified = try Address(validating: "0.0.0.0")
    let error = #expect(throws: RegistrationError.self) { try Registration(address: unspecified, port: 80) }
    #expect(error?.field == "address")
    #expect(Registration.checkPathProblem("/healthz") == nil)
    #expect(Registration.checkPathProblem("healthz") == #""healthz" does not start with "/""#)
  }
}
