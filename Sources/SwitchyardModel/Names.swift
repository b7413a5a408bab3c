/// The characters of service names and instance ids: ASCII letters, digits, `-`, `_`, `.`.
///
/// The set is small on purpose: these names become etcd key segments, HAProxy backend and server
/// names and log fields, and nothing in it can break any of those.
enum SafeName {
  /// Why `text` is not a safe name, or `nil` when it is.
  static func problem(_ text: String, maxLength: Int) -> String? {
    if text.isEmpty { return "is empty" }
    if text == "." || text == ".." { return "cannot be \(quoted(text))" }
    for scalar in text.unicodeScalars where !isAllowed(scalar) {
      return "contains \(describe(scalar)); only letters, digits, \"-\", \"_\" and \".\" are allowed"
    }
    if text.utf8.count > maxLength { return "is longer than \(maxLength) characters" }
    return nil
  }

  static func isAllowed(_ scalar: Unicode.Scalar) -> Bool {
    switch scalar {
    case "a"..."z", "A"..."Z", "0"..."9", "-", "_", ".": true
    default: false
    }
  }
}

/// A validated service name, such as `backend`: the `<service>` in `/services/<service>/<instance-id>`.
///
/// There is deliberately no string-literal conversion: every name from outside goes through
/// `init(validating:)`.
public struct ServiceName: Sendable, Hashable, Comparable, CustomStringConvertible {
  /// The name; only letters, digits, `-`, `_` and `.`.
  public let rawValue: String

  /// The default service, `backend`, as in the original demo.
  public static let backend = ServiceName(unchecked: "backend")

  /// Longest accepted name (keeps `svc_<name>` and key paths short).
  public static let maxLength = 63

  /// Validates `text`; errors have code `.invalidName` and field `service`.
  public init(validating text: String) throws(RegistrationError) {
    if let problem = SafeName.problem(text, maxLength: Self.maxLength) {
      throw RegistrationError(code: .invalidName, field: "service", reason: problem)
    }
    rawValue = text
  }

  private init(unchecked: String) { rawValue = unchecked }

  /// The HAProxy backend that serves this service: `svc_<name>`. HAProxy proxy names allow
  /// letters, digits, `-`, `_`, `.` and `:`, a superset of ours, so nothing needs escaping.
  public var haproxyBackendName: String { "svc_\(rawValue)" }

  /// The name.
  public var description: String { rawValue }

  /// Orders by name (byte order, so the same on every machine).
  public static func < (lhs: ServiceName, rhs: ServiceName) -> Bool { lhs.rawValue < rhs.rawValue }
}

/// A validated instance id, such as `backend-1`: the `<instance-id>` in `/services/<service>/<instance-id>`.
///
/// There is deliberately no string-literal conversion: every id from outside goes through
/// `init(validating:)`.
public struct InstanceID: Sendable, Hashable, Comparable, CustomStringConvertible {
  /// The id; only letters, digits, `-`, `_` and `.`.
  public let rawValue: String

  /// Longest accepted id.
  public static let maxLength = 128

  /// Validates `text`; errors have code `.invalidName` and field `id`.
  public init(validating text: String) throws(RegistrationError) {
    if let problem = SafeName.problem(text, maxLength: Self.maxLength) {
      throw RegistrationError(code: .invalidName, field: "id", reason: problem)
    }
    rawValue = text
  }

  /// The HAProxy server name for this instance: the id itself. HAProxy server names allow letters,
  /// digits, `-`, `_`, `.` and `:`; ids use a subset, so the name is unique per backend and needs
  /// no escaping.
  public var haproxyServerName: String { rawValue }

  /// The id.
  public var description: String { rawValue }

  /// Orders by id (byte order, so the same on every machine).
  public static func < (lhs: InstanceID, rhs: InstanceID) -> Bool { lhs.rawValue < rhs.rawValue }
}
