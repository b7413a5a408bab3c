import Testing

@testable import SwitchyardModel

@Suite("Canonical encoding")
struct EncodingTests {
  /// Writer inputs: address, port, weight, state, check path, meta.
  static let samples: [(String, Int, Int, InstanceState, String?, [String: String])] = [
    ("127.0.0.1", 9001, 100, .up, nil, [:]),
    ("::1", 1, 0, .maint, nil, [:]),
    ("backend-1.internal", 65535, 100, .drain, "/healthz?full=1", ["zone": "a", "quote": "\"x\" \\ /"]),
    ("2001:db8::1", 443, 256, .up, "/", ["note": "café ☕"]),
  ]

  @Test("the canonical JSON is compact, sorted and stable")
  func canonical() throws {
    let registration = try Registration(
      address: Address(validating: "127.0.0.1"),
      port: 9001,
      checkPath: "/healthz",
      meta: ["zone": "a", "version": "1.2"]
    )
    let expected =
      #"{"address":"127.0.0.1","check":{"path":"/healthz"},"meta":{"version":"1.2","zone":"a"},"#
      + #""port":9001,"state":"up","weight":100}"#
    #expect(String(decoding: registration.encoded(), as: UTF8.self) == expected)
    #expect(registration.encoded() == registration.encoded())
    let minimal = try Registration(address: Address(validating: "::1"), port: 80)
    #expect(
      String(decoding: minimal.encoded(), as: UTF8.self) == #"{"address":"::1","port":80,"state":"up","weight":100}"#)
  }

  @Test("encode then parse gives the same registration, and re-encoding the same bytes", arguments: samples)
  func roundTrip(
    address: String,
    port: Int,
    weight: Int,
    state: InstanceState,
    checkPath: String?,
    meta: [String: String]
  ) throws {
    let registration = try Registration(
      address: Address(validating: address),
      port: port,
      weight: weight,
      state: state,
      checkPath: checkPath,
      meta: meta
    )
    let parsed = try Registration.parse(registration.encoded())
    #expect(parsed == registration)
    #expect(parsed.encoded() == registration.encoded())
  }

  @Test("with(state:) changes only the state")
  func withState() throws {
    let registration = try Registration.parse(Array("10.0.0.5:8080".utf8))
    let draining = registration.with(state: .drain)
    #expect(draining.state == .drain && draining.hostPort == registration.hostPort)
    #expect(try Registration.parse(draining.encoded()) == draining)
  }

  @Test("the largest registration still fits in a value, in every state")
  func largestFits() throws {
    var meta: [String: String] = [:]
    // Escaped quotes make the JSON grow; stop just under the meta budget.
    for index in 0..<100 {
      var candidate = meta
      candidate["k\(index)"] = String(repeating: "\"", count: 100)
      guard Registration.metaProblem(candidate) == nil else { break }
      meta = candidate
    }
    let host = Array(repeating: String(repeating: "a", count: 63), count: 4).joined(separator: ".").prefix(253)
    let registration = try Registration(
      address: Address(validating: String(host)),
      port: 65535,
      weight: 256,
      state: .maint,
      checkPath: "/" + String(repeating: "a", count: 255),
      meta: meta
    )
    for state in InstanceState.allCases {
      let encoded = registration.with(state: state).encoded()
      #expect(encoded.count <= Registration.maxValueBytes)
      #expect(try Registration.parse(encoded) == registration.with(state: state))
    }
  }
}
