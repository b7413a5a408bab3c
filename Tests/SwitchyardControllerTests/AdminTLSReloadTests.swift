import Foundation
import Logging
import NIOCore
import NIOPosix
import NIOSSL
import SwitchyardController
import SwitchyardPKI
import SwitchyardProcess
import SwitchyardTestSupport
import Testing

/// The admin server's certificate reload, handshake by handshake, without a server: what the configuration's
/// context callback hands NIOSSL after the files change.
@Suite("Admin TLS reload")
struct AdminTLSReloadTests {
  @Test("a renewed pair is served to the next handshake; a pair that does not load or match is not")
  func reload() async throws {
    let directory = try TemporaryDirectory(prefix: "admin-tls-reload")
    defer { directory.remove() }
    let files = try TLSFiles.generate(in: directory.path)
    let authority = try CertificateAuthority(existingIn: directory.path)
    let tls = try AdminTLS(certificatePath: files.serverCertificate, keyPath: files.serverKey)
    let configuration = tls.reloadingConfiguration(logger: Logger(label: "test"), checkInterval: .zero)
    let callback = try #require(configuration.sslContextCallback)

    /// The first certificate the next handshake gets.
    func served() async throws -> NIOSSLCertificate? {
      let promise = MultiThreadedEventLoopGroup.singleton.next().makePromise(
        of: NIOSSLContextConfigurationOverride.self)
      callback(NIOSSLClientExtensionValues(serverHostname: nil), promise)
      guard case .certificate(let certificate) = try await promise.futureResult.get().certificateChain?.first else {
        return nil
      }
      return certificate
    }
    func onDisk() throws -> NIOSSLCertificate { try NIOSSLCertificate.fromPEMFile(files.serverCertificate)[0] }
    let server = CertificateAuthority.Usage.server(ipAddresses: ["127.0.0.1"], dnsNames: ["localhost"])

    let first = try onDisk()
    #expect(try await served() == first)

    // Renewed: both files replaced.
    try authority.issue(name: "server", commonName: "localhost", usage: server, days: 30)
    let second = try onDisk()
    #expect(second != first)
    #expect(try await served() == second)

    // A key of another pair: refused, the last good pair stays.
    let other = try authority.issue(name: "other", commonName: "other", usage: server, days: 30)
    try FileManager.default.removeItem(atPath: files.serverKey)
    try FileManager.default.copyItem(atPath: other.key, toPath: files.serverKey)
    #expect(try await served() == second)
    // Not PEM at all: refused too.
    try "not a certificate".write(toFile: files.serverCertificate, atomically: true, encoding: .utf8)
    #expect(try await served() == second)

    // A good pair again (the other one, now both files): served.
    try FileManager.default.removeItem(atPath: files.serverCertificate)
    try FileManager.default.copyItem(atPath: other.certificate, toPath: files.serverCertificate)
    let third = try onDisk()
    #expect(try await served() == third)
  }

  @Test("the files are looked at no more often than the check interval")
  func checkInterval() async throws {
    let directory = try TemporaryDirectory(prefix: "admin-tls-interval")
    defer { directory.remove() }
    let files = try TLSFiles.generate(in: directory.path)
    let authority = try CertificateAuthority(existingIn: directory.path)
    let tls = try AdminTLS(certificatePath: files.serverCertificate, keyPath: files.serverKey)
    let callback = try #require(
      tls.reloadingConfiguration(logger: Logger(label: "test"), checkInterval: .seconds(3600)).sslContextCallback)
    let first = try NIOSSLCertificate.fromPEMFile(files.serverCertificate)[0]
    try authority.issue(
      name: "server", commonName: "localhost", usage: .server(ipAddresses: ["127.0.0.1"], dnsNames: []), days: 30)
    let promise = MultiThreadedEventLoopGroup.singleton.next().makePromise(of: NIOSSLContextConfigurationOverride.self)
    callback(NIOSSLClientExtensionValues(serverHostname: nil), promise)
    let chain = try await promise.futureResult.get().certificateChain
    guard case .certificate(let served) = chain?.first else {
      Issue.record("no certificate")
      return
    }
    #expect(served == first)
  }
}
