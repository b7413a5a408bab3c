import SwitchyardModel

/// A certificate's name: the `<name>` in `/switchyard/certs/<name>`.
///
/// The rules of a route's name (letters, digits, `-`, `_`, `.`, at most 128 bytes), so it can be an etcd
/// key segment, a file name and part of an HAProxy crt-list entry without escaping. There is deliberately
/// no string-literal conversion: every name from outside goes through `init(validating:)`.
public struct CertificateName: Sendable, Hashable, Comparable, CustomStringConvertible {
  /// The name; only letters, digits, `-`, `_` and `.`.
  public let rawValue: String

  /// Longest accepted name, in bytes.
  public static let maxLength = RouteName.maxLength

  /// Validates `text`; problems have field `name`.
  public init(validating text: String) throws(CertificateProblem) {
    do {
      rawValue = try RouteName(validating: text).rawValue
    } catch {
      throw CertificateProblem(field: "name", reason: "the name \(error.reason)")
    }
  }

  /// The name.
  public var description: String { rawValue }

  /// Orders by name (byte order, so the same on every machine).
  public static func < (lhs: CertificateName, rhs: CertificateName) -> Bool { lhs.rawValue < rhs.rawValue }
}
