import Crypto
import Foundation
import SwiftASN1
import SwitchyardModel
import X509
import _CryptoExtras

/// One certificate of a chain with the DER it was read from.
struct ChainCertificate: Sendable {
  var certificate: Certificate
  var der: [UInt8]
}

/// A private key with its PEM block.
struct ParsedKey: Sendable {
  var privateKey: Certificate.PrivateKey
  var block: PEMBlock
}

extension CertificateBundle {
  /// The certificates of a PEM chain, leaf first; refuses other blocks, none, or more than ``maxChainLength``.
  static func parseChain(_ text: String) throws(CertificateProblem) -> [ChainCertificate] {
    let blocks = try PEMBlock.parse(text, field: "chain")
    guard !blocks.isEmpty else {
      throw CertificateProblem(field: "chain", reason: "the chain holds no PEM certificate (BEGIN CERTIFICATE)")
    }
    guard blocks.count <= maxChainLength else {
      throw CertificateProblem(
        field: "chain", reason: "the chain holds \(blocks.count) certificates; at most \(maxChainLength) are accepted")
    }
    var chain: [ChainCertificate] = []
    for (index, block) in blocks.enumerated() {
      guard block.label == "CERTIFICATE" else {
        throw CertificateProblem(
          field: "chain",
          reason: "the chain's PEM block \(index + 1) is \(block.label), not CERTIFICATE (give the key with --key)")
      }
      do {
        chain.append(ChainCertificate(certificate: try Certificate(derEncoded: block.der), der: block.der))
      } catch {
        throw CertificateProblem(
          field: "chain",
          reason:
            "the chain's certificate \(index + 1) is not a valid X.509 certificate "
            + "(\(printable(String(describing: error)))); RSA keys need at least 2048 bits")
      }
    }
    return chain
  }

  /// Each certificate after the leaf names the one before as its subject and signed it.
  static func checkIssuers(_ chain: [ChainCertificate]) throws(CertificateProblem) {
    for index in chain.indices.dropLast() {
      let child = chain[index].certificate
      let parent = chain[index + 1].certificate
      guard child.issuer == parent.subject else {
        throw CertificateProblem(
          field: "chain",
          reason:
            "the chain is out of order: certificate \(index + 2) (\(printable(parent.subject.description))) did not issue "
            + "certificate \(index + 1), whose issuer is \(printable(child.issuer.description)); give the leaf first, then its issuers"
        )
      }
      guard parent.publicKey.isValidSignature(child.signature, for: child) else {
        throw CertificateProblem(
          field: "chain",
          reason:
            "certificate \(index + 1)'s signature does not verify with the key of certificate \(index + 2) "
            + "(\(printable(parent.subject.description)))")
      }
    }
  }

  /// Every certificate is within its validity at `now` (its start up to ``allowedSkew`` ahead).
  static func checkDates(_ chain: [ChainCertificate], now: Date) throws(CertificateProblem) {
    for (index, entry) in chain.enumerated() {
      let certificate = entry.certificate
      let which = index == 0 ? "the leaf certificate" : "chain certificate \(index + 1)"
      let subject = printable(certificate.subject.description)
      if certificate.notValidAfter <= now {
        throw CertificateProblem(
          field: "chain",
          reason: "\(which) (\(subject)) expired at \(CertificateDates.text(certificate.notValidAfter))")
      }
      if certificate.notValidBefore > now.addingTimeInterval(allowedSkew) {
        throw CertificateProblem(
          field: "chain",
          reason: "\(which) (\(subject)) is not valid before \(CertificateDates.text(certificate.notValidBefore))")
      }
    }
  }

  /// The one private key in `text`: `PRIVATE KEY` (PKCS#8), `EC PRIVATE KEY` (SEC1) or `RSA PRIVATE KEY`
  /// (PKCS#1); an `EC PARAMETERS` block is skipped. Problems never quote the text.
  static func parseKey(_ text: String) throws(CertificateProblem) -> ParsedKey {
    let blocks = try PEMBlock.parse(text, field: "key").filter { $0.label != "EC PARAMETERS" }
    let accepted = ["PRIVATE KEY", "EC PRIVATE KEY", "RSA PRIVATE KEY"]
    guard blocks.count == 1, let block = blocks.first else {
      throw CertificateProblem(
        field: "key",
        reason: blocks.isEmpty
          ? "the key file holds no PEM private key (BEGIN PRIVATE KEY, EC PRIVATE KEY or RSA PRIVATE KEY)"
          : "the key file holds \(blocks.count) PEM blocks; give exactly one private key")
    }
    if block.label == "ENCRYPTED PRIVATE KEY" || block.hasHeaders {
      throw CertificateProblem(
        field: "key", reason: "the key is encrypted; give it unencrypted (it is sealed with the cluster key in etcd)")
    }
    guard accepted.contains(block.label) else {
      throw CertificateProblem(
        field: "key", reason: "the key file holds \(block.label), not PRIVATE KEY, EC PRIVATE KEY or RSA PRIVATE KEY")
    }
    do {
      let key = try Certificate.PrivateKey(pemDocument: PEMDocument(type: block.label, derBytes: block.der))
      return ParsedKey(privateKey: key, block: block)
    } catch {
      throw CertificateProblem(field: "key", reason: "the key's \(block.label) block is not a valid private key")
    }
  }

  /// EC P-256 or P-384, or RSA of 2048 to 8192 bits.
  static func checkKeyType(_ key: Certificate.PublicKey) throws(CertificateProblem) {
    if P256.Signing.PublicKey(key) != nil || P384.Signing.PublicKey(key) != nil { return }
    if let rsa = _RSA.Signing.PublicKey(key) {
      guard (2048...8192).contains(rsa.keySizeInBits) else {
        throw CertificateProblem(
          field: "key", reason: "the leaf's RSA key has \(rsa.keySizeInBits) bits; 2048 to 8192 are accepted")
      }
      return
    }
    throw CertificateProblem(
      field: "key",
      reason: "the leaf's key is \(key.description); accepted are EC P-256, EC P-384 and RSA of 2048 bits or more")
  }

  /// The leaf's DNS subject alternative names that are valid host patterns (others can match no host we
  /// serve, so they are left out).
  static func leafDNSNames(_ leaf: Certificate) throws(CertificateProblem) -> [HostPattern] {
    let names: SubjectAlternativeNames?
    do { names = try leaf.extensions.subjectAlternativeNames } catch {
      throw CertificateProblem(field: "chain", reason: "the leaf's subject alternative names do not parse")
    }
    var patterns: Set<HostPattern> = []
    for name in names ?? SubjectAlternativeNames() {
      if case .dnsName(let text) = name, let pattern = try? HostPattern(validating: text) { patterns.insert(pattern) }
    }
    return patterns.sorted()
  }

  /// The hosts to serve, sorted and unique: `requested`, each covered by one of `dnsNames`; without a
  /// request, `dnsNames`.
  static func coveredHosts(_ requested: [HostPattern]?, dnsNames: [HostPattern], leaf: Certificate)
    throws(CertificateProblem) -> [HostPattern]
  {
    guard let requested else {
      guard !dnsNames.isEmpty else {
        throw CertificateProblem(
          field: "hosts",
          reason:
            "the leaf certificate (\(printable(leaf.subject.description))) has no DNS subject alternative name; give the hosts with --host"
        )
      }
      guard dnsNames.count <= maxHosts else {
        throw CertificateProblem(
          field: "hosts", reason: "the leaf has \(dnsNames.count) DNS names; at most \(maxHosts) hosts are accepted")
      }
      return dnsNames
    }
    let hosts = Array(Set(requested)).sorted()
    guard !hosts.isEmpty else { throw CertificateProblem(field: "hosts", reason: "no hosts given") }
    guard hosts.count <= maxHosts else {
      throw CertificateProblem(field: "hosts", reason: "\(hosts.count) hosts given; at most \(maxHosts) are accepted")
    }
    for host in hosts where !dnsNames.contains(where: { covers($0, host) }) {
      let names = dnsNames.isEmpty ? "none" : dnsNames.map(\.text).joined(separator: ", ")
      throw CertificateProblem(
        field: "hosts",
        reason: "the host \(host.text) is not covered by the leaf certificate's DNS names (\(names))")
    }
    return hosts
  }

  /// Whether certificate name `name` covers host `host` (RFC 6125 6.4.3): equal, or a wildcard name whose
  /// `*` stands for exactly the first label of an exact host. A wildcard host needs the same wildcard name.
  static func covers(_ name: HostPattern, _ host: HostPattern) -> Bool {
    if name == host { return true }
    return name.kind == .wildcard && host.kind == .exact && name.matches(host.text)
  }
}

/// `text` with every character other than printable ASCII escaped, and at most 200 characters.
func printable(_ text: String) -> String {
  RegistrationError.escape(text, limit: 200)
}

/// Dates as certificates and records show them.
public enum CertificateDates {
  /// `2027-01-01T00:00:00Z`: ISO 8601, UTC, whole seconds.
  public static func text(_ date: Date) -> String {
    date.formatted(Date.ISO8601FormatStyle(timeZone: TimeZone(identifier: "UTC")!))
  }

  /// Parses ``text(_:)``'s form; `nil` for anything else.
  public static func parse(_ text: String) -> Date? {
    try? Date.ISO8601FormatStyle(timeZone: TimeZone(identifier: "UTC")!).parse(text)
  }

  /// Whole days from `now` to `date`, rounded down; negative once past.
  public static func daysLeft(until date: Date, now: Date) -> Int {
    Int((date.timeIntervalSince(now) / 86_400).rounded(.down))
  }
}
