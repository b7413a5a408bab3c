import Crypto
import Foundation

/// The 32-byte AES-256-GCM key that seals certificates' private keys in etcd.
///
/// Only load-balancer nodes, and operators who add certificates, hold it: an etcd backup, or a user who may
/// read `/switchyard/certs/`, gets no private key without it. Its file holds the key in base64 on one line.
/// ``description`` shows only ``id``, never the key.
public struct ClusterKey: Sendable, CustomStringConvertible {
  /// Bytes of key: AES-256.
  public static let byteCount = 32

  private let bytes: [UInt8]

  /// A hex digest that tells keys apart (the first 8 bytes of SHA-256 over a fixed label and the key); it
  /// reveals nothing of the key. Each sealed secret carries the id of the key that sealed it.
  public let id: String

  private init(bytes: [UInt8]) {
    self.bytes = bytes
    var hasher = SHA256()
    hasher.update(data: Array("switchyard cluster key".utf8))
    hasher.update(data: bytes)
    id = hexString(hasher.finalize().prefix(8))
  }

  /// A new random key.
  public static func generate() -> ClusterKey {
    ClusterKey(bytes: SymmetricKey(size: .bits256).withUnsafeBytes { Array($0) })
  }

  /// Reads a key file: base64 of exactly 32 bytes, surrounding whitespace ignored. The problem says what is
  /// wrong without repeating the file's contents.
  public init(fileContents: String) throws(CertificateProblem) {
    let text = fileContents.trimmingCharacters(in: .whitespacesAndNewlines)
    if text.isEmpty {
      throw CertificateProblem(field: "cluster key", reason: "the cluster key file is empty")
    }
    guard let data = Data(base64Encoded: text) else {
      throw CertificateProblem(
        field: "cluster key",
        reason: "the cluster key file is not base64 on one line (make one with `switchyard cert keygen`)")
    }
    guard data.count == Self.byteCount else {
      throw CertificateProblem(
        field: "cluster key",
        reason: "the cluster key file holds \(data.count) bytes; a cluster key is \(Self.byteCount) bytes")
    }
    self.init(bytes: Array(data))
  }

  /// What the key file holds: the key in base64 and a newline.
  public var fileContents: String { Data(bytes).base64EncodedString() + "\n" }

  /// `cluster key <id>`.
  public var description: String { "cluster key \(id)" }

  /// Seals `plaintext` with AES-256-GCM and a fresh random nonce. The certificate's name is authenticated
  /// with it, so a sealed key copied to another name does not open there.
  public func seal(_ plaintext: [UInt8], for name: CertificateName) -> SealedSecret {
    do {
      let box = try AES.GCM.seal(
        plaintext, using: SymmetricKey(data: bytes), authenticating: Self.associatedData(for: name))
      guard let combined = box.combined else {
        preconditionFailure("AES-GCM with the default nonce has a combined form")
      }
      return SealedSecret(keyID: id, combined: Array(combined))
    } catch {
      preconditionFailure("AES-GCM sealing with a 32-byte key cannot fail")
    }
  }

  /// Opens what ``seal(_:for:)`` sealed for the same name. Fails when another key sealed it, when it was
  /// sealed for another name, or when any byte was changed.
  public func open(_ sealed: SealedSecret, for name: CertificateName) throws(CertificateProblem) -> [UInt8] {
    guard sealed.keyID == id else {
      throw CertificateProblem(
        name: name.rawValue, field: "sealed key",
        reason:
          "the key was sealed with cluster key \(sealed.printableKeyID), not with this node's cluster key \(id)")
    }
    do {
      let box = try AES.GCM.SealedBox(combined: sealed.combined)
      let opened = try AES.GCM.open(
        box, using: SymmetricKey(data: bytes), authenticating: Self.associatedData(for: name))
      return Array(opened)
    } catch {
      throw CertificateProblem(
        name: name.rawValue, field: "sealed key",
        reason:
          "the sealed key does not open with cluster key \(id): it was changed, or sealed for another certificate name")
    }
  }

  /// What each sealed key authenticates besides its bytes: a label with a version, and the name.
  private static func associatedData(for name: CertificateName) -> [UInt8] {
    Array("switchyard certificate key v1\u{0}".utf8) + Array(name.rawValue.utf8)
  }
}

/// A private key sealed by a ``ClusterKey``: the sealing key's id, and nonce, ciphertext and tag in one.
public struct SealedSecret: Sendable, Hashable {
  /// The ``ClusterKey/id`` of the key that sealed it.
  public let keyID: String
  /// 12 bytes of nonce, the ciphertext, 16 bytes of tag.
  public let combined: [UInt8]

  /// Names sealed bytes (as read from a record).
  public init(keyID: String, combined: [UInt8]) {
    self.keyID = keyID
    self.combined = combined
  }

  /// Whether `text` has the form of a key id: 16 lower-case hex digits.
  static func isKeyID(_ text: String) -> Bool {
    text.utf8.count == 16 && text.utf8.allSatisfy { (0x30...0x39).contains($0) || (0x61...0x66).contains($0) }
  }

  /// The key id for a message: itself when it has the form of one, else a placeholder.
  var printableKeyID: String { Self.isKeyID(keyID) ? keyID : "(an invalid id)" }
}

/// Lower-case hex.
func hexString(_ bytes: some Sequence<UInt8>) -> String {
  let digits = Array("0123456789abcdef".utf8)
  var result: [UInt8] = []
  for byte in bytes {
    result.append(digits[Int(byte >> 4)])
    result.append(digits[Int(byte & 0x0f)])
  }
  return String(decoding: result, as: UTF8.self)
}
