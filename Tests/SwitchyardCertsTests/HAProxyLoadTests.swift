import Foundation
import SwitchyardCerts
import SwitchyardProcess
import Testing

/// The crt files that ``CertificateBundle/haproxyPEM`` makes, checked by the real HAProxy on PATH
/// (`haproxy -c`): EC and RSA keys, in every PEM encoding accepted, with and without intermediates.
@Suite(.serialized) struct HAProxyLoadTests {
  let ca: TestIssuer.Issued

  init() throws { ca = try TestIssuer.authority() }

  /// Runs `haproxy -c` on a config that binds a free loopback port with `crt` set to `pem`; throws when HAProxy
  /// refuses it (exit status not 0). 2.6 says "Configuration file is valid"; 3.0 says nothing.
  func check(_ pem: String) async throws {
    let haproxy = try ExecutablePath.resolve("haproxy")
    let directory = try TemporaryDirectory(prefix: "switchyard-certs-test")
    defer { directory.remove() }
    let crt = directory.path("shop.pem")
    try pem.write(toFile: crt, atomically: true, encoding: .utf8)
    let config = directory.path("haproxy.cfg")
    try """
    defaults
      mode http
      timeout connect 1s
      timeout client 1s
      timeout server 1s
    frontend https
      bind 127.0.0.1:\(try FreePort.allocate()) ssl crt \(crt)
      http-request return status 200

    """.write(toFile: config, atomically: true, encoding: .utf8)
    try await ManagedProcess.run(haproxy, arguments: ["-c", "-f", config], timeout: .seconds(30))
  }

  func bundle(_ leaf: TestIssuer.Issued, chain: [TestIssuer.Issued] = []) throws -> CertificateBundle {
    try CertificateBundle.validate(
      name: try CertificateName(validating: "shop"), chainPEM: ([leaf] + chain).map(\.pem).joined(separator: "\n"),
      keyPEM: leaf.key.pem, hosts: nil, now: Date())
  }

  @Test func ecKeysInBothEncodingsLoad() async throws {
    let intermediate = try TestIssuer.intermediate(name: "Test Intermediate", issuer: ca)
    for type in [TestIssuer.KeyType.p256, .p384] {
      for legacy in [false, true] {
        let leaf = try TestIssuer.leaf(
          commonName: "shop.example.com", dnsNames: ["shop.example.com"], issuer: intermediate, keyType: type,
          legacyPEM: legacy)
        try await check(try bundle(leaf, chain: [intermediate]).haproxyPEM)
      }
    }
  }

  @Test func rsaKeysInBothEncodingsLoad() async throws {
    for legacy in [false, true] {
      let leaf = try TestIssuer.leaf(
        commonName: "shop.example.com", dnsNames: ["shop.example.com"], issuer: ca, keyType: .rsa(bits: 2048),
        legacyPEM: legacy)
      try await check(try bundle(leaf).haproxyPEM)
    }
  }

  /// The check can fail: a crt file whose key is another key's is refused by HAProxy.
  @Test func aMismatchedKeyIsRefusedByHAProxyToo() async throws {
    let leaf = try TestIssuer.leaf(commonName: "shop.example.com", dnsNames: ["shop.example.com"], issuer: ca)
    let other = try TestIssuer.key(.p256)
    await #expect(throws: (any Error).self) { try await check(leaf.pem + "\n" + other.pem + "\n") }
  }
}
