import Foundation

/// PEM files for serving etcd over TLS with client certificates: a CA, a server certificate and key, and a
/// client certificate and key signed by that CA.
///
/// ``generate(in:clientCommonName:)`` makes a fresh set with `openssl` for each test, so that no key is
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

  /// Generates a CA and certificates in `directory` (created if missing) with `openssl` (OpenSSL 3 or 1.1).
  ///
  /// The server certificate is for `IP:127.0.0.1` and `DNS:localhost`, for server and client authentication:
  /// etcd 3.4 connects to its own client port for its JSON gateway with the server certificate, and with
  /// `--client-cert-auth` it rejects that connection unless the certificate allows client authentication.
  /// The client certificate's common name is `clientCommonName`; with auth enabled, etcd takes the user from
  /// it, so a request with the default client certificate is `root` without a password.
  /// Keys are P-256, which every TLS stack here supports and which is much quicker to generate than RSA.
  public static func generate(in directory: String, clientCommonName: String = "root") throws -> TLSFiles {
    try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
    let base = URL(fileURLWithPath: directory)
    func file(_ name: String) -> String { base.appendingPathComponent(name).path }
    let files = TLSFiles(
      caCertificate: file("ca.pem"),
      serverCertificate: file("server.pem"),
      serverKey: file("server-key.pem"),
      clientCertificate: file("client.pem"),
      clientKey: file("client-key.pem")
    )
    let caKey = file("ca-key.pem")
    // Our own configuration files keep the result independent of the system's openssl.cnf.
    try configuration(
      commonName: "Switchyard test CA",
      extensions: [
        "basicConstraints = critical, CA:TRUE",
        "keyUsage = critical, keyCertSign, cRLSign",
        "subjectKeyIdentifier = hash",
      ]
    ).write(toFile: file("ca.cnf"), atomically: true, encoding: .utf8)
    try openssl(
      ["req", "-x509", "-config", file("ca.cnf"), "-days", "30"]
        + newKey(caKey) + ["-out", files.caCertificate]
    )
    let leaves = [
      (
        name: "server", commonName: "localhost", certificate: files.serverCertificate, key: files.serverKey,
        usage: ["extendedKeyUsage = serverAuth, clientAuth", "subjectAltName = IP:127.0.0.1, DNS:localhost"]
      ),
      (
        name: "client", commonName: clientCommonName, certificate: files.clientCertificate, key: files.clientKey,
        usage: ["extendedKeyUsage = clientAuth"]
      ),
    ]
    for leaf in leaves {
      let configurationFile = file("\(leaf.name).cnf")
      let request = file("\(leaf.name).csr")
      try configuration(
        commonName: leaf.commonName,
        extensions: [
          "basicConstraints = critical, CA:FALSE",
          "keyUsage = critical, digitalSignature, keyEncipherment",
          "subjectKeyIdentifier = hash",
          "authorityKeyIdentifier = keyid",
        ] + leaf.usage
      ).write(toFile: configurationFile, atomically: true, encoding: .utf8)
      try openssl(["req", "-new", "-config", configurationFile] + newKey(leaf.key) + ["-out", request])
      try openssl([
        "x509", "-req", "-in", request, "-CA", files.caCertificate, "-CAkey", caKey,
        "-CAcreateserial", "-CAserial", file("ca.srl"), "-days", "30",
        "-extfile", configurationFile, "-extensions", "extensions", "-out", leaf.certificate,
      ])
    }
    return files
  }

  private static func newKey(_ path: String) -> [String] {
    ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes", "-keyout", path]
  }

  /// An openssl configuration with a fixed subject and the given extensions in section `extensions`.
  private static func configuration(commonName: String, extensions: [String]) -> String {
    let lines =
      [
        "[req]",
        "distinguished_name = subject",
        "prompt = no",
        "x509_extensions = extensions",
        "[subject]",
        "CN = \(commonName)",
        "[extensions]",
      ] + extensions
    return lines.joined(separator: "\n") + "\n"
  }

  private static func openssl(_ arguments: [String]) throws {
    try ManagedProcess.runBlocking("openssl", arguments: arguments, timeout: .seconds(30))
  }
}
