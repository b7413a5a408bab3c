import Foundation
import Testing

@testable import SwitchyardModel

@Suite("Registration values that are accepted")
struct RegistrationAcceptanceTests {
  @Test("accepts the smallest JSON value, with defaults")
  func acceptsMinimal() throws {
    let minimal = try Registration.parse(Array(#"{"address":"127.0.0.1","port":9001}"#.utf8))
    #expect(minimal.address.kind == .ipv4 && minimal.address.text == "127.0.0.1" && minimal.port == 9001)
    #expect(minimal.weight == 100 && minimal.state == .up && minimal.checkPath == nil && minimal.meta.isEmpty)
  }

  @Test("accepts every field, and ignores unknown ones")
  func acceptsFull() throws {
    let full = try Registration.parse(
      Array(
        """
        {
          "address": "10.0.0.5", "port": 9001, "weight": 0, "state": "drain",
          "check": {"path": "/healthz?probe=lb&x=%2F", "future": true},
          "meta": {"zone": "a", "version": "1.2.3", "note": "café ☕"},
          "future": {"nested": [1, 2, 3]}
        }

        """.utf8
      )
    )
    #expect(full.hostPort == "10.0.0.5:9001" && full.weight == 0 && full.state == .drain)
    #expect(full.checkPath == "/healthz?probe=lb&x=%2F")
    #expect(full.meta == ["zone": "a", "version": "1.2.3", "note": "café ☕"])
    for state in InstanceState.allCases {
      let value = try Registration.parse(Array(json(#""state":"\#(state.rawValue)""#).utf8))
      #expect(value.state == state)
    }
    #expect(try Registration.parse(Array(json(#""weight":256"#).utf8)).weight == 256)
    #expect(try Registration.parse(Array(json(#""check":{}"#).utf8)).checkPath == nil)
  }

  @Test(
    "accepts the original demo's plain host:port as up, weight 100",
    arguments: [
      ("10.0.0.5:8080", Address.Kind.ipv4, "10.0.0.5:8080"),
      ("[::1]:8080", .ipv6, "[::1]:8080"),
      ("[2001:DB8::1]:443", .ipv6, "[2001:db8::1]:443"),
      ("[::ffff:10.0.0.1]:1", .ipv6, "[::ffff:10.0.0.1]:1"),
      ("backend-1:8080", .hostname, "backend-1:8080"),
      ("Backend-1.Internal:65535", .hostname, "backend-1.internal:65535"),
      ("10.0.0.5:8080\n", .ipv4, "10.0.0.5:8080"),
      ("  10.0.0.5:8080\r\n", .ipv4, "10.0.0.5:8080"),
    ]
  )
  func acceptsPlain(value: String, kind: Address.Kind, hostPort: String) throws {
    let plain = try Registration.parse(Array(value.utf8))
    #expect(plain.address.kind == kind && plain.hostPort == hostPort)
    #expect(plain.state == .up && plain.weight == 100 && plain.checkPath == nil && plain.meta.isEmpty)
  }

  @Test("reads numbers as JSON does: 80.0 and 8e1 are the integer 80")
  func integralNumbers() throws {
    #expect(try Registration.parse(Array(#"{"address":"127.0.0.1","port":80.0}"#.utf8)).port == 80)
    #expect(try Registration.parse(Array(#"{"address":"127.0.0.1","port":8e1}"#.utf8)).port == 80)
  }

  @Test("duplicate fields: the JSON decoder keeps the first (pinned, so a Foundation change is noticed)")
  func duplicateFields() throws {
    let parsed = try Registration.parse(Array(#"{"address":"127.0.0.1","port":80,"port":81}"#.utf8))
    #expect(parsed.port == 80)
  }

  @Test("deeply nested unknown fields are skipped, not decoded, so nesting costs nothing")
  func deepNesting() throws {
    let deepObject = String(repeating: #"{"a":"#, count: 500) + "1" + String(repeating: "}", count: 500)
    let deepArray = String(repeating: "[", count: 500) + String(repeating: "]", count: 500)
    let values = [
      #"{"address":"::1","port":1,"future":\#(deepObject)}"#,
      #"{"address":"::1","port":1,"check":{"future":\#(deepArray)}}"#,
      #"{"address":"::1","port":1,"meta":{"x":\#(deepObject)}}"#,
    ]
    let start = ContinuousClock.now
    for _ in 0..<50 {
      #expect(try Registration.parse(Array(values[0].utf8)).port == 1)
      #expect(try Registration.parse(Array(values[1].utf8)).checkPath == nil)
      let error = #expect(throws: RegistrationError.self) { try Registration.parse(Array(values[2].utf8)) }
      #expect(error?.description == #"field "meta": value of "x" must be a string, not an object"#)
    }
    // Decoding every level took about a second per value; skipping takes well under a millisecond.
    #expect(ContinuousClock.now - start < .seconds(5))
  }
}
