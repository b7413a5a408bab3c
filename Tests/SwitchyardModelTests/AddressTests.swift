import Testing

@testable import SwitchyardModel

@Suite("Addresses")
struct AddressTests {
  @Test(
    "accepts IPv4, IPv6 and host names",
    arguments: [
      ("10.0.0.5", Address.Kind.ipv4, "10.0.0.5", "10.0.0.5:80"),
      ("0.0.0.1", .ipv4, "0.0.0.1", "0.0.0.1:80"),
      ("255.255.255.255", .ipv4, "255.255.255.255", "255.255.255.255:80"),
      ("::1", .ipv6, "::1", "[::1]:80"),
      ("2001:DB8::A", .ipv6, "2001:db8::a", "[2001:db8::a]:80"),
      ("2001:db8:0:0:0:0:0:1", .ipv6, "2001:db8:0:0:0:0:0:1", "[2001:db8:0:0:0:0:0:1]:80"),
      ("1:2:3:4:5:6:7::", .ipv6, "1:2:3:4:5:6:7::", "[1:2:3:4:5:6:7::]:80"),
      ("::2:3:4:5:6:7:8", .ipv6, "::2:3:4:5:6:7:8", "[::2:3:4:5:6:7:8]:80"),
      ("fe80::0001", .ipv6, "fe80::0001", "[fe80::0001]:80"),
      ("::ffff:10.0.0.1", .ipv6, "::ffff:10.0.0.1", "[::ffff:10.0.0.1]:80"),
      ("1:2:3:4:5:6:1.2.3.4", .ipv6, "1:2:3:4:5:6:1.2.3.4", "[1:2:3:4:5:6:1.2.3.4]:80"),
      ("localhost", .hostname, "localhost", "localhost:80"),
      ("Backend-1.Example.COM", .hostname, "backend-1.example.com", "backend-1.example.com:80"),
      ("1a.example", .hostname, "1a.example", "1a.example:80"),
      ("0x7f", .hostname, "0x7f", "0x7f:80"),
    ]
  )
  func accepts(text: String, kind: Address.Kind, stored: String, hostPort: String) throws {
    let address = try Address(validating: text)
    #expect(address.kind == kind)
    #expect(address.text == stored && address.description == stored)
    #expect(address.hostPort(80) == hostPort)
    #expect(!address.isUnspecified)
  }

  @Test(
    "refuses what is not an address",
    arguments: [
      "", " ", "256.1.1.1", "1.2.3", "1.2.3.4.5", "01.2.3.4", "1.2.3.04", "1.2.3.-4", "1.2.3.4\n", "１.2.3.4",
      ":::1", "[::1", "[::1]", "::1]", "1::2::3", "1:2:3:4:5:6:7:8:9", "1:2:3:4:5:6:7", "1:2:3:4:5:6:7:8::",
      "12345::", "g::1", "::+1", "fe80::1%eth0", "::1.2.3", "1.2.3.4::", "::ffff:256.0.0.1", ":1", "1:", "::::",
      "-a", "a-", "a..b", ".a", "a.", "a_b", "a b", "a\u{0}b", "é", "a.1", "*", "unix@/x", "${X}",
      String(repeating: "a", count: 64), String(repeating: "a.", count: 127) + "a",
    ]
  )
  func refuses(text: String) {
    let error = #expect(throws: RegistrationError.self) { try Address(validating: text) }
    #expect(error?.field == "address" && error?.code == .invalidField)
  }

  @Test("knows the unspecified addresses", arguments: ["0.0.0.0", "::", "0:0:0:0:0:0:0:0", "::0", "::ffff:0.0.0.0"])
  func unspecified(text: String) throws {
    #expect(try Address(validating: text).isUnspecified)
  }

  @Test(
    "knows which addresses reach only this machine",
    arguments: [
      ("127.0.0.1", true), ("127.255.255.254", true), ("127.1.2.3", true), ("::1", true),
      ("0:0:0:0:0:0:0:1", true), ("::ffff:127.0.0.1", true), ("localhost", true), ("LocalHost", true),
      ("0.0.0.0", false), ("::", false), ("::ffff:0.0.0.0", false), ("128.0.0.1", false), ("126.255.255.255", false),
      ("10.0.0.1", false), ("192.168.1.1", false), ("::2", false), ("1::1", false), ("::127.0.0.1", false),
      ("::ffff:10.0.0.1", false), ("fe80::1", false), ("localhost.example", false), ("mylocalhost", false),
      ("lb1.internal", false),
    ]
  )
  func loopback(text: String, isLoopback: Bool) throws {
    #expect(try Address(validating: text).isLoopback == isLoopback)
  }

  @Test("host:port for flags accepts the unspecified address, which a registration refuses")
  func hostPort() throws {
    let listen = try HostPort(parsing: "0.0.0.0:8080")
    #expect(listen.address.isUnspecified && listen.port == 8080 && listen.description == "0.0.0.0:8080")
    #expect(try HostPort(parsing: "[::]:8080").description == "[::]:8080")
    #expect(try HostPort(parsing: "backend-1:1").description == "backend-1:1")
    #expect(throws: RegistrationError.self) { try Registration(address: listen.address, port: listen.port) }
    let error = #expect(throws: RegistrationError.self) { try HostPort(parsing: "a b:80") }
    #expect(error?.code == .invalidValue && error?.field == nil)
  }
}
