import Crypto
import Foundation
import SwiftASN1
import SwitchyardProcess
import Testing
import X509

@testable import SwitchyardPKI

@Suite struct CertificateAuthorityTests {
  @Test func theCAIsSelfSignedWithTheCAExtensionsOnly() throws {
    let directory = try TemporaryDirectory(prefix: "switchyard-pki")
    defer { directory.remove() }
    let before = Date()
    let authority = try CertificateAuthority.create(in: directory.path("pki"), commonName: "Test CA", days: 3650)
    let ca = try certificate(authority.certificate)
    #expect(ca.version == .v3)
    #expect(ca.subject == (try DistinguishedName { CommonName("Test CA") }))
    #expect(ca.issuer == ca.subject)
    #expect(ca.signatureAlgorithm == .ecdsaWithSHA256)
    #expect(ca.publicKey.isValidSignature(ca.signature, for: ca))
    try expectValidity(of: ca, days: 3650, issuedAfter: before)
    #expect(
      ca.extensions.map(\.oid) == [
        .X509ExtensionID.basicConstraints, .X509ExtensionID.keyUsage, .X509ExtensionID.subjectKeyIdentifier,
      ])
    #expect(ca.extensions.map(\.critical) == [true, true, false])
    #expect(try ca.extensions.basicConstraints == .isCertificateAuthority(maxPathLength: nil))
    #expect(try ca.extensions.keyUsage == KeyUsage(keyCertSign: true, cRLSign: true))
    #expect(try ca.extensions.subjectKeyIdentifier == SubjectKeyIdentifier(hash: ca.publicKey))
    try expectKey("\(directory.path("pki"))/ca-key.pem", matches: ca)
    #expect(try permissions(directory.path("pki")) == 0o700)
    #expect(try CertificateAuthority(existingIn: directory.path("pki")).certificate == authority.certificate)
  }

  @Test func aServerCertificateHasItsNamesBothUsagesAndTheCAsKeyIdentifier() async throws {
    let directory = try TemporaryDirectory(prefix: "switchyard-pki")
    defer { directory.remove() }
    let authority = try CertificateAuthority.create(in: directory.path("pki"), commonName: "Test CA", days: 30)
    let before = Date()
    let pair = try authority.issue(
      name: "server", commonName: "server.tls",
      usage: .server(ipAddresses: ["127.0.0.1", "::1", "2001:db8::a:b"], dnsNames: ["localhost", "node.example"]),
      days: 365)
    #expect(pair == KeyPair(certificate: directory.path("pki/server.pem"), key: directory.path("pki/server-key.pem")))
    let ca = try certificate(authority.certificate)
    let leaf = try certificate(pair.certificate)
    #expect(leaf.version == .v3)
    #expect(leaf.subject == (try DistinguishedName { CommonName("server.tls") }))
    #expect(leaf.issuer == ca.subject)
    #expect(leaf.signatureAlgorithm == .ecdsaWithSHA256)
    #expect(leaf.serialNumber != ca.serialNumber)
    try expectValidity(of: leaf, days: 365, issuedAfter: before)
    try expectLeafExtensions(
      of: leaf, issuedBy: ca, lastOIDs: [.X509ExtensionID.extendedKeyUsage, .X509ExtensionID.subjectAlternativeName])
    #expect(try leaf.extensions.extendedKeyUsage == ExtendedKeyUsage([.serverAuth, .clientAuth]))
    let names = try #require(try leaf.extensions.subjectAlternativeNames)
    #expect(
      Array(names) == [
        .ipAddress(ASN1OctetString(contentBytes: [127, 0, 0, 1])),
        .ipAddress(ASN1OctetString(contentBytes: [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1])),
        .ipAddress(ASN1OctetString(contentBytes: [0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x0a, 0, 0x0b])),
        .dnsName("localhost"), .dnsName("node.example"),
      ])
    try expectKey(pair.key, matches: leaf)
    for (hostname, ip) in [
      ("localhost", nil), (nil, "127.0.0.1"), (nil, "::1"), (nil, "2001:db8::a:b"), ("node.example", "127.0.0.1"),
    ] {
      #expect(try await verifies(leaf, from: ca, hostname: hostname, ip: ip), "\(hostname ?? ip ?? "")")
    }
    #expect(try await !verifies(leaf, from: ca, hostname: "elsewhere.example", ip: nil))
    #expect(try await !verifies(leaf, from: ca, hostname: nil, ip: "127.0.0.2"))
  }

  @Test func aClientCertificateIsForClientsOnlyAndNamesNoHosts() async throws {
    let directory = try TemporaryDirectory(prefix: "switchyard-pki")
    defer { directory.remove() }
    let authority = try CertificateAuthority.create(in: directory.path("pki"), commonName: "Test CA", days: 30)
    let pair = try authority.issue(name: "lb1", commonName: "lb1.tls", usage: .client, days: 7)
    let ca = try certificate(authority.certificate)
    let leaf = try certificate(pair.certificate)
    #expect(leaf.subject == (try DistinguishedName { CommonName("lb1.tls") }))
    try expectValidity(of: leaf, days: 7, issuedAfter: Date(timeIntervalSinceNow: -60))
    try expectLeafExtensions(of: leaf, issuedBy: ca, lastOIDs: [.X509ExtensionID.extendedKeyUsage])
    #expect(try leaf.extensions.extendedKeyUsage == ExtendedKeyUsage([.clientAuth]))
    #expect(try leaf.extensions.subjectAlternativeNames == nil)
    try expectKey(pair.key, matches: leaf)
    #expect(try await verifies(leaf, from: ca, hostname: nil, ip: nil))

    let other = try CertificateAuthority.create(in: directory.path("other"), commonName: "Test CA", days: 30)
    #expect(try await !verifies(leaf, from: try certificate(other.certificate), hostname: nil, ip: nil))
  }

  @Test func reissuingReplacesBothFilesAndLeavesNothingElse() throws {
    let directory = try TemporaryDirectory(prefix: "switchyard-pki")
    defer { directory.remove() }
    let pki = directory.path("pki")
    let authority = try CertificateAuthority.create(in: pki, commonName: "Test CA", days: 30)
    let first = try authority.issue(name: "backend-1", commonName: "backend-1.tls", usage: .client, days: 1)
    let oldKey = try String(contentsOfFile: first.key, encoding: .utf8)
    let oldSerial = try certificate(first.certificate).serialNumber
    let second = try CertificateAuthority(existingIn: pki)
      .issue(name: "backend-1", commonName: "backend-1.tls", usage: .client, days: 365)
    #expect(second == first)
    #expect(try String(contentsOfFile: second.key, encoding: .utf8) != oldKey)
    let renewed = try certificate(second.certificate)
    #expect(renewed.serialNumber != oldSerial)
    try expectKey(second.key, matches: renewed)
    let files = try FileManager.default.contentsOfDirectory(atPath: pki).sorted()
    #expect(files == ["backend-1-key.pem", "backend-1.pem", "ca-key.pem", "ca.pem"])
  }

  @Test func expiryIsReadFromTheCertificate() throws {
    let directory = try TemporaryDirectory(prefix: "switchyard-pki")
    defer { directory.remove() }
    let authority = try CertificateAuthority.create(in: directory.path("pki"), commonName: "Test CA", days: 30)
    let soon = try authority.issue(name: "soon", commonName: "soon.tls", usage: .client, days: 1)
    let later = try authority.issue(name: "later", commonName: "later.tls", usage: .client, days: 30)
    #expect(try CertificateAuthority.expires(soon.certificate, within: .seconds(7 * 86_400)))
    #expect(try !CertificateAuthority.expires(soon.certificate, within: .seconds(86_400 - 60)))
    #expect(try !CertificateAuthority.expires(later.certificate, within: .seconds(7 * 86_400)))
    #expect(try CertificateAuthority.expires(later.certificate, within: .seconds(31 * 86_400)))
    let notAfter = try certificate(later.certificate).notValidAfter
    #expect(try CertificateAuthority.expiry(of: later.certificate) == OpenSSLTime.format(notAfter))
    #expect(throws: SwitchyardPKI.CertificateError.self) {
      try CertificateAuthority.expires(directory.path("pki/missing.pem"), within: .seconds(1))
    }
    #expect(throws: SwitchyardPKI.CertificateError.self) { try CertificateAuthority.expiry(of: soon.key) }
  }

  @Test func datesPrintAsOpenSSLPrintsThem() {
    #expect(OpenSSLTime.format(Date(timeIntervalSince1970: 1_796_329_993)) == "Dec  3 20:33:13 2026 GMT")
    #expect(OpenSSLTime.format(Date(timeIntervalSince1970: 1_800_000_000)) == "Jan 15 08:00:00 2027 GMT")
    #expect(OpenSSLTime.format(Date(timeIntervalSince1970: 0)) == "Jan  1 00:00:00 1970 GMT")
  }

  @Test func anIncompleteCAOrABadAddressIsAnError() throws {
    let directory = try TemporaryDirectory(prefix: "switchyard-pki")
    defer { directory.remove() }
    #expect(throws: SwitchyardPKI.CertificateError.self) {
      try CertificateAuthority(existingIn: directory.path("none"))
    }
    let authority = try CertificateAuthority.create(in: directory.path("pki"), commonName: "Test CA", days: 30)
    let error = #expect(throws: SwitchyardPKI.CertificateError.self) {
      try authority.issue(
        name: "bad", commonName: "bad", usage: .server(ipAddresses: ["localhost"], dnsNames: []), days: 1)
    }
    #expect(error?.description.contains("localhost is not an IP address") == true)
    #expect(!FileManager.default.fileExists(atPath: directory.path("pki/bad.pem")))
  }
}

// MARK: - Helpers

func certificate(_ path: String) throws -> Certificate {
  try Certificate(pemEncoded: String(contentsOfFile: path, encoding: .utf8))
}

func permissions(_ path: String) throws -> Int {
  try #require(FileManager.default.attributesOfItem(atPath: path)[.posixPermissions] as? Int)
}

/// Valid from the second it was issued (not ahead of now, not before `issuedAfter` truncated), for `days`.
private func expectValidity(of certificate: Certificate, days: Int, issuedAfter: Date) throws {
  let start = certificate.notValidBefore
  #expect(start <= Date())
  #expect(start >= Date(timeIntervalSince1970: issuedAfter.timeIntervalSince1970.rounded(.down)))
  #expect(certificate.notValidAfter.timeIntervalSince(start) == TimeInterval(days) * 86_400)
}

/// The extensions every leaf has, in the order the `openssl` configuration listed them, then `lastOIDs`.
private func expectLeafExtensions(
  of leaf: Certificate, issuedBy ca: Certificate, lastOIDs: [ASN1ObjectIdentifier]
) throws {
  #expect(ca.publicKey.isValidSignature(leaf.signature, for: leaf))
  #expect(
    leaf.extensions.map(\.oid)
      == [
        .X509ExtensionID.basicConstraints, .X509ExtensionID.keyUsage, .X509ExtensionID.subjectKeyIdentifier,
        .X509ExtensionID.authorityKeyIdentifier,
      ] + lastOIDs)
  #expect(leaf.extensions.map(\.critical) == [true, true, false, false] + lastOIDs.map { _ in false })
  #expect(try leaf.extensions.basicConstraints == .notCertificateAuthority)
  #expect(try leaf.extensions.keyUsage == KeyUsage(digitalSignature: true, keyEncipherment: true))
  #expect(try leaf.extensions.subjectKeyIdentifier == SubjectKeyIdentifier(hash: leaf.publicKey))
  let caKeyIdentifier = try #require(try ca.extensions.subjectKeyIdentifier).keyIdentifier
  #expect(try leaf.extensions.authorityKeyIdentifier == AuthorityKeyIdentifier(keyIdentifier: caKeyIdentifier))
}

/// The key file is PKCS#8 P-256 with mode 0600, and its public key is the certificate's; both files end in
/// a newline, as `openssl` writes them.
func expectKey(_ path: String, matches certificate: Certificate) throws {
  let pem = try String(contentsOfFile: path, encoding: .utf8)
  #expect(pem.hasPrefix("-----BEGIN PRIVATE KEY-----\n") && pem.hasSuffix("-----END PRIVATE KEY-----\n"))
  let certificatePEM = try String(
    contentsOfFile: path.replacingOccurrences(of: "-key.pem", with: ".pem"), encoding: .utf8)
  #expect(certificatePEM.hasSuffix("-----END CERTIFICATE-----\n"))
  let key = try P256.Signing.PrivateKey(pemRepresentation: pem)
  #expect(Certificate.PublicKey(key.publicKey) == certificate.publicKey)
  #expect(try permissions(path) == 0o600)
}

/// Whether swift-certificates' verifier accepts `leaf` with only `ca` trusted, for the given server name.
private func verifies(_ leaf: Certificate, from ca: Certificate, hostname: String?, ip: String?) async throws -> Bool {
  var verifier = Verifier(rootCertificates: CertificateStore([ca])) {
    RFC5280Policy()
    if hostname != nil || ip != nil { ServerIdentityPolicy(serverHostname: hostname, serverIP: ip) }
  }
  switch await verifier.validate(leaf: leaf, intermediates: CertificateStore()) {
  case .validCertificate(let chain): return Array(chain) == [leaf, ca]
  case .couldNotValidate: return false
  }
}
