/// A validated `host:port`, as given to `--listen`, `--advertise` and `--address` and as the
/// original demo's plain registration values: `10.0.0.5:8080`, `[::1]:8080`, `backend-1:8080`.
///
/// Unlike a `Registration`, a `HostPort` may hold the unspecified address (`0.0.0.0:8080`), which
/// is right for listening.
public struct HostPort: Sendable, Hashable, CustomStringConvertible {
  /// The host.
  public let address: Address
  /// The port, 1–65535.
  public let port: Int

  /// Parses `host:port`, with IPv6 in brackets. Errors have code `.invalidValue` when the text is
  /// not `host:port` at all, and `.invalidField` with field `address` or `port` otherwise.
  public init(parsing text: String) throws(RegistrationError) {
    func failure(_ field: String, _ reason: String) -> RegistrationError {
      RegistrationError(code: .invalidField, field: field, reason: reason)
    }
    if text.isEmpty { throw RegistrationError(code: .invalidValue, reason: "is empty; expected host:port") }
    // Only what a host, a port and IPv6 brackets can hold; anything else is not host:port.
    for scalar in text.unicodeScalars where !Self.isPlainCharacter(scalar) {
      throw RegistrationError(
        code: .invalidValue,
        reason:
          "contains \(describe(scalar)); host:port holds only letters, digits, \".\", \"-\", \":\", \"[\" and \"]\""
      )
    }

    let host: Substring
    let portText: Substring
    if text.hasPrefix("[") {
      guard let close = text.firstIndex(of: "]") else { throw failure("address", "has \"[\" without \"]\"") }
      let afterClose = text[text.index(after: close)...]
      guard afterClose.hasPrefix(":") else { throw failure("port", "is missing; expected [IPv6]:port") }
      host = text[text.index(after: text.startIndex)..<close]
      portText = afterClose.dropFirst()
      guard host.contains(":") else { throw failure("address", "only IPv6 addresses go in brackets") }
    } else {
      guard let colon = text.firstIndex(of: ":") else { throw failure("port", "is missing; expected host:port") }
      guard text.lastIndex(of: ":") == colon else {
        throw failure("address", "an IPv6 address needs brackets in host:port, as in [::1]:8080")
      }
      host = text[..<colon]
      portText = text[text.index(after: colon)...]
    }
    address = try Address(validating: String(host))
    port = try Self.port(portText)
  }

  /// `host:port`, with IPv6 in brackets.
  public var description: String { address.hostPort(port) }

  private static func isPlainCharacter(_ scalar: Unicode.Scalar) -> Bool {
    switch scalar {
    case "a"..."z", "A"..."Z", "0"..."9", ".", "-", ":", "[", "]": true
    default: false
    }
  }

  private static func port(_ text: Substring) throws(RegistrationError) -> Int {
    guard !text.isEmpty else { throw RegistrationError(code: .invalidField, field: "port", reason: "is empty") }
    guard text.utf8.allSatisfy(Address.isDigit), let port = Int(text) else {
      throw RegistrationError(code: .invalidField, field: "port", reason: "\(quoted(text)) is not a port number")
    }
    guard (1...65535).contains(port) else {
      throw RegistrationError(code: .invalidField, field: "port", reason: "\(port) is outside 1–65535")
    }
    return port
  }
}
