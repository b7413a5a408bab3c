import Crypto
import Foundation
import X509

#if canImport(Glibc)
  import Glibc
#endif

/// A private key and the certificate for it, as PEM files.
public struct KeyPair: Sendable, Hashable, Codable {
  /// The certificate.
  public var certificate: String
  /// Its private key (mode 0600).
  public var key: String

  /// Names an existing pair.
  public init(certificate: String, key: String) {
    self.certificate = certificate
    self.key = key
  }
}

/// A small certificate authority kept as PEM files in one directory, made and signed in-process with
/// swift-certificates and swift-crypto: no `openssl` command and no configuration files.
///
/// Keys are P-256, written as PKCS#8 (`PRIVATE KEY`): every TLS stack involved (Go's in etcd, BoringSSL in
/// swift-nio-ssl, HAProxy's OpenSSL) accepts them, and they take microseconds to generate where RSA takes up
/// to a second. A CA whose key is SEC1 (`EC PRIVATE KEY`) or was made by `openssl` is read as well.
public struct CertificateAuthority: Sendable {
  /// What a leaf certificate may be used for.
  public enum Usage: Sendable, Hashable {
    /// A server that is also a TLS client with the same certificate (etcd members talk to each other,
    /// and etcd 3.4 connects to its own client port for its JSON gateway): serverAuth and clientAuth, for
    /// the given IP addresses and DNS names.
    case server(ipAddresses: [String], dnsNames: [String])
    /// A TLS client: clientAuth only.
    case client
  }

  /// The directory that holds `ca.pem` and `ca-key.pem`.
  public let directory: String

  /// The CA's certificate, which both sides of every connection trust.
  public var certificate: String { "\(directory)/ca.pem" }
  private var key: String { "\(directory)/ca-key.pem" }

  /// The CA in `directory`; fails when its files are missing.
  public init(existingIn directory: String) throws {
    self.directory = directory
    for path in [certificate, key] where !FileManager.default.isReadableFile(atPath: path) {
      throw CertificateError("the certificate authority in \(directory) is incomplete: \(path) is missing")
    }
  }

  private init(directory: String) { self.directory = directory }

  /// Creates a new CA in `directory` (created with mode 0700 if missing), replacing any CA there.
  ///
  /// The CA certificate is self-signed, with basic constraints `CA:TRUE` and key usage
  /// `keyCertSign, cRLSign` (both critical) and a subject key identifier.
  public static func create(in directory: String, commonName: String, days: Int) throws -> CertificateAuthority {
    try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
    chmod(directory, 0o700)
    let authority = CertificateAuthority(directory: directory)
    try Self.install(
      KeyPair(certificate: authority.certificate, key: authority.key), commonName: commonName, days: days,
      issuer: nil
    ) { publicKey in
      try Certificate.Extensions {
        Critical(BasicConstraints.isCertificateAuthority(maxPathLength: nil))
        Critical(KeyUsage(keyCertSign: true, cRLSign: true))
        SubjectKeyIdentifier(hash: publicKey)
      }
    }
    return authority
  }

  /// Issues a certificate `name.pem` with key `name-key.pem` in the CA's directory, valid for `days`.
  ///
  /// The certificate has basic constraints `CA:FALSE` and key usage `digitalSignature, keyEncipherment`
  /// (both critical), subject and authority key identifiers, and the extended key usage and subject
  /// alternative names of `usage`.
  ///
  /// The new files replace old ones by rename, the key first: a process that reads them for each TLS
  /// handshake (etcd does) sees either the old pair or the new one, except for the instant between the two
  /// renames.
  @discardableResult
  public func issue(name: String, commonName: String, usage: Usage, days: Int) throws -> KeyPair {
    let pair = KeyPair(certificate: "\(directory)/\(name).pem", key: "\(directory)/\(name)-key.pem")
    let authorityCertificate = try PEMFiles.readCertificate(certificate)
    let authorityKey = try PEMFiles.readPrivateKey(key)
    guard let authorityKeyIdentifier = try authorityCertificate.extensions.subjectKeyIdentifier?.keyIdentifier
    else { throw CertificateError("the CA certificate \(certificate) has no subject key identifier") }
    let issuer = (name: authorityCertificate.subject, key: authorityKey)
    try Self.install(pair, commonName: commonName, days: days, issuer: issuer) { publicKey in
      try Self.leafExtensions(usage: usage, publicKey: publicKey, authorityKeyIdentifier: authorityKeyIdentifier)
    }
    return pair
  }

  /// Whether the certificate at `path` expires within `interval` (or already has): its `notAfter` is no
  /// later than now plus `interval`, as `openssl x509 -checkend` decides.
  public static func expires(_ path: String, within interval: Duration) throws -> Bool {
    let seconds = max(0, interval.components.seconds)
    let notAfter = try PEMFiles.readCertificate(path).notValidAfter
    return notAfter <= Date(timeIntervalSinceNow: TimeInterval(seconds))
  }

  /// The end of the certificate's validity (`notAfter`), as openssl prints it: `Dec  3 20:33:13 2026 GMT`.
  public static func expiry(of path: String) throws -> String {
    OpenSSLTime.format(try PEMFiles.readCertificate(path).notValidAfter)
  }

  /// Makes a new P-256 key and a certificate for it, signed by `issuer` (self-signed without one), valid from
  /// now truncated to the second (never from a moment ahead) for `days`, and installs both as `pair`.
  private static func install(
    _ pair: KeyPair,
    commonName: String,
    days: Int,
    issuer: (name: DistinguishedName, key: P256.Signing.PrivateKey)?,
    extensions: (Certificate.PublicKey) throws -> Certificate.Extensions
  ) throws {
    let privateKey = P256.Signing.PrivateKey()
    let publicKey = Certificate.PublicKey(privateKey.publicKey)
    let chosenExtensions = try extensions(publicKey)
    let now = Date(timeIntervalSince1970: Date().timeIntervalSince1970.rounded(.down))
    let certificate: Certificate
    do {
      let subject = try DistinguishedName { CommonName(commonName) }
      certificate = try Certificate(
        version: .v3,
        serialNumber: Certificate.SerialNumber(),
        publicKey: publicKey,
        notValidBefore: now,
        notValidAfter: now.addingTimeInterval(TimeInterval(days) * 86_400),
        issuer: issuer?.name ?? subject,
        subject: subject,
        signatureAlgorithm: .ecdsaWithSHA256,
        extensions: chosenExtensions,
        issuerPrivateKey: Certificate.PrivateKey(issuer?.key ?? privateKey)
      )
    } catch {
      throw CertificateError("cannot sign the certificate for \(commonName): \(error)")
    }
    try PEMFiles.install(
      key: privateKey.pemRepresentation, certificate: try certificate.serializeAsPEM().pemString, as: pair)
  }
}

/// A certificate could not be made or read.
public struct CertificateError: Error, CustomStringConvertible {
  /// What went wrong.
  public var description: String

  init(_ description: String) { self.description = description }
}
