import Foundation
import SwitchyardLab
import SwitchyardPKI

extension TLSFiles {
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
