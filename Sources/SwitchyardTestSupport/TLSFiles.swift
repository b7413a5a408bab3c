import Foundation

/// PEM files for a test CA, a server certificate for 127.0.0.1/localhost, and a client
/// certificate, made with openssl.
public struct TLSFiles: Sendable, Hashable {
  /// The CA certificate.
  public var caCertificate: String
  /// Server certificate (SAN IP:127.0.0.1, DNS:localhost).
  public var serverCertificate: String
  /// Server key.
  public var serverKey: String
  /// Client certificate (CN=root).
  public var clientCertificate: String
  /// Client key.
  public var clientKey: String

  /// Generates a fresh CA and certificates in `directory`.
  public static func generate(in directory: String) async throws -> TLSFiles {
    let files = TLSFiles(
      caCertificate: "\(directory)/ca.pem",
      serverCertificate: "\(directory)/server.pem",
      serverKey: "\(directory)/server-key.pem",
      clientCertificate: "\(directory)/client.pem",
      clientKey: "\(directory)/client-key.pem"
    )
    let caKey = "\(directory)/ca-key.pem"
    try await runTool(
      "openssl",
      [
        "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", "/CN=switchyard-test-ca",
        "-keyout", caKey, "-out", files.caCertificate,
      ]
    )
    try await issue(
      files: files,
      caKey: caKey,
      name: "server",
      subject: "/CN=localhost",
      extensions: "subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth\n",
      key: files.serverKey,
      certificate: files.serverCertificate,
      directory: directory
    )
    try await issue(
      files: files,
      caKey: caKey,
      name: "client",
      subject: "/CN=root",
      extensions: "extendedKeyUsage=clientAuth\n",
      key: files.clientKey,
      certificate: files.clientCertificate,
      directory: directory
    )
    return files
  }

  private static func issue(
    files: TLSFiles,
    caKey: String,
    name: String,
    subject: String,
    extensions: String,
    key: String,
    certificate: String,
    directory: String
  ) async throws {
    let request = "\(directory)/\(name).csr"
    let extensionFile = "\(directory)/\(name).ext"
    try extensions.write(toFile: extensionFile, atomically: true, encoding: .utf8)
    try await runTool(
      "openssl",
      ["req", "-newkey", "rsa:2048", "-nodes", "-subj", subject, "-keyout", key, "-out", request]
    )
    try await runTool(
      "openssl",
      [
        "x509", "-req", "-in", request, "-CA", files.caCertificate, "-CAkey", caKey, "-CAcreateserial",
        "-days", "2", "-extfile", extensionFile, "-out", certificate,
      ]
    )
  }
}
