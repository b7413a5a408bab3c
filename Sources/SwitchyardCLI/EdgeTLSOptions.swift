import ArgumentParser
import Foundation
import SwitchyardACME
import SwitchyardCerts
import SwitchyardController
import SwitchyardModel

/// The controller's HTTPS options: where HAProxy terminates TLS, the cluster key that opens the
/// certificates kept in etcd, and which of them is served by default.
struct EdgeTLSOptions: ParsableArguments {
  @Option(
    name: .customLong("listen-https"),
    help: """
      Where HAProxy accepts HTTPS, host:port. Certificates come from etcd (/switchyard/certs/, see \
      `switchyard cert`), chosen by SNI; without this flag the node serves plain HTTP only.
      """)
  var listenHTTPS: String?

  @Option(
    name: .customLong("cluster-key"),
    help: """
      File holding the cluster key (`switchyard cert keygen`) that opens the certificates' sealed keys. \
      Also from $\(ClusterKeyFile.variable).
      """)
  var clusterKeyFile: String?

  @Option(
    name: .customLong("default-certificate"),
    help: """
      The certificate in etcd served when a client's SNI matches none (or it sends none). Without it, a \
      self-signed certificate made on the node's first start.
      """)
  var defaultCertificate: String?

  @Option(
    name: .customLong("acme-directory"),
    help: """
      The ACME directory URL of the CA that issues certificates for routes with "acme": true (RFC 8555, \
      HTTP-01). One node at a time orders, elected through etcd; every node answers the challenges. Needs \
      the cluster key.
      """)
  var acmeDirectory: String?

  @Option(
    name: .customLong("acme-ca"),
    help: "PEM file of the roots that the ACME server's HTTPS certificate is checked against.")
  var acmeCA: String?

  @Option(
    name: .customLong("acme-renew-fraction"),
    help: "Renew an ACME certificate in this last part of its lifetime (0.05 to 0.9; default 1/3).")
  var acmeRenewFraction: Double?

  /// The HTTPS listen address, or `nil` without `--listen-https`.
  func httpsListenAddress() throws -> HostPort? {
    try listenHTTPS.map { try parseHostPort($0, flag: "--listen-https") }
  }

  /// The TLS settings: the cluster key read and checked, the default certificate's name validated.
  func makeSettings() throws -> TLSSettings {
    var settings = TLSSettings()
    if let (file, source) = ClusterKeyFile.location(
      flag: clusterKeyFile, environment: ProcessInfo.processInfo.environment)
    {
      settings.clusterKey = try Self.readClusterKey(file, flag: source)
    }
    if let defaultCertificate {
      do {
        settings.defaultCertificate = try CertificateName(validating: defaultCertificate)
      } catch {
        throw ValidationError("--default-certificate: \(error.reason)")
      }
      guard listenHTTPS != nil else { throw ValidationError("--default-certificate needs --listen-https") }
    }
    if listenHTTPS != nil && settings.clusterKey == nil && defaultCertificate != nil {
      throw ValidationError("--default-certificate needs the cluster key (--cluster-key) to open it")
    }
    return settings
  }

  /// The ACME coordinator's settings, or `nil` without `--acme-directory`.
  func makeACME(nodeID: String, clusterKey: ClusterKey?) throws -> ACMECoordinator.Configuration? {
    guard let acmeDirectory else {
      if acmeCA != nil || acmeRenewFraction != nil {
        throw ValidationError("--acme-ca and --acme-renew-fraction need --acme-directory")
      }
      return nil
    }
    guard let url = URL(string: acmeDirectory), url.scheme == "https", url.host != nil else {
      throw ValidationError("--acme-directory: \"\(acmeDirectory)\" is not an https:// URL")
    }
    guard let clusterKey else {
      throw ValidationError(
        "--acme-directory needs the cluster key (--cluster-key): certificate keys are sealed with it")
    }
    guard let acmeCA else {
      throw ValidationError("--acme-directory needs --acme-ca: the PEM roots the ACME server is verified against")
    }
    guard FileManager.default.isReadableFile(atPath: acmeCA) else {
      throw ValidationError("--acme-ca: cannot read \(acmeCA)")
    }
    var configuration = ACMECoordinator.Configuration(
      nodeID: nodeID, directoryURL: acmeDirectory, trustRootsFile: acmeCA, clusterKey: clusterKey)
    if let acmeRenewFraction {
      guard (0.05...0.9).contains(acmeRenewFraction) else {
        throw ValidationError("--acme-renew-fraction must be from 0.05 to 0.9")
      }
      configuration.renewalFraction = acmeRenewFraction
    }
    return configuration
  }

  /// Reads a cluster key file, with an error naming the flag and the file.
  static func readClusterKey(_ path: String, flag: String) throws -> ClusterKey {
    let text: String
    do {
      text = try String(contentsOfFile: path, encoding: .utf8)
    } catch {
      throw ValidationError("\(flag): cannot read the cluster key file \(path): \(error.localizedDescription)")
    }
    do {
      return try ClusterKey(fileContents: text)
    } catch {
      throw ValidationError("\(flag): \(path): \(error.reason)")
    }
  }
}
