import Foundation

#if canImport(Glibc)
  import Glibc
#endif

/// A private key and the certificate for it, as PEM files.
public struct KeyPair: Sendable, Hashable, Codable {
  /// The certificate.
  public var certificate: String
  /// Its private key (mode 0600).
  public var key: String

  /// Names an existing pair.
  public init(certificate: String, key: String) {
    self.certificate = certificate
    self.key = key
  }
}

/// A small certificate authority kept as PEM files in one directory, driven through the `openssl` command
/// (OpenSSL 1.1 or 3), with our own configuration files so that the system's `openssl.cnf` does not matter.
///
/// Keys are P-256: every TLS stack involved (Go's in etcd, BoringSSL in swift-nio-ssl, HAProxy's OpenSSL)
/// accepts them, and they take milliseconds to generate where RSA takes up to a second.
public struct CertificateAuthority: Sendable {
  /// What a leaf certificate may be used for.
  public enum Usage: Sendable, Hashable {
    /// A server that is also a TLS client with the same certificate (etcd members talk to each other,
    /// and etcd 3.4 connects to its own client port for its JSON gateway): serverAuth and clientAuth, for
    /// the given IP addresses and DNS names.
    case server(ipAddresses: [String], dnsNames: [String])
    /// A TLS client: clientAuth only.
    case client
  }

  /// The directory that holds `ca.pem` and `ca-key.pem`.
  public let directory: String

  /// The CA's certificate, which both sides of every connection trust.
  public var certificate: String { "\(directory)/ca.pem" }
  private var key: String { "\(directory)/ca-key.pem" }

  /// The CA in `directory`; fails when its files are missing.
  public init(existingIn directory: String) throws {
    self.directory = directory
    for path in [certificate, key] where !FileManager.default.isReadableFile(atPath: path) {
      throw CertificateError("the certificate authority in \(directory) is incomplete: \(path) is missing")
    }
  }

  private init(directory: String) { self.directory = directory }

  /// Creates a new CA in `directory` (created with mode 0700 if missing), replacing any CA there.
  public static func create(in directory: String, commonName: String, days: Int) throws -> CertificateAuthority {
    try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
    chmod(directory, 0o700)
    let authority = CertificateAuthority(directory: directory)
    let configuration = "\(directory)/ca.cnf"
    try Self.configuration(
      commonName: commonName,
      extensions: [
        "basicConstraints = critical, CA:TRUE",
        "keyUsage = critical, keyCertSign, cRLSign",
        "subjectKeyIdentifier = hash",
      ]
    ).write(toFile: configuration, atomically: true, encoding: .utf8)
    try Self.openssl(
      ["req", "-x509", "-config", configuration, "-days", String(days)]
        + Self.newKey(authority.key) + ["-out", authority.certificate]
    )
    chmod(authority.key, 0o600)
    return authority
  }

  /// Issues a certificate `name.pem` with key `name-key.pem` in the CA's directory, valid for `days`.
  ///
  /// The new files replace old ones by rename, the key first: a process that reads them for each TLS
  /// handshake (etcd does) sees either the old pair or the new one, except for the instant between the two
  /// renames.
  @discardableResult
  public func issue(name: String, commonName: String, usage: Usage, days: Int) throws -> KeyPair {
    let pair = KeyPair(certificate: "\(directory)/\(name).pem", key: "\(directory)/\(name)-key.pem")
    let staging = "\(directory)/.\(name).\(UUID().uuidString.prefix(8))"
    defer {
      for suffix in [".cnf", ".csr", ".pem", "-key.pem"] {
        try? FileManager.default.removeItem(atPath: staging + suffix)
      }
    }
    var extensions = [
      "basicConstraints = critical, CA:FALSE",
      "keyUsage = critical, digitalSignature, keyEncipherment",
      "subjectKeyIdentifier = hash",
      "authorityKeyIdentifier = keyid",
    ]
    switch usage {
    case .server(let ipAddresses, let dnsNames):
      extensions.append("extendedKeyUsage = serverAuth, clientAuth")
      let names = ipAddresses.map { "IP:\($0)" } + dnsNames.map { "DNS:\($0)" }
      if !names.isEmpty { extensions.append("subjectAltName = " + names.joined(separator: ", ")) }
    case .client:
      extensions.append("extendedKeyUsage = clientAuth")
    }
    try Self.configuration(commonName: commonName, extensions: extensions)
      .write(toFile: staging + ".cnf", atomically: true, encoding: .utf8)
    try Self.openssl(
      ["req", "-new", "-config", staging + ".cnf"] + Self.newKey(staging + "-key.pem") + ["-out", staging + ".csr"])
    try Self.openssl([
      "x509", "-req", "-in", staging + ".csr", "-CA", certificate, "-CAkey", key,
      "-CAcreateserial", "-CAserial", "\(directory)/ca.srl", "-days", String(days),
      "-extfile", staging + ".cnf", "-extensions", "extensions", "-out", staging + ".pem",
    ])
    chmod(staging + "-key.pem", 0o600)
    for (from, to) in [(staging + "-key.pem", pair.key), (staging + ".pem", pair.certificate)] {
      guard rename(from, to) == 0 else {
        throw CertificateError(
          "cannot move the new certificate into place at \(to): \(String(cString: strerror(errno)))")
      }
    }
    return pair
  }

  /// Whether the certificate at `path` expires within `interval` (or already has).
  public static func expires(_ path: String, within interval: Duration) throws -> Bool {
    let seconds = max(0, interval.components.seconds)
    let status = try run(["x509", "-checkend", String(seconds), "-noout", "-in", path])
    switch status.code {
    case 0: return false
    case 1 where !status.output.contains("unable to load") && !status.output.contains("Could not"): return true
    default: throw CertificateError("cannot read the certificate \(path): \(status.output)")
    }
  }

  /// The end of the certificate's validity (`notAfter`), as openssl prints it.
  public static func expiry(of path: String) throws -> String {
    let status = try run(["x509", "-enddate", "-noout", "-in", path])
    guard status.code == 0, let line = status.output.split(separator: "\n").first(where: { $0.hasPrefix("notAfter=") })
    else { throw CertificateError("cannot read the certificate \(path): \(status.output)") }
    return String(line.dropFirst("notAfter=".count))
  }

  private static func newKey(_ path: String) -> [String] {
    ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes", "-keyout", path]
  }

  private static func configuration(commonName: String, extensions: [String]) -> String {
    let lines =
      ["[req]", "distinguished_name = subject", "prompt = no", "x509_extensions = extensions", "[subject]"]
      + ["CN = \(commonName)", "[extensions]"] + extensions
    return lines.joined(separator: "\n") + "\n"
  }

  private static func openssl(_ arguments: [String]) throws {
    let status = try run(arguments)
    guard status.code == 0 else {
      throw CertificateError("openssl \(arguments.first ?? "") failed (exit \(status.code)): \(status.output)")
    }
  }

  /// Runs openssl with standard output and error captured together.
  private static func run(_ arguments: [String]) throws -> (code: Int32, output: String) {
    let process = Process()
    process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
    process.arguments = ["openssl"] + arguments
    let pipe = Pipe()
    process.standardOutput = pipe
    process.standardError = pipe
    process.standardInput = FileHandle.nullDevice
    do {
      try process.run()
    } catch {
      throw CertificateError("cannot run openssl (apt-get install openssl): \(error)")
    }
    let data = pipe.fileHandleForReading.readDataToEndOfFile()
    process.waitUntilExit()
    let output = String(decoding: data, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
    if process.terminationStatus == 127 { throw CertificateError("openssl is not installed (apt-get install openssl)") }
    return (process.terminationStatus, output)
  }
}

/// A certificate could not be made or read.
public struct CertificateError: Error, CustomStringConvertible {
  /// What went wrong.
  public var description: String

  init(_ description: String) { self.description = description }
}
