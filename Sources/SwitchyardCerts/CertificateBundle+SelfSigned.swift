import Crypto
import Foundation
import SwiftASN1
import X509

extension CertificateBundle {
  /// The host name of ``selfSigned(now:days:)``'s certificate: in `.invalid`, a top-level domain that never
  /// resolves (RFC 6761), so no client can take it for a real site.
  public static let selfSignedHost = "default.switchyard.invalid"

  /// A self-signed certificate (P-256) that an HTTPS listener serves when no certificate matches and none is
  /// named as the default: clients that connect without SNI or for an unknown name get a certificate no one
  /// trusts, not another site's. Valid from now (truncated to the second) for `days`.
  public static func selfSigned(now: Date = Date(), days: Int = 3650) throws(CertificateProblem) -> CertificateBundle {
    let name: CertificateName
    do { name = try CertificateName(validating: "default") } catch { throw error }
    let privateKey = P256.Signing.PrivateKey()
    let start = Date(timeIntervalSince1970: now.timeIntervalSince1970.rounded(.down))
    let pem: String
    do {
      let subject = try DistinguishedName {
        OrganizationName("Switchyard")
        CommonName("Switchyard default certificate")
      }
      let certificate = try Certificate(
        version: .v3,
        serialNumber: Certificate.SerialNumber(),
        publicKey: Certificate.PublicKey(privateKey.publicKey),
        notValidBefore: start,
        notValidAfter: start.addingTimeInterval(TimeInterval(days) * 86_400),
        issuer: subject,
        subject: subject,
        signatureAlgorithm: .ecdsaWithSHA256,
        extensions: try Certificate.Extensions {
          Critical(BasicConstraints.notCertificateAuthority)
          Critical(KeyUsage(digitalSignature: true))
          try ExtendedKeyUsage([.serverAuth])
          SubjectAlternativeNames([.dnsName(selfSignedHost)])
        },
        issuerPrivateKey: Certificate.PrivateKey(privateKey)
      )
      pem = try certificate.serializeAsPEM().pemString
    } catch {
      throw CertificateProblem(
        name: "default", field: "certificate", reason: "cannot make a self-signed certificate: \(error)")
    }
    return try validate(name: name, chainPEM: pem, keyPEM: privateKey.pemRepresentation, hosts: nil, now: now)
  }
}
