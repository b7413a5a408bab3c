import Foundation
import SwitchyardModel

/// A certificate as etcd holds it at `/switchyard/certs/<name>`: JSON with the PEM chain (leaf first), the
/// private key sealed with the cluster key, the hosts it serves (SNI), where it came from and when it ends.
///
/// ```json
/// {"chain_pem":"-----BEGIN CERTIFICATE-----\n…","hosts":["shop.example.com"],"key_id":"4f1c…",
///  "not_after":"2027-01-01T00:00:00Z","sealed_key":"<base64 of nonce, ciphertext and tag>","source":"manual"}
/// ```
///
/// Parsing is strict (unknown fields refused, at most ``maxValueBytes``), but checks only the form: the
/// chain and key are validated by ``CertificateBundle/open(_:with:now:)``, which needs the cluster key.
public struct CertificateRecord: Sendable, Hashable {
  /// Who wrote a certificate.
  public enum Source: String, Sendable, Hashable, CaseIterable {
    /// An operator, with `switchyard cert add`.
    case manual
    /// The cluster's ACME client.
    case acme
  }

  /// Every certificate lives under this prefix.
  public static let root = "/switchyard/certs/"
  /// Largest accepted value, in bytes.
  public static let maxValueBytes = 64 * 1024

  /// The certificate's name, from its key.
  public let name: CertificateName
  /// The PEM chain, leaf first.
  public let chainPEM: String
  /// The private key's PEM, sealed with the cluster key for this name.
  public let sealedKey: SealedSecret
  /// The hosts it serves: sorted, unique, not empty.
  public let hosts: [HostPattern]
  /// Who wrote it.
  public let source: Source
  /// The end of the leaf's validity.
  public let notAfter: Date
  /// The etcd revision that last wrote it; 0 for one not read from etcd.
  public let modRevision: Int64

  init(
    name: CertificateName, chainPEM: String, sealedKey: SealedSecret, hosts: [HostPattern], source: Source,
    notAfter: Date, modRevision: Int64
  ) {
    self.name = name
    self.chainPEM = chainPEM
    self.sealedKey = sealedKey
    self.hosts = hosts
    self.source = source
    self.notAfter = notAfter
    self.modRevision = modRevision
  }

  /// The key of certificate `name`: `/switchyard/certs/<name>`.
  public static func path(for name: CertificateName) -> String { root + name.rawValue }

  /// This record's key.
  public var path: String { Self.path(for: name) }

  /// Parses one etcd entry under ``root``. Problems name the field and never quote the sealed key.
  public static func parse(key: [UInt8], value: [UInt8], modRevision: Int64) throws(CertificateProblem)
    -> CertificateRecord
  {
    let keyText = String(decoding: key, as: UTF8.self)
    guard keyText.hasPrefix(root), String(validating: key, as: UTF8.self) != nil else {
      throw CertificateProblem(field: "key", reason: "the key \(printable(keyText)) is not under \(root)")
    }
    let segment = String(keyText.dropFirst(root.count))
    let name: CertificateName
    do { name = try CertificateName(validating: segment) } catch {
      throw CertificateProblem(field: "key", reason: "the key \(printable(keyText)): \(error.reason)")
    }
    do throws(CertificateProblem) {
      let object = try jsonObject(value)
      let known: Set<String> = ["chain_pem", "hosts", "key_id", "not_after", "sealed_key", "source"]
      if let unknown = object.keys.sorted().first(where: { !known.contains($0) }) {
        throw CertificateProblem(
          field: "record",
          reason:
            "the record has an unknown field \"\(printable(unknown))\"; known are \(known.sorted().joined(separator: ", "))"
        )
      }
      let chainPEM = try string("chain_pem", in: object)
      let keyID = try string("key_id", in: object)
      guard SealedSecret.isKeyID(keyID) else {
        throw CertificateProblem(field: "key_id", reason: "key_id must be 16 lower-case hex digits")
      }
      guard let sealed = Data(base64Encoded: try string("sealed_key", in: object)) else {
        throw CertificateProblem(field: "sealed_key", reason: "sealed_key is not base64")
      }
      guard sealed.count >= 12 + 16 + 1 else {
        throw CertificateProblem(field: "sealed_key", reason: "sealed_key is too short to hold a sealed key")
      }
      let sourceText = try string("source", in: object)
      guard let source = Source(rawValue: sourceText) else {
        throw CertificateProblem(field: "source", reason: "source must be \"manual\" or \"acme\"")
      }
      guard let notAfter = CertificateDates.parse(try string("not_after", in: object)) else {
        throw CertificateProblem(field: "not_after", reason: "not_after must be a date such as 2027-01-01T00:00:00Z")
      }
      return CertificateRecord(
        name: name, chainPEM: chainPEM, sealedKey: SealedSecret(keyID: keyID, combined: Array(sealed)),
        hosts: try hosts(in: object), source: source, notAfter: notAfter, modRevision: modRevision)
    } catch {
      throw error.named(name)
    }
  }

  /// The value to write: compact JSON with sorted keys.
  public func jsonValue() -> [UInt8] {
    let wire = Wire(
      chainPEM: chainPEM, hosts: hosts.map(\.text), keyID: sealedKey.keyID, notAfter: CertificateDates.text(notAfter),
      sealedKey: Data(sealedKey.combined).base64EncodedString(), source: source.rawValue)
    let encoder = JSONEncoder()
    encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
    do { return Array(try encoder.encode(wire)) } catch {
      preconditionFailure("a record of strings encodes")
    }
  }

  private struct Wire: Encodable {
    var chainPEM: String
    var hosts: [String]
    var keyID: String
    var notAfter: String
    var sealedKey: String
    var source: String

    enum CodingKeys: String, CodingKey {
      case chainPEM = "chain_pem"
      case hosts
      case keyID = "key_id"
      case notAfter = "not_after"
      case sealedKey = "sealed_key"
      case source
    }
  }

  // MARK: - Parsing

  private static func jsonObject(_ value: [UInt8]) throws(CertificateProblem) -> [String: Any] {
    guard value.count <= maxValueBytes else {
      throw CertificateProblem(
        field: "record", reason: "the record has \(value.count) bytes; at most \(maxValueBytes) are accepted")
    }
    guard let parsed = try? JSONSerialization.jsonObject(with: Data(value)), let object = parsed as? [String: Any]
    else {
      throw CertificateProblem(field: "record", reason: "the record is not a JSON object")
    }
    return object
  }

  private static func string(_ field: String, in object: [String: Any]) throws(CertificateProblem) -> String {
    guard let member = object[field] else { throw CertificateProblem(field: field, reason: "\(field) is missing") }
    guard let text = member as? String, !(member is NSNumber) else {
      throw CertificateProblem(field: field, reason: "\(field) must be a string")
    }
    return text
  }

  private static func hosts(in object: [String: Any]) throws(CertificateProblem) -> [HostPattern] {
    guard let member = object["hosts"] else { throw CertificateProblem(field: "hosts", reason: "hosts is missing") }
    guard let list = member as? [Any] else {
      throw CertificateProblem(field: "hosts", reason: "hosts must be an array of strings")
    }
    guard !list.isEmpty, list.count <= CertificateBundle.maxHosts else {
      throw CertificateProblem(
        field: "hosts", reason: "hosts must hold 1 to \(CertificateBundle.maxHosts) entries, not \(list.count)")
    }
    var patterns: [HostPattern] = []
    for (index, element) in list.enumerated() {
      guard let text = element as? String else {
        throw CertificateProblem(field: "hosts", reason: "hosts entry \(index) must be a string")
      }
      do { patterns.append(try HostPattern(validating: text)) } catch {
        throw CertificateProblem(field: "hosts", reason: "hosts entry \(index) \(error.reason)")
      }
    }
    return Array(Set(patterns)).sorted()
  }
}
