import Foundation

/// PEM files for serving etcd over TLS with client certificates: a CA, a server certificate and key, and a
/// client certificate and key signed by that CA.
///
/// The test support's `generate(in:clientCommonName:)` makes a fresh set for each test, so that no key is
/// checked in and none expires between runs.
public struct TLSFiles: Sendable, Hashable {
  /// The CA certificate that both sides trust (`--trusted-ca-file`, etcdctl `--cacert`).
  public var caCertificate: String
  /// The server certificate (`--cert-file`).
  public var serverCertificate: String
  /// The server certificate's private key (`--key-file`).
  public var serverKey: String
  /// The client certificate (etcdctl `--cert`).
  public var clientCertificate: String
  /// The client certificate's private key (etcdctl `--key`).
  public var clientKey: String

  /// Uses existing files, for tests that bring their own certificates.
  public init(
    caCertificate: String,
    serverCertificate: String,
    serverKey: String,
    clientCertificate: String,
    clientKey: String
  ) {
    self.caCertificate = caCertificate
    self.serverCertificate = serverCertificate
    self.serverKey = serverKey
    self.clientCertificate = clientCertificate
    self.clientKey = clientKey
  }
}
