import Crypto
import Foundation
import SwitchyardModel
import X509

/// A validated certificate chain with its private key, ready to serve.
///
/// Made only by ``validate(name:chainPEM:keyPEM:hosts:now:)`` or ``open(_:with:now:)``, so every bundle has
/// passed every check. ``description`` names the certificate and never includes the key.
public struct CertificateBundle: Sendable, CustomStringConvertible {
  /// The certificate's name.
  public let name: CertificateName
  /// The hosts it serves (SNI), sorted and unique; each covered by a DNS name of the leaf.
  public let hosts: [HostPattern]
  /// The leaf's subject (RFC 4514, non-printable characters escaped).
  public let subject: String
  /// The leaf's issuer (RFC 4514, non-printable characters escaped).
  public let issuer: String
  /// The leaf's serial number, lower-case hex.
  public let serialHex: String
  /// The start of the leaf's validity.
  public let notBefore: Date
  /// The end of the leaf's validity.
  public let notAfter: Date
  /// SHA-256 of the leaf's DER, lower-case hex.
  public let sha256Fingerprint: String
  /// SHA-1 of the leaf's DER, upper-case hex, as HAProxy's `show ssl cert <file>` prints it.
  public let sha1Fingerprint: String
  /// The chain as canonical PEM blocks, leaf first.
  public let chainBlocks: [String]
  /// The key as one canonical PEM block, of the type it came in.
  let keyBlock: String

  /// The chain, leaf first, as canonical PEM ending in a newline: what a record stores.
  public var chainPEM: String { chainBlocks.joined(separator: "\n") + "\n" }

  /// What HAProxy's `crt` file and `set ssl cert` payload hold: the chain, then the key, PEM blocks joined
  /// by newlines, no blank line anywhere (a Runtime API payload ends at one), ending in a newline.
  public var haproxyPEM: String { (chainBlocks + [keyBlock]).joined(separator: "\n") + "\n" }

  /// `certificate shop (CN=shop.example.com, hosts shop.example.com, not after 2027-01-01T00:00:00Z)`.
  public var description: String {
    "certificate \(name) (\(subject), hosts \(hosts.map(\.text).joined(separator: ",")), "
      + "not after \(CertificateDates.text(notAfter)))"
  }

  /// Most hosts one certificate serves.
  public static let maxHosts = 100
  /// Most certificates in one chain.
  public static let maxChainLength = 8
  /// How far ahead of `now` a certificate's `notBefore` may be (clock skew between machines).
  public static let allowedSkew: TimeInterval = 300

  /// Validates chain and key.
  ///
  /// The chain's PEM parses and holds only certificates, at least one, leaf first, each next one the issuer
  /// of the one before (names, and signature with that issuer's key); the key is EC P-256 or P-384 or RSA
  /// of 2048 to 8192 bits, not encrypted, and matches the leaf; every certificate is valid at `now` (a
  /// `notBefore` up to ``allowedSkew`` ahead is accepted); each host is a DNS name or wildcard covered by a
  /// DNS name of the leaf (a wildcard name covers one label, RFC 6125); no hosts given means the leaf's DNS
  /// names, and a leaf without any is refused.
  public static func validate(
    name: CertificateName, chainPEM: String, keyPEM: String, hosts: [HostPattern]?, now: Date
  ) throws(CertificateProblem) -> CertificateBundle {
    do throws(CertificateProblem) {
      let chain = try parseChain(chainPEM)
      let leaf = chain[0].certificate
      try checkIssuers(chain)
      try checkDates(chain, now: now)
      let key = try parseKey(keyPEM)
      try checkKeyType(leaf.publicKey)
      guard key.privateKey.publicKey == leaf.publicKey else {
        throw CertificateProblem(
          field: "key", reason: "the key does not match the leaf certificate (\(printable(leaf.subject.description)))")
      }
      let dnsNames = try leafDNSNames(leaf)
      let served = try coveredHosts(hosts, dnsNames: dnsNames, leaf: leaf)
      let der = chain[0].der
      return CertificateBundle(
        name: name,
        hosts: served,
        subject: printable(leaf.subject.description),
        issuer: printable(leaf.issuer.description),
        serialHex: hexString(leaf.serialNumber.bytes),
        notBefore: leaf.notValidBefore,
        notAfter: leaf.notValidAfter,
        sha256Fingerprint: hexString(SHA256.hash(data: der)),
        sha1Fingerprint: hexString(Insecure.SHA1.hash(data: der)).uppercased(),
        chainBlocks: chain.map { PEMBlock(label: "CERTIFICATE", hasHeaders: false, der: $0.der).pem },
        keyBlock: key.block.pem
      )
    } catch {
      throw error.named(name)
    }
  }

  /// The record to write to etcd: the chain, the key sealed with `key` for this name, the hosts and the
  /// end of validity.
  public func record(sealedWith key: ClusterKey, source: CertificateRecord.Source) -> CertificateRecord {
    CertificateRecord(
      name: name, chainPEM: chainPEM, sealedKey: key.seal(Array(keyBlock.utf8), for: name), hosts: hosts,
      source: source, notAfter: notAfter, modRevision: 0)
  }

  /// Opens the record's sealed key and validates everything again: a record written by anything but
  /// `switchyard cert` is untrusted. Its `not_after` must be the leaf's.
  public static func open(_ record: CertificateRecord, with key: ClusterKey, now: Date) throws(CertificateProblem)
    -> CertificateBundle
  {
    let keyBytes = try key.open(record.sealedKey, for: record.name)
    guard let keyPEM = String(validating: keyBytes, as: UTF8.self) else {
      throw CertificateProblem(
        name: record.name.rawValue, field: "sealed key", reason: "the sealed key is not PEM text")
    }
    let bundle = try validate(
      name: record.name, chainPEM: record.chainPEM, keyPEM: keyPEM, hosts: record.hosts, now: now)
    guard bundle.notAfter == record.notAfter else {
      throw CertificateProblem(
        name: record.name.rawValue, field: "not_after",
        reason:
          "the record's not_after (\(CertificateDates.text(record.notAfter))) is not the leaf's (\(CertificateDates.text(bundle.notAfter)))"
      )
    }
    return bundle
  }

  private init(
    name: CertificateName, hosts: [HostPattern], subject: String, issuer: String, serialHex: String,
    notBefore: Date, notAfter: Date, sha256Fingerprint: String, sha1Fingerprint: String, chainBlocks: [String],
    keyBlock: String
  ) {
    self.name = name
    self.hosts = hosts
    self.subject = subject
    self.issuer = issuer
    self.serialHex = serialHex
    self.notBefore = notBefore
    self.notAfter = notAfter
    self.sha256Fingerprint = sha256Fingerprint
    self.sha1Fingerprint = sha1Fingerprint
    self.chainBlocks = chainBlocks
    self.keyBlock = keyBlock
  }
}
