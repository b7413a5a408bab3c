import Crypto
import Foundation
import X509

#if canImport(Glibc)
  import Glibc
#endif

/// Reading and writing the CA's PEM files.
enum PEMFiles {
  /// The certificate in the PEM file at `path`.
  static func readCertificate(_ path: String) throws -> Certificate {
    do {
      return try Certificate(pemEncoded: try String(contentsOfFile: path, encoding: .utf8))
    } catch {
      throw CertificateError("cannot read the certificate \(path): \(error)")
    }
  }

  /// The P-256 private key in the PEM file at `path`, PKCS#8 (`PRIVATE KEY`) or SEC1 (`EC PRIVATE KEY`).
  static func readPrivateKey(_ path: String) throws -> P256.Signing.PrivateKey {
    do {
      return try P256.Signing.PrivateKey(pemRepresentation: try String(contentsOfFile: path, encoding: .utf8))
    } catch {
      throw CertificateError("cannot read the P-256 private key \(path): \(error)")
    }
  }

  /// Writes both files next to their destinations, then renames them into place, the key first. The key has
  /// mode 0600 from its creation; the certificate 0666 less the umask, as `openssl` made it.
  static func install(key: String, certificate: String, as pair: KeyPair) throws {
    let directory = (pair.certificate as NSString).deletingLastPathComponent
    let name = ((pair.certificate as NSString).lastPathComponent as NSString).deletingPathExtension
    let staging = "\(directory)/.\(name).\(UUID().uuidString.prefix(8))"
    let moves = [(staging + "-key.pem", pair.key), (staging + ".pem", pair.certificate)]
    defer { for (from, _) in moves { unlink(from) } }
    try write(key, to: moves[0].0, mode: 0o600)
    try write(certificate, to: moves[1].0, mode: 0o666)
    for (from, to) in moves {
      guard rename(from, to) == 0 else {
        throw CertificateError(
          "cannot move the new certificate into place at \(to): \(String(cString: strerror(errno)))")
      }
    }
  }

  /// Creates `path` with `mode` (less the umask) and writes `text` to it, ending in a newline as `openssl`
  /// writes PEM: swift-crypto's and swift-certificates' PEM strings have none, and without it a certificate
  /// and its key concatenated into one file (HAProxy's `crt`) run their armour lines together.
  private static func write(_ text: String, to path: String, mode: mode_t) throws {
    let descriptor = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, mode)
    guard descriptor >= 0 else {
      throw CertificateError("cannot create \(path): \(String(cString: strerror(errno)))")
    }
    let file = FileHandle(fileDescriptor: descriptor, closeOnDealloc: true)
    do {
      try file.write(contentsOf: Data((text.hasSuffix("\n") ? text : text + "\n").utf8))
      try file.close()
    } catch {
      throw CertificateError("cannot write \(path): \(error)")
    }
  }
}

/// Dates as `openssl x509 -enddate` prints them, which `switchyard status` shows and parses.
enum OpenSSLTime {
  private static let months = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"]

  /// `Dec  3 20:33:13 2026 GMT`: the day padded to two characters with a space.
  static func format(_ date: Date) -> String {
    var calendar = Calendar(identifier: .gregorian)
    calendar.timeZone = TimeZone(identifier: "GMT")!
    let parts = calendar.dateComponents([.year, .month, .day, .hour, .minute, .second], from: date)
    func two(_ value: Int?) -> String {
      let text = String(value ?? 0)
      return text.count < 2 ? "0" + text : text
    }
    let day = String(parts.day ?? 0)
    let padded = day.count < 2 ? " " + day : day
    let time = [parts.hour, parts.minute, parts.second].map(two).joined(separator: ":")
    return "\(months[(parts.month ?? 1) - 1]) \(padded) \(time) \(parts.year ?? 0) GMT"
  }
}
