import Foundation
import SwitchyardCerts
import SwitchyardPKI

/// HTTPS at the edge of a local cluster (`up --https`, implied by `--secure`): the local CA (shared with
/// `--secure`) issues a leaf for `localhost`, `127.0.0.1` and `::1` (`pki/edge.pem`, key 0600); a cluster key
/// made once (`pki/cluster.key`, 0600) seals its private key in etcd as the certificate ``edgeCertificateName``,
/// which every LB node serves by default.
extension LocalSecurity {
  /// The name of the certificate the LB nodes serve by default, in etcd at `/switchyard/certs/local`.
  public static let edgeCertificateName = "local"
  /// The edge leaf's file name in `pki/` (`edge.pem`, `edge-key.pem`).
  static let edgeLeafName = "edge"

  /// The edge certificate and its key, issued by the local CA.
  public var edgePair: KeyPair {
    KeyPair(
      certificate: "\(pkiDirectory)/\(Self.edgeLeafName).pem", key: "\(pkiDirectory)/\(Self.edgeLeafName)-key.pem")
  }

  /// The cluster key file (0600) that the LB nodes get as `--cluster-key`.
  public var clusterKeyFile: String { "\(pkiDirectory)/cluster.key" }

  /// Makes what HTTPS needs and is not there yet: the local CA, the cluster key, the edge certificate.
  /// Nothing that exists is replaced, so a cluster started again keeps its CA (which browsers may trust) and
  /// its cluster key (which opens what etcd holds).
  public func prepareHTTPS() throws {
    let authority: CertificateAuthority
    if FileManager.default.fileExists(atPath: caCertificate) {
      authority = try CertificateAuthority(existingIn: pkiDirectory)
    } else {
      authority = try CertificateAuthority.create(
        in: pkiDirectory, commonName: "Switchyard local CA", days: Self.authorityDays)
    }
    _ = try clusterKey()
    if !FileManager.default.fileExists(atPath: edgePair.certificate) {
      try issueEdgeCertificate(authority: authority)
    }
  }

  /// The cluster key from ``clusterKeyFile``, made there (0600) when the file does not exist.
  public func clusterKey() throws -> ClusterKey {
    guard FileManager.default.fileExists(atPath: clusterKeyFile) else {
      let key = ClusterKey.generate()
      try Self.writeSecret(key.fileContents.trimmingCharacters(in: .newlines), to: clusterKeyFile)
      return key
    }
    guard let text = try? String(contentsOfFile: clusterKeyFile, encoding: .utf8) else {
      throw LocalClusterError("cannot read the cluster key file \(clusterKeyFile)")
    }
    do {
      return try ClusterKey(fileContents: text)
    } catch {
      throw LocalClusterError("\(clusterKeyFile): \(error.reason)")
    }
  }

  /// Issues (or replaces) the edge certificate: P-256, for `localhost`, `127.0.0.1` and `::1`.
  @discardableResult
  func issueEdgeCertificate(authority: CertificateAuthority) throws -> KeyPair {
    try authority.issue(
      name: Self.edgeLeafName,
      commonName: "localhost",
      usage: .server(ipAddresses: ["127.0.0.1", "::1"], dnsNames: ["localhost"]),
      days: certificateDays
    )
  }

  /// Renews the edge certificate when it expires within ``renewalMargin``; returns whether it did. For a
  /// cluster with HTTPS but without `--secure` (whose ``renewExpiring()`` covers it with the others).
  public func renewEdgeCertificateIfExpiring() throws -> Bool {
    guard try CertificateAuthority.expires(edgePair.certificate, within: Self.renewalMargin) else { return false }
    try issueEdgeCertificate(authority: CertificateAuthority(existingIn: pkiDirectory))
    return true
  }

  /// Whether `renewed` (names from ``renewExpiring()``) includes the edge certificate.
  public static func includesEdgeCertificate(_ renewed: [String]) -> Bool { renewed.contains(edgeLeafName) }

  /// The record etcd keeps of the edge certificate: its files validated (``CertificateBundle``), the key
  /// sealed with the cluster key.
  public func edgeRecord(now: Date = Date()) throws -> CertificateRecord {
    guard let chain = try? String(contentsOfFile: edgePair.certificate, encoding: .utf8),
      let key = try? String(contentsOfFile: edgePair.key, encoding: .utf8)
    else { throw LocalClusterError("cannot read the edge certificate \(edgePair.certificate) or its key") }
    do {
      let name = try CertificateName(validating: Self.edgeCertificateName)
      let bundle = try CertificateBundle.validate(name: name, chainPEM: chain, keyPEM: key, hosts: nil, now: now)
      return bundle.record(sealedWith: try clusterKey(), source: .manual)
    } catch let problem as CertificateProblem {
      throw LocalClusterError("the edge certificate \(edgePair.certificate): \(problem)")
    }
  }
}
