import Foundation
import SwitchyardPKI

/// PEM files for serving etcd over TLS with client certificates: a CA, a server certificate and key, and a
/// client certificate and key signed by that CA.
///
/// ``generate(in:clientCommonName:)`` makes a fresh set for each test, so that no key is
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

  /// Generates a CA and certificates in `directory` (created if missing) with ``CertificateAuthority``.
  ///
  /// The server certificate is for `IP:127.0.0.1` and `DNS:localhost`, for server and client authentication:
  /// etcd 3.4 connects to its own client port for its JSON gateway with the server certificate, and with
  /// `--client-cert-auth` it rejects that connection unless the certificate allows client authentication.
  /// The client certificate's common name is `clientCommonName`; with auth enabled, etcd takes the user from
  /// it, so a request with the default client certificate is `root` without a password.
  /// Keys are P-256, which every TLS stack here supports and which is much quicker to generate than RSA.
  public static func generate(in directory: String, clientCommonName: String = "root") throws -> TLSFiles {
    let authority = try CertificateAuthority.create(in: directory, commonName: "Switchyard test CA", days: 30)
    let server = try authority.issue(
      name: "server",
      commonName: "localhost",
      usage: .server(ipAddresses: ["127.0.0.1"], dnsNames: ["localhost"]),
      days: 30
    )
    let client = try authority.issue(name: "client", commonName: clientCommonName, usage: .client, days: 30)
    return TLSFiles(
      caCertificate: authority.certificate,
      serverCertificate: server.certificate,
      serverKey: server.key,
      clientCertificate: client.certificate,
      clientKey: client.key
    )
  }
}
