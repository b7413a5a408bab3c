import AddressText
import SwiftASN1
import X509

extension CertificateAuthority {
  /// A leaf's extensions, in the order the former `openssl` configuration listed them: basic constraints
  /// `CA:FALSE` and key usage `digitalSignature, keyEncipherment` (both critical), the subject key
  /// identifier (SHA-1 of the public key), the CA's key identifier, then the extended key usage and, for a
  /// server with any names, its subject alternative names (IP addresses first, then DNS names).
  static func leafExtensions(
    usage: Usage,
    publicKey: Certificate.PublicKey,
    authorityKeyIdentifier: ArraySlice<UInt8>
  ) throws -> Certificate.Extensions {
    let purposes: [ExtendedKeyUsage.Usage]
    var names: [GeneralName] = []
    switch usage {
    case .server(let ipAddresses, let dnsNames):
      purposes = [.serverAuth, .clientAuth]
      names = try ipAddresses.map { .ipAddress(ASN1OctetString(contentBytes: try Self.addressBytes($0)[...])) }
      names += dnsNames.map { .dnsName($0) }
    case .client:
      purposes = [.clientAuth]
    }
    let extendedKeyUsage = try ExtendedKeyUsage(purposes)
    return try Certificate.Extensions {
      Critical(BasicConstraints.notCertificateAuthority)
      Critical(KeyUsage(digitalSignature: true, keyEncipherment: true))
      SubjectKeyIdentifier(hash: publicKey)
      AuthorityKeyIdentifier(keyIdentifier: authorityKeyIdentifier)
      extendedKeyUsage
      if !names.isEmpty { SubjectAlternativeNames(names) }
    }
  }

  /// The 4 or 16 bytes of an IPv4 or IPv6 address in text form, as a subject alternative name holds them.
  static func addressBytes(_ address: String) throws -> [UInt8] {
    if let octets = IPLiteral.ipv4Octets(address) { return octets }
    if let groups = IPLiteral.ipv6Groups(address) { return groups.flatMap { [UInt8($0 >> 8), UInt8($0 & 0xff)] } }
    throw CertificateError("\(address) is not an IP address")
  }
}
