/// Why a registration, a name or a key was rejected: which key, which field, what was wrong.
///
/// The description is one line that is safe to log, whatever the input was:
/// `/services/backend/a: field "port": 70000 is outside 1–65535`. Raw input never appears in it
/// unescaped; `key` keeps the key as read, for programs.
public struct RegistrationError: Error, Hashable, Sendable, CustomStringConvertible {
  /// What kind of problem it is. New codes may be added without breaking the API.
  public struct Code: Hashable, Sendable, CustomStringConvertible {
    private enum Wrapped: Hashable, Sendable {
      case invalidName
      case invalidKey
      case invalidValue
      case invalidField
      case notServed
    }

    private let wrapped: Wrapped

    private init(_ wrapped: Wrapped) { self.wrapped = wrapped }

    /// A service name or instance id outside the allowed characters or length.
    public static let invalidName = Code(.invalidName)
    /// An etcd key that is not `/services/<service>/<instance-id>` with valid names.
    public static let invalidKey = Code(.invalidKey)
    /// A value that cannot be read at all: too large, not UTF-8, neither a JSON object nor `host:port`.
    public static let invalidValue = Code(.invalidValue)
    /// A value that was read, but one of its fields is missing or wrong; `field` says which.
    public static let invalidField = Code(.invalidField)
    /// A valid registration that this node does not serve: it asks for something the node is not set up
    /// for (TLS to the backend without a CA to verify it against).
    public static let notServed = Code(.notServed)

    /// The code's name.
    public var description: String {
      switch wrapped {
      case .invalidName: "invalid name"
      case .invalidKey: "invalid key"
      case .invalidValue: "invalid value"
      case .invalidField: "invalid field"
      case .notServed: "not served"
      }
    }
  }

  /// What kind of problem it is.
  public var code: Code
  /// The etcd key concerned, as read (possibly with unsafe characters), when known.
  public var key: String?
  /// The field concerned (`port`, `address`, `check.path`, `service`, `id`, …), when there is one.
  public var field: String?
  /// What was wrong, in words. Never contains raw input: quoted input is escaped and shortened.
  public var reason: String

  /// Creates an error.
  public init(code: Code, key: String? = nil, field: String? = nil, reason: String) {
    self.code = code
    self.key = key
    self.field = field
    self.reason = reason
  }

  /// `/services/backend/a: field "port": 70000 is outside 1–65535`, on one line.
  public var description: String {
    var parts: [String] = []
    if let key { parts.append(escaped(key, limit: 200)) }
    if let field { parts.append("field \"\(field)\"") }
    parts.append(reason)
    return parts.joined(separator: ": ")
  }

  /// ``key`` made safe for a log line or a status page (see ``RegistrationError/escape(_:limit:)``).
  public var escapedKey: String? { key.map { Self.escape($0, limit: 200) } }

  /// Text read from etcd made safe for one log line or a status page: printable ASCII as is (with `\`
  /// and `"` escaped), line breaks, tabs and everything else as `\n`, `\r`, `\t` or `\u{…}`, cut at
  /// `limit` characters. A key or value can then never start a line of its own or pose as another field.
  public static func escape(_ text: some StringProtocol, limit: Int = 200) -> String {
    escaped(text, limit: limit)
  }

  /// The same error, attributed to an etcd key.
  func at(key: String, code: Code? = nil) -> RegistrationError {
    var copy = self
    copy.key = key
    if let code { copy.code = code }
    return copy
  }
}

/// Input in double quotes, safe for a log line: see `escaped(_:limit:)`.
func quoted(_ text: some StringProtocol, limit: Int = 64) -> String {
  "\"\(escaped(text, limit: limit))\""
}

/// Printable ASCII as is (with `\` and `"` escaped); everything else as `\n`, `\r`, `\t` or `\u{…}`.
/// Longer input is cut at `limit` characters and marked with `…`.
func escaped(_ text: some StringProtocol, limit: Int) -> String {
  var result = ""
  for (index, scalar) in text.unicodeScalars.enumerated() {
    if index == limit {
      result += "…"
      break
    }
    switch scalar {
    case "\n": result += "\\n"
    case "\r": result += "\\r"
    case "\t": result += "\\t"
    case "\\": result += "\\\\"
    case "\"": result += "\\\""
    case " "..."~": result.unicodeScalars.append(scalar)
    default: result += "\\u{\(String(scalar.value, radix: 16, uppercase: true))}"
    }
  }
  return result
}

/// Names one character for an error message, without printing it raw when it is unsafe.
func describe(_ scalar: Unicode.Scalar) -> String {
  switch scalar {
  case "\n": "a newline"
  case "\r": "a carriage return"
  case "\t": "a tab"
  case " ": "a space"
  case "\0": "a NUL character"
  case "!"..."~": quoted(String(scalar))
  default: "the character \(codePoint(scalar))"
  }
}

/// `U+000A`, `U+00E9`, `U+1F600`.
func codePoint(_ scalar: Unicode.Scalar) -> String {
  let hex = String(scalar.value, radix: 16, uppercase: true)
  return "U+" + String(repeating: "0", count: max(0, 4 - hex.count)) + hex
}
