/// The characters allowed in service names and instance ids: letters, digits, `-`, `_`, `.`.
///
/// The set is small on purpose: these names end up in etcd keys, HAProxy backend and server names
/// and log lines, and none of those can then be broken by a name.
enum SafeName {
  static func validate(_ text: String, what: String, maxLength: Int) -> String? {
    if text.isEmpty { return "\(what) is empty" }
    if text.utf8.count > maxLength { return "\(what) is longer than \(maxLength) characters" }
    if text == "." || text == ".." { return "\(what) cannot be \"\(text)\"" }
    for scalar in text.unicodeScalars where !isAllowed(scalar) {
      return "\(what) contains \(describe(scalar)); only letters, digits, \"-\", \"_\" and \".\" are allowed"
    }
    return nil
  }

  static func isAllowed(_ scalar: Unicode.Scalar) -> Bool {
    switch scalar {
    case "a"..."z", "A"..."Z", "0"..."9", "-", "_", ".": true
    default: false
    }
  }
}

/// Names a character for an error message without printing control characters raw.
func describe(_ scalar: Unicode.Scalar) -> String {
  switch scalar {
  case "\n": return "a newline"
  case "\r": return "a carriage return"
  case "\t": return "a tab"
  case " ": return "a space"
  default:
    if scalar.value < 0x20 || scalar.value == 0x7f || scalar.value > 0x7e {
      return "the character U+\(String(scalar.value, radix: 16, uppercase: true))"
    }
    return "\"\(scalar)\""
  }
}

/// A validated service name, such as `backend`.
public struct ServiceName: Sendable, Hashable, Comparable, CustomStringConvertible {
  /// The name.
  public let rawValue: String

  /// The default service, as in the original demo.
  public static let backend = ServiceName(unchecked: "backend")

  /// Longest accepted name.
  public static let maxLength = 63

  /// Validates `text`.
  public init(validating text: String) throws(RegistrationError) {
    if let problem = SafeName.validate(text, what: "service name", maxLength: Self.maxLength) {
      throw RegistrationError(field: "service", reason: problem)
    }
    rawValue = text
  }

  private init(unchecked: String) { rawValue = unchecked }

  /// The name.
  public var description: String { rawValue }

  /// The HAProxy backend that serves this service (`svc_<name>`).
  public var haproxyBackendName: String { "svc_\(rawValue)" }

  /// Orders by name.
  public static func < (lhs: ServiceName, rhs: ServiceName) -> Bool { lhs.rawValue < rhs.rawValue }
}

/// A validated instance id, such as `backend-1`.
public struct InstanceID: Sendable, Hashable, Comparable, CustomStringConvertible {
  /// The id.
  public let rawValue: String

  /// Longest accepted id.
  public static let maxLength = 128

  /// Validates `text`.
  public init(validating text: String) throws(RegistrationError) {
    if let problem = SafeName.validate(text, what: "instance id", maxLength: Self.maxLength) {
      throw RegistrationError(field: "id", reason: problem)
    }
    rawValue = text
  }

  /// The id.
  public var description: String { rawValue }

  /// The HAProxy server name for this instance. HAProxy allows letters, digits, `-`, `_`, `.` and
  /// `:` in names; instance ids use a subset, so the id is the name.
  public var haproxyServerName: String { rawValue }

  /// Orders by id.
  public static func < (lhs: InstanceID, rhs: InstanceID) -> Bool { lhs.rawValue < rhs.rawValue }
}

/// Where an instance is registered: `/services/<service>/<instance-id>`.
public struct RegistrationKey: Sendable, Hashable, Comparable, CustomStringConvertible {
  /// Every registration lives under this prefix.
  public static let root = "/services/"

  /// The service.
  public var service: ServiceName
  /// The instance.
  public var instance: InstanceID

  /// Creates a key.
  public init(service: ServiceName, instance: InstanceID) {
    self.service = service
    self.instance = instance
  }

  /// Parses a raw etcd key, rejecting anything but exactly `/services/<service>/<id>`.
  public init(parsing key: String) throws(RegistrationError) {
    guard key.hasPrefix(Self.root) else {
      throw RegistrationError(key: key, reason: "is not under \(Self.root)")
    }
    let rest = key.dropFirst(Self.root.count)
    let parts = rest.split(separator: "/", omittingEmptySubsequences: false)
    guard parts.count == 2 else {
      throw RegistrationError(key: key, reason: "must be \(Self.root)<service>/<instance-id>")
    }
    do {
      service = try ServiceName(validating: String(parts[0]))
      instance = try InstanceID(validating: String(parts[1]))
    } catch {
      throw RegistrationError(key: key, field: error.field, reason: error.reason)
    }
  }

  /// The etcd key.
  public var path: String { "\(Self.root)\(service.rawValue)/\(instance.rawValue)" }

  /// The prefix that holds every instance of `service` (`/services/backend/`).
  public static func prefix(for service: ServiceName) -> String { "\(root)\(service.rawValue)/" }

  /// The etcd key.
  public var description: String { path }

  /// Orders by service, then instance.
  public static func < (lhs: RegistrationKey, rhs: RegistrationKey) -> Bool {
    (lhs.service, lhs.instance) < (rhs.service, rhs.instance)
  }
}
