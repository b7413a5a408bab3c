/// Why a registration (or a name, or a key) was rejected: which key, which field, what was wrong.
public struct RegistrationError: Error, Hashable, Sendable, CustomStringConvertible {
  /// The etcd key concerned, when known.
  public var key: String?
  /// The field concerned (`port`, `address`, …), when the problem is in one field.
  public var field: String?
  /// What was wrong, in words.
  public var reason: String

  /// Creates an error.
  public init(key: String? = nil, field: String? = nil, reason: String) {
    self.key = key
    self.field = field
    self.reason = reason
  }

  /// `/services/backend/a: field "port": 70000 is outside 1–65535`
  public var description: String {
    var parts: [String] = []
    if let key { parts.append(key) }
    if let field { parts.append("field \"\(field)\"") }
    parts.append(reason)
    return parts.joined(separator: ": ")
  }

  func at(key: String) -> RegistrationError {
    var copy = self
    copy.key = key
    return copy
  }
}
