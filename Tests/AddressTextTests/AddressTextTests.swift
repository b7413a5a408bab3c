import AddressText
import Testing

@Suite struct IPLiteralTests {
  @Test("dotted quads: four numbers 0–255, no leading zeros, nothing else")
  func ipv4() {
    #expect(IPLiteral.ipv4Octets("10.0.0.5") == [10, 0, 0, 5])
    #expect(IPLiteral.ipv4Octets("255.255.255.255") == [255, 255, 255, 255])
    #expect(IPLiteral.ipv4Octets("0.0.0.0") == [0, 0, 0, 0])
    for invalid in ["", "10.0.0", "10.0.0.5.1", "010.0.0.5", "256.0.0.1", "1..2.3", "a.b.c.d", " 1.2.3.4", "1.2.3.-4"] {
      #expect(IPLiteral.ipv4Octets(invalid) == nil, "\(invalid)")
    }
    #expect(IPLiteral.isIPv4("127.0.0.1"))
    #expect(!IPLiteral.isIPv4("::1"))
    #expect(!IPLiteral.isIPv4("localhost"))
  }

  @Test("IPv6 in RFC 4291 text form, with :: once and an optional dotted-quad tail")
  func ipv6() {
    #expect(IPLiteral.ipv6Groups("::1") == [0, 0, 0, 0, 0, 0, 0, 1])
    #expect(IPLiteral.ipv6Groups("::") == [0, 0, 0, 0, 0, 0, 0, 0])
    #expect(IPLiteral.ipv6Groups("fe80::1:2") == [0xfe80, 0, 0, 0, 0, 0, 1, 2])
    #expect(IPLiteral.ipv6Groups("FE80:0:0:0:0:0:0:ABCD") == [0xfe80, 0, 0, 0, 0, 0, 0, 0xabcd])
    #expect(IPLiteral.ipv6Groups("1:2:3:4:5:6:7::") == [1, 2, 3, 4, 5, 6, 7, 0])
    #expect(IPLiteral.ipv6Groups("::ffff:10.0.0.1") == [0, 0, 0, 0, 0, 0xffff, 0x0a00, 0x0001])
    #expect(IPLiteral.ipv6Groups("1:2:3:4:5:6:1.2.3.4") == [1, 2, 3, 4, 5, 6, 0x0102, 0x0304])
    let invalid = [
      "", ":", "1::2::3", "1:2:3:4:5:6:7:8:9", "1:2:3:4:5:6:7", "12345::", "g::1", "[::1]", "fe80::1%eth0",
      "1.2.3.4::", "::1.2.3", "::010.0.0.1", "1:2:3:4:5:6:7::8",
    ]
    for text in invalid {
      #expect(IPLiteral.ipv6Groups(text) == nil, "\(text)")
    }
    #expect(IPLiteral.isIPv6("::1"))
    #expect(!IPLiteral.isIPv6("10.0.0.1"))
  }

  @Test("substrings parse like strings")
  func substrings() {
    let text = "[::1]:8080"
    #expect(IPLiteral.ipv6Groups(text.dropFirst().prefix(3)) == [0, 0, 0, 0, 0, 0, 0, 1])
  }
}

@Suite struct HostPortTextTests {
  @Test("IPv6 literals go in brackets; IPv4 addresses and host names do not")
  func format() {
    #expect(HostPortText.format(host: "10.0.0.5", port: 8080) == "10.0.0.5:8080")
    #expect(HostPortText.format(host: "backend-1.internal", port: 80) == "backend-1.internal:80")
    #expect(HostPortText.format(host: "::1", port: 2379) == "[::1]:2379")
    #expect(HostPortText.format(host: "fe80::1:2", port: 1) == "[fe80::1:2]:1")
  }
}
