import Foundation
import SwitchyardLab
import SwitchyardPKI
import SwitchyardTestSupport
import Testing

@testable import HAProxyKit

/// Certificates and crt-lists changed through the Runtime API of a real HAProxy (2.6 from PATH, 3.0 with
/// Debian 13's binary first in PATH), checked by TLS handshakes against its listener.
@Suite(.serialized) struct SSLRuntimeTests {
  /// A CA and leaf certificates (certificate and key in one PEM) for the names asked for.
  struct Certificates {
    let authority: CertificateAuthority
    let directory: String

    init(in directory: String) throws {
      self.directory = directory
      authority = try CertificateAuthority.create(in: directory + "/ca", commonName: "SSLRuntimeTests CA", days: 2)
    }

    /// A new certificate for `host` (each call a new key and serial), as one PEM.
    func pem(_ name: String, host: String) throws -> String {
      let pair = try authority.issue(
        name: name, commonName: host, usage: .server(ipAddresses: [], dnsNames: [host]), days: 2)
      return try String(contentsOfFile: pair.certificate, encoding: .utf8)
        + String(contentsOfFile: pair.key, encoding: .utf8)
    }
  }

  static func config(_ fixture: HAProxyFixture, tlsPort: Int, defaultPath: String, list: String) -> String {
    fixture.config().replacingOccurrences(
      of: "  default_backend be\n",
      with: "  bind 127.0.0.1:\(tlsPort) ssl crt \(defaultPath) crt-list \(list)\n"
        + "  http-request return status 200 content-type text/plain string ok\n")
  }

  @Test func certificatesAreAddedReplacedAndRemovedAtRuntime() async throws {
    try await HAProxyFixture.with { fixture in
      let certs = try Certificates(in: fixture.temporary.path("pki"))
      let tls = fixture.temporary.path("tls")
      try FileManager.default.createDirectory(atPath: tls + "/certs", withIntermediateDirectories: true)
      let (defaultPath, aPath, bPath, list) = (
        tls + "/default.pem", tls + "/certs/a.pem", tls + "/certs/b.pem", tls + "/crt-list"
      )
      try certs.pem("default", host: "default.test").write(toFile: defaultPath, atomically: true, encoding: .utf8)
      try certs.pem("a", host: "a.test").write(toFile: aPath, atomically: true, encoding: .utf8)
      try "\(aPath) a.test\n".write(toFile: list, atomically: true, encoding: .utf8)
      let tlsPort = try FreePort.allocate()
      try await fixture.installer.install(
        Self.config(fixture, tlsPort: tlsPort, defaultPath: defaultPath, list: list), at: fixture.state.configPath)
      let process = try await HAProxyProcess.start(stateDirectory: fixture.state, logger: quietLogger)
      let api = fixture.runtime
      let ca = certs.authority.certificate
      func served(_ name: String?) async throws -> PeerCertificate {
        try await TLSClient.handshake(port: tlsPort, serverName: name, trustRootsPEMFile: ca)
      }

      #expect(Set(try await api.certificatePaths()) == [defaultPath, aPath])
      let aInfo = try #require(try await api.certificateInfo(path: aPath))
      let aServed = try await served("a.test")
      #expect(aInfo.sha1Fingerprint == aServed.sha1Fingerprint && aInfo.subject.contains("a.test"))
      #expect(aInfo.serial.lowercased().hasSuffix(aServed.serialHex.drop { $0 == "0" }))
      #expect(try await api.certificateInfo(path: bPath) == nil)
      #expect(
        try await api.crtListEntries(list: list) == [CrtListEntry(certificatePath: aPath, sniFilters: ["a.test"])])
      #expect(try await served("b.test").dnsNames == ["default.test"])

      // Added: loaded, then named in the crt-list; served at once.
      let b1 = try certs.pem("b1", host: "b.test")
      try await api.installCertificate(path: bPath, pem: b1)
      try await api.addCrtListEntry(list: list, certificatePath: bPath, sniFilters: ["b.test"])
      let b1Served = try await served("b.test")
      #expect(b1Served.dnsNames == ["b.test"])
      #expect(try await api.crtListEntries(list: list).map(\.certificatePath) == [aPath, bPath])

      // Replaced: the next handshake gets the new one.
      try await api.installCertificate(path: bPath, pem: try certs.pem("b2", host: "b.test"))
      let b2Served = try await served("b.test")
      #expect(b2Served.dnsNames == ["b.test"] && b2Served.sha1Fingerprint != b1Served.sha1Fingerprint)
      #expect(try await api.certificateInfo(path: bPath)?.sha1Fingerprint == b2Served.sha1Fingerprint)

      // A payload HAProxy cannot load is refused, the transaction aborted, the old certificate kept.
      let broken = "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n"
      await #expect(throws: HAProxyError.self) { try await api.installCertificate(path: bPath, pem: broken) }
      #expect(!(try await api.send("show ssl cert")).contains("*"), "a transaction stayed open")
      #expect(try await served("b.test").sha1Fingerprint == b2Served.sha1Fingerprint)
      // Refused before a byte is sent; no error quotes the key.
      do {
        try await api.installCertificate(
          path: bPath, pem: b1.replacingOccurrences(of: "-----\n-----BEGIN", with: "-----\n\n-----BEGIN"))
        Issue.record("a payload with an empty line was sent")
      } catch let error as HAProxyError {
        #expect(error.code == .invalidCommand && !"\(error)".contains("PRIVATE KEY"), "\(error)")
      }
      for path in ["relative.pem", "/tmp/a b.pem", "/tmp/a;b.pem", "/tmp/a\nb.pem", "/tmp/../etc/x.pem"] {
        await #expect(throws: HAProxyError.self) { try await api.installCertificate(path: path, pem: b1) }
      }
      for filter in ["a b", "a.test\nshow", "", "-a.test", "a..test"] {
        await #expect(throws: HAProxyError.self) {
          try await api.addCrtListEntry(list: list, certificatePath: bPath, sniFilters: [filter])
        }
      }

      // Removed: HAProxy refuses while the crt-list names it; after the entry goes, the default is served.
      await #expect(throws: HAProxyError.self) { try await api.deleteCertificate(path: bPath) }
      try await api.deleteCrtListEntry(list: list, certificatePath: bPath)
      try await api.deleteCertificate(path: bPath)
      #expect(try await api.certificateInfo(path: bPath) == nil)
      #expect(try await served("b.test").dnsNames == ["default.test"])
      #expect(try await served(nil).dnsNames == ["default.test"])
      await #expect(throws: HAProxyError.self) { try await api.deleteCrtListEntry(list: list, certificatePath: bPath) }
      try await process.stop()
    }
  }

  @Test func repliesAreParsedAsBothReleasesPrintThem() throws {
    let list = """
      # /s/tls/crt-list
      /s/tls/certs/a.pem:1 a.test
      /s/tls/certs/b.pem:2 [alpn h2 ssl-min-ver TLSv1.2] b.test *.b.test !x.b.test
      /s/tls/certs/c.pem:3

      """
    #expect(
      RuntimeAPI.parseCrtList(list) == [
        CrtListEntry(certificatePath: "/s/tls/certs/a.pem", sniFilters: ["a.test"]),
        CrtListEntry(certificatePath: "/s/tls/certs/b.pem", sniFilters: ["b.test", "*.b.test", "!x.b.test"]),
        CrtListEntry(certificatePath: "/s/tls/certs/c.pem", sniFilters: []),
      ])
    #expect(
      RuntimeAPI.parseCertificatePaths("# transaction\n*/s/b.pem\n# filename\n/s/a.pem\n/s/b.pem\n\n") == [
        "/s/a.pem", "/s/b.pem",
      ])
  }
}
