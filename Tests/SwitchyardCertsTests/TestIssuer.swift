import Crypto
import Foundation
import SwiftASN1
import X509
import _CryptoExtras

/// Certificates for the tests, made in memory: a CA, optional intermediates, leaves with chosen names,
/// dates and key types. Only for tests; nothing here is trusted by anything.
struct TestIssuer {
  /// A key type the tests issue.
  enum KeyType {
    case p256, p384, p521
    case rsa(bits: Int)
  }

  /// A key with its PEM.
  struct Key {
    var privateKey: Certificate.PrivateKey
    /// The secret alone: an EC key's scalar; empty for RSA.
    var secret: [UInt8] = []
    var pem: String
  }

  /// A certificate with its key.
  struct Issued {
    var certificate: Certificate
    var key: Key
    var pem: String
  }

  /// Makes a key; `sec1` writes an EC key as `EC PRIVATE KEY`, `pkcs1` an RSA key as `RSA PRIVATE KEY`.
  static func key(_ type: KeyType, legacyPEM: Bool = false) throws -> Key {
    switch type {
    case .p256:
      let key = P256.Signing.PrivateKey()
      return Key(
        privateKey: .init(key), secret: Array(key.rawRepresentation),
        pem: legacyPEM
          ? try sec1(
            key.rawRepresentation, curve: [1, 2, 840, 10045, 3, 1, 7], public: key.publicKey.x963Representation)
          : key.pemRepresentation)
    case .p384:
      let key = P384.Signing.PrivateKey()
      return Key(
        privateKey: .init(key), secret: Array(key.rawRepresentation),
        pem: legacyPEM
          ? try sec1(key.rawRepresentation, curve: [1, 3, 132, 0, 34], public: key.publicKey.x963Representation)
          : key.pemRepresentation)
    case .p521:
      let key = P521.Signing.PrivateKey()
      return Key(privateKey: .init(key), pem: key.pemRepresentation)
    case .rsa(let bits):
      let key = try _RSA.Signing.PrivateKey(unsafeKeySize: .init(bitCount: bits))
      return Key(privateKey: .init(key), pem: legacyPEM ? key.pemRepresentation : key.pkcs8PEMRepresentation)
    }
  }

  /// An EC key as SEC1 (RFC 5915) `EC PRIVATE KEY`, as `openssl ecparam -genkey` writes it.
  private static func sec1(_ scalar: Data, curve: ASN1ObjectIdentifier, public point: Data) throws -> String {
    var serializer = DER.Serializer()
    try serializer.appendConstructedNode(identifier: .sequence) { sequence in
      try sequence.serialize(1)
      try sequence.serialize(ASN1OctetString(contentBytes: ArraySlice(scalar)))
      try sequence.serialize(explicitlyTaggedWithTagNumber: 0, tagClass: .contextSpecific) { try $0.serialize(curve) }
      try sequence.serialize(explicitlyTaggedWithTagNumber: 1, tagClass: .contextSpecific) {
        try $0.serialize(ASN1BitString(bytes: ArraySlice(point)))
      }
    }
    return PEMDocument(type: "EC PRIVATE KEY", derBytes: serializer.serializedBytes).pemString
  }

  /// A self-signed CA.
  static func authority(name: String = "Test Root CA", keyType: KeyType = .p256, now: Date = Date()) throws -> Issued {
    let key = try key(keyType)
    let subject = try DistinguishedName { CommonName(name) }
    let certificate = try Certificate(
      version: .v3, serialNumber: .init(), publicKey: key.privateKey.publicKey,
      notValidBefore: now.addingTimeInterval(-3600), notValidAfter: now.addingTimeInterval(3650 * 86_400),
      issuer: subject, subject: subject, signatureAlgorithm: signatureAlgorithm(keyType),
      extensions: try Certificate.Extensions {
        Critical(BasicConstraints.isCertificateAuthority(maxPathLength: nil))
        Critical(KeyUsage(keyCertSign: true, cRLSign: true))
      },
      issuerPrivateKey: key.privateKey)
    return Issued(certificate: certificate, key: key, pem: try certificate.serializeAsPEM().pemString)
  }

  /// A CA certificate issued by `issuer`.
  static func intermediate(name: String, issuer: Issued, now: Date = Date()) throws -> Issued {
    let key = try key(.p256)
    let certificate = try Certificate(
      version: .v3, serialNumber: .init(), publicKey: key.privateKey.publicKey,
      notValidBefore: now.addingTimeInterval(-3600), notValidAfter: now.addingTimeInterval(1000 * 86_400),
      issuer: issuer.certificate.subject, subject: try DistinguishedName { CommonName(name) },
      signatureAlgorithm: signatureAlgorithm(for: issuer.key.privateKey),
      extensions: try Certificate.Extensions {
        Critical(BasicConstraints.isCertificateAuthority(maxPathLength: 0))
        Critical(KeyUsage(keyCertSign: true, cRLSign: true))
      },
      issuerPrivateKey: issuer.key.privateKey)
    return Issued(certificate: certificate, key: key, pem: try certificate.serializeAsPEM().pemString)
  }

  /// A server certificate for `dnsNames`, issued by `issuer`, valid from `notBefore` to `notAfter`.
  static func leaf(
    commonName: String, dnsNames: [String], issuer: Issued, keyType: KeyType = .p256, legacyPEM: Bool = false,
    notBefore: Date = Date().addingTimeInterval(-3600), notAfter: Date = Date().addingTimeInterval(90 * 86_400)
  ) throws -> Issued {
    let key = try key(keyType, legacyPEM: legacyPEM)
    let certificate = try Certificate(
      version: .v3, serialNumber: .init(), publicKey: key.privateKey.publicKey,
      notValidBefore: notBefore, notValidAfter: notAfter,
      issuer: issuer.certificate.subject, subject: try DistinguishedName { CommonName(commonName) },
      signatureAlgorithm: signatureAlgorithm(for: issuer.key.privateKey),
      extensions: try Certificate.Extensions {
        Critical(BasicConstraints.notCertificateAuthority)
        Critical(KeyUsage(digitalSignature: true, keyEncipherment: true))
        try ExtendedKeyUsage([.serverAuth])
        if !dnsNames.isEmpty { SubjectAlternativeNames(dnsNames.map { .dnsName($0) }) }
      },
      issuerPrivateKey: issuer.key.privateKey)
    return Issued(certificate: certificate, key: key, pem: try certificate.serializeAsPEM().pemString)
  }

  private static func signatureAlgorithm(_ type: KeyType) -> Certificate.SignatureAlgorithm {
    switch type {
    case .p256: .ecdsaWithSHA256
    case .p384: .ecdsaWithSHA384
    case .p521: .ecdsaWithSHA512
    case .rsa: .sha256WithRSAEncryption
    }
  }

  private static func signatureAlgorithm(for key: Certificate.PrivateKey) -> Certificate.SignatureAlgorithm {
    key.description.hasPrefix("RSA") ? .sha256WithRSAEncryption : .ecdsaWithSHA256
  }
}
