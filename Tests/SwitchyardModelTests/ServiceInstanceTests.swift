import Testing

@testable import SwitchyardModel

@Suite("Reading a prefix")
struct ServiceInstanceTests {
  static func entry(_ key: String, _ value: String, _ revision: Int64 = 1) -> (
    key: [UInt8], value: [UInt8], modRevision: Int64
  ) {
    (Array(key.utf8), Array(value.utf8), revision)
  }

  @Test("one bad entry never holds back the good ones")
  func garbageAmongGoodEntries() {
    let good = #"{"address":"127.0.0.1","port":9001}"#
    let (valid, invalid) = ServiceInstance.parseAll([
      Self.entry("/services/backend/c", good, 3),
      Self.entry("/services/backend/garbage", "\u{0}\u{1}not json at all\n  server evil 6.6.6.6:80"),
      Self.entry("/services/backend/a", "10.0.0.5:8080", 5),
      Self.entry("/services/backend/b", #"{"address":"::1","port":9002,"state":"drain"}"#, 7),
    ])
    #expect(valid.map(\.key.path) == ["/services/backend/a", "/services/backend/b", "/services/backend/c"])
    #expect(valid.map(\.modRevision) == [5, 7, 3])
    #expect(valid.map(\.registration.hostPort) == ["10.0.0.5:8080", "[::1]:9002", "127.0.0.1:9001"])
    #expect(invalid.count == 1)
    #expect(invalid.first?.key == "/services/backend/garbage")
    #expect(invalid.first?.code == .invalidValue)
    #expect(invalid.first?.description.hasPrefix("/services/backend/garbage: value is neither") == true)
  }

  @Test("errors name the key, the field and the reason; results are sorted whatever the input order")
  func errorsAndOrder() {
    let entries = [
      Self.entry("/services/web/w1", #"{"address":"127.0.0.1","port":70000}"#),
      Self.entry("/services/backend/x/y", #"{"address":"127.0.0.1","port":80}"#),
      Self.entry("/services/web/w0", "127.0.0.1:8080"),
      Self.entry("/services/backend/b", #"{"address":"127.0.0.1\nserver evil 6.6.6.6:80","port":80}"#),
      Self.entry("/services/backend/a b", "127.0.0.1:8080"),
      Self.entry("/services/backend/ok", "backend-1:8080"),
    ]
    let (valid, invalid) = ServiceInstance.parseAll(entries)
    #expect(valid.map(\.key.path) == ["/services/backend/ok", "/services/web/w0"])
    #expect(
      invalid.map(\.description) == [
        #"/services/backend/a b: field "id": contains a space; only letters, digits, "-", "_" and "." are allowed"#,
        #"/services/backend/b: field "address": contains a newline"#,
        "/services/backend/x/y: key must be /services/<service>/<instance-id>, "
          + "with exactly two segments after /services/",
        #"/services/web/w1: field "port": 70000 is outside 1–65535"#,
      ]
    )
    let reversed = ServiceInstance.parseAll(entries.reversed())
    #expect(reversed.valid == valid && reversed.invalid == invalid)
  }

  @Test("keys that are not UTF-8 or carry control characters are reported, escaped")
  func unsafeKeys() {
    let (valid, invalid) = ServiceInstance.parseAll([
      (Array("/services/backend/".utf8) + [0xff, 0x0a], Array("127.0.0.1:80".utf8), 1),
      Self.entry("/services/backend/a\nserver evil 6.6.6.6:80", "127.0.0.1:80"),
    ])
    #expect(valid.isEmpty)
    #expect(invalid.map(\.code) == [.invalidKey, .invalidKey])
    #expect(invalid.allSatisfy { !$0.description.contains("\n") })
    #expect(
      invalid.map(\.description) == [
        #"/services/backend/a\nserver evil 6.6.6.6:80: field "id": contains a newline; "#
          + #"only letters, digits, "-", "_" and "." are allowed"#,
        #"/services/backend/\u{FFFD}\n: key is not valid UTF-8"#,
      ]
    )
  }

  @Test("a single entry parses with its key")
  func single() throws {
    let instance = try ServiceInstance.parse(
      key: Array("/services/backend/b1".utf8),
      value: Array(#"{"address":"10.0.0.1","port":80,"weight":5}"#.utf8),
      modRevision: 42
    )
    #expect(instance.key.instance.haproxyServerName == "b1" && instance.registration.weight == 5)
    #expect(instance.modRevision == 42)
    let error = #expect(throws: RegistrationError.self) {
      try ServiceInstance.parse(key: Array("/services/backend/b1".utf8), value: Array("{}".utf8))
    }
    #expect(error?.description == #"/services/backend/b1: field "address": is missing"#)
  }
}
