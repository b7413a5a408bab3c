import SwitchyardAgent
import SwitchyardModel
import Testing

@Suite("Advertised address of an instance that listens everywhere")
struct AdvertisedAddressTests {
  typealias Candidate = AdvertisedAddress.Candidate

  @Test("A container's only address is chosen; loopback and link-local are passed over")
  func onlyAddress() throws {
    let candidates = [
      Candidate(interface: "lo", address: "127.0.0.1"),
      Candidate(interface: "lo", address: "::1"),
      Candidate(interface: "eth0", address: "10.89.0.7"),
      Candidate(interface: "eth0", address: "fe80::a8c1:abff:fe4e:3ac5"),
    ]
    #expect(try AdvertisedAddress.choose(from: candidates, ipv6: false).text == "10.89.0.7")
  }

  @Test("IPv6 listening chooses the one global IPv6 address")
  func ipv6() throws {
    let candidates = [
      Candidate(interface: "eth0", address: "10.89.0.7"),
      Candidate(interface: "eth0", address: "fe80::1"),
      Candidate(interface: "eth0", address: "fd00:89::7"),
    ]
    #expect(try AdvertisedAddress.choose(from: candidates, ipv6: true).text == "fd00:89::7")
  }

  @Test("The same address on two interfaces counts once")
  func duplicates() throws {
    let candidates = [
      Candidate(interface: "eth0", address: "10.0.0.5"), Candidate(interface: "eth0:1", address: "10.0.0.5"),
    ]
    #expect(try AdvertisedAddress.choose(from: candidates, ipv6: false).text == "10.0.0.5")
  }

  @Test("Several addresses: no guess, the error lists them and names --advertise")
  func several() {
    let candidates = [
      Candidate(interface: "eth0", address: "10.0.0.5"), Candidate(interface: "eth1", address: "192.168.1.9"),
    ]
    let error = #expect(throws: AdvertisedAddress.Failure.self) {
      try AdvertisedAddress.choose(from: candidates, ipv6: false)
    }
    let text = error?.description ?? ""
    #expect(text.contains("10.0.0.5 (eth0)") && text.contains("192.168.1.9 (eth1)") && text.contains("--advertise"))
  }

  @Test("Only loopback and link-local: an error that names --advertise")
  func none() {
    let candidates = [
      Candidate(interface: "lo", address: "127.0.0.1"), Candidate(interface: "eth0", address: "169.254.3.4"),
      Candidate(interface: "eth0", address: "not an address"),
    ]
    let error = #expect(throws: AdvertisedAddress.Failure.self) {
      try AdvertisedAddress.choose(from: candidates, ipv6: false)
    }
    #expect(error?.description.contains("no IPv4 address") == true)
    #expect(error?.description.contains("--advertise") == true)
  }

  @Test("This host's interfaces include loopback, so reading them works")
  func interfaces() {
    let addresses = AdvertisedAddress.interfaceAddresses().map(\.address)
    #expect(addresses.contains("127.0.0.1"))
  }
}
