import Foundation
import SwitchyardPKI
import SwitchyardProcess
import Testing
import X509

/// The same files read by OpenSSL, as HAProxy reads them: the `openssl` command checks what the CA made,
/// and makes a CA the way the CA did before it was written in Swift, which must still issue and renew.
@Suite struct OpenSSLCrossCheckTests {
  @Test func opensslReadsAndVerifiesWhatTheCAMakes() async throws {
    let directory = try TemporaryDirectory(prefix: "switchyard-pki")
    defer { directory.remove() }
    let authority = try CertificateAuthority.create(in: directory.path("pki"), commonName: "Test CA", days: 30)
    let server = try authority.issue(
      name: "etcd-member", commonName: "etcd-member.tls",
      usage: .server(ipAddresses: ["127.0.0.1"], dnsNames: ["localhost"]), days: 365)
    let client = try authority.issue(name: "root", commonName: "root.tls", usage: .client, days: 3)

    let caText = try await openssl("x509", "-noout", "-text", "-in", authority.certificate)
    #expect(caText.contains("Subject: CN = Test CA"))
    #expect(caText.contains("X509v3 Basic Constraints: critical\n                CA:TRUE\n"))
    #expect(caText.contains("X509v3 Key Usage: critical\n                Certificate Sign, CRL Sign\n"))
    #expect(caText.contains("ASN1 OID: prime256v1"))
    #expect(!caText.contains("Authority Key Identifier"))

    let serverText = try await openssl("x509", "-noout", "-text", "-in", server.certificate)
    for line in [
      "Issuer: CN = Test CA", "Subject: CN = etcd-member.tls", "Signature Algorithm: ecdsa-with-SHA256",
      "X509v3 Basic Constraints: critical\n                CA:FALSE\n",
      "X509v3 Key Usage: critical\n                Digital Signature, Key Encipherment\n",
      "TLS Web Server Authentication, TLS Web Client Authentication\n",
      "X509v3 Subject Alternative Name: \n                IP Address:127.0.0.1, DNS:localhost\n",
    ] {
      #expect(serverText.contains(line), "\(line)")
    }
    let caKeyIdentifier = try keyIdentifier(after: "X509v3 Subject Key Identifier", in: caText)
    #expect(try keyIdentifier(after: "X509v3 Authority Key Identifier", in: serverText) == caKeyIdentifier)

    let clientText = try await openssl("x509", "-noout", "-text", "-in", client.certificate)
    #expect(clientText.contains("X509v3 Extended Key Usage: \n                TLS Web Client Authentication\n"))
    #expect(!clientText.contains("Subject Alternative Name"))

    let verify = ["verify", "-CAfile", authority.certificate]
    #expect(try await openssl(verify + ["-purpose", "sslserver", server.certificate]).contains("OK"))
    #expect(try await openssl(verify + ["-purpose", "sslclient", server.certificate]).contains("OK"))
    #expect(try await openssl(verify + ["-purpose", "sslclient", client.certificate]).contains("OK"))
    #expect(try await opensslFails(verify + ["-purpose", "sslserver", client.certificate]))

    for pair in [server, client] {
      let fromKey = try await openssl("pkey", "-in", pair.key, "-pubout")
      #expect(try await openssl("x509", "-noout", "-pubkey", "-in", pair.certificate) == fromKey)
      #expect(try await openssl("pkey", "-in", pair.key, "-check", "-noout").contains("valid"))
    }

    #expect(
      try await openssl("x509", "-noout", "-enddate", "-in", server.certificate)
        == "notAfter=\(try CertificateAuthority.expiry(of: server.certificate))\n")
    let week = String(7 * 86_400)
    #expect(try await opensslFails(["x509", "-noout", "-checkend", week, "-in", client.certificate]))
    #expect(try CertificateAuthority.expires(client.certificate, within: .seconds(7 * 86_400)))
    _ = try await openssl("x509", "-noout", "-checkend", week, "-in", server.certificate)
    #expect(try !CertificateAuthority.expires(server.certificate, within: .seconds(7 * 86_400)))
  }

  /// HAProxy 2.6 (OpenSSL) loads a server certificate and key concatenated into one `crt` file and trusts the
  /// CA for client certificates: `haproxy -c` loads both when it checks a configuration (and binds nothing).
  @Test func haproxyLoadsTheServerPairAndTheCA() async throws {
    let directory = try TemporaryDirectory(prefix: "switchyard-pki")
    defer { directory.remove() }
    let authority = try CertificateAuthority.create(in: directory.path("pki"), commonName: "Test CA", days: 30)
    let server = try authority.issue(
      name: "server", commonName: "localhost", usage: .server(ipAddresses: ["127.0.0.1"], dnsNames: ["localhost"]),
      days: 30)
    let combined = directory.path("server-combined.pem")
    try
      (String(contentsOfFile: server.certificate, encoding: .utf8)
      + String(contentsOfFile: server.key, encoding: .utf8))
      .write(toFile: combined, atomically: true, encoding: .utf8)
    try """
    defaults
      mode http
      timeout connect 1s
      timeout client 1s
      timeout server 1s
    frontend secured
      bind 127.0.0.1:8443 ssl crt \(combined) ca-file \(authority.certificate) verify required
      http-request return status 200

    """.write(toFile: directory.path("haproxy.cfg"), atomically: true, encoding: .utf8)
    let check = try await ManagedProcess.run("haproxy", arguments: ["-c", "-f", directory.path("haproxy.cfg")])
    #expect(check.contains("Configuration file is valid"), "\(check)")
  }

  /// A CA from before the Swift PKI (made by `openssl req -x509`), with its key as PKCS#8 or as SEC1,
  /// still issues and renews: `up --secure` on an existing cluster keeps its CA.
  @Test(arguments: ["PRIVATE KEY", "EC PRIVATE KEY"])
  func aCAMadeByOpenSSLStillIssues(keyFormat: String) async throws {
    let directory = try TemporaryDirectory(prefix: "switchyard-pki")
    defer { directory.remove() }
    let pki = directory.path("pki")
    try FileManager.default.createDirectory(atPath: pki, withIntermediateDirectories: true)
    try """
    [req]
    distinguished_name = subject
    prompt = no
    x509_extensions = extensions
    [subject]
    CN = Old CA
    [extensions]
    basicConstraints = critical, CA:TRUE
    keyUsage = critical, keyCertSign, cRLSign
    subjectKeyIdentifier = hash

    """.write(toFile: directory.path("ca.cnf"), atomically: true, encoding: .utf8)
    try await openssl(
      "req", "-x509", "-config", directory.path("ca.cnf"), "-days", "30", "-newkey", "ec", "-pkeyopt",
      "ec_paramgen_curve:prime256v1", "-nodes", "-keyout", "\(pki)/ca-key.pem", "-out", "\(pki)/ca.pem")
    if keyFormat == "EC PRIVATE KEY" {
      try await openssl("ec", "-in", "\(pki)/ca-key.pem", "-out", directory.path("sec1.pem"))
      try FileManager.default.removeItem(atPath: "\(pki)/ca-key.pem")
      try FileManager.default.moveItem(atPath: directory.path("sec1.pem"), toPath: "\(pki)/ca-key.pem")
    }
    let caKey = try String(contentsOfFile: "\(pki)/ca-key.pem", encoding: .utf8)
    #expect(caKey.hasPrefix("-----BEGIN \(keyFormat)-----"))

    let authority = try CertificateAuthority(existingIn: pki)
    let pair = try authority.issue(name: "lb1", commonName: "lb1.tls", usage: .client, days: 1)
    let renewed = try authority.issue(name: "lb1", commonName: "lb1.tls", usage: .client, days: 365)
    #expect(renewed == pair)
    let leaf = try certificate(pair.certificate)
    #expect(leaf.issuer == (try certificate(authority.certificate)).subject)
    try expectKey(pair.key, matches: leaf)
    let verified = try await openssl(
      "verify", "-CAfile", authority.certificate, "-purpose", "sslclient", pair.certificate)
    #expect(verified.contains("OK"))
  }
}

/// Runs `openssl` and returns its standard output; throws when it fails.
@discardableResult
private func openssl(_ arguments: String...) async throws -> String {
  try await openssl(arguments)
}

@discardableResult
private func openssl(_ arguments: [String]) async throws -> String {
  try await ManagedProcess.run("openssl", arguments: arguments, timeout: .seconds(30))
}

/// Whether `openssl` exits unsuccessfully (a refused verification, a certificate that expires).
private func opensslFails(_ arguments: [String]) async throws -> Bool {
  do {
    try await openssl(arguments)
    return false
  } catch let error as ProcessError where error.code == .commandFailed {
    return true
  }
}

/// The colon-separated hex on the line after `heading` in `openssl x509 -text` output.
private func keyIdentifier(after heading: String, in text: String) throws -> String {
  let lines = text.split(separator: "\n")
  let index = try #require(lines.firstIndex { $0.contains(heading) })
  let identifier = lines[index + 1].trimmingCharacters(in: .whitespaces)
  #expect(identifier.count == 59, "\(identifier)")
  return identifier
}
