/// A validated network address: IPv4, IPv6 or a DNS host name.
public enum Address: Sendable, Hashable, Comparable, CustomStringConvertible {
  /// Dotted-quad IPv4.
  case ipv4(String)
  /// IPv6, stored without brackets.
  case ipv6(String)
  /// An RFC 1123 host name.
  case hostname(String)

  /// Validates `text` (IPv6 without brackets).
  public init(validating text: String) throws(RegistrationError) {
    if text.isEmpty { throw RegistrationError(field: "address", reason: "is empty") }
    for scalar in text.unicodeScalars where scalar.value < 0x21 || scalar.value > 0x7e {
      throw RegistrationError(field: "address", reason: "contains \(describe(scalar))")
    }
    if text.contains(":") {
      guard Self.isIPv6(text) else {
        throw RegistrationError(field: "address", reason: "\"\(text)\" is not a valid IPv6 address")
      }
      self = .ipv6(text.lowercased())
    } else if text.allSatisfy({ $0.isNumber || $0 == "." }) {
      guard Self.isIPv4(text) else {
        throw RegistrationError(field: "address", reason: "\"\(text)\" is not a valid IPv4 address")
      }
      self = .ipv4(text)
    } else {
      if let problem = Self.hostnameProblem(text) {
        throw RegistrationError(field: "address", reason: "\"\(text)\" is not a valid host name: \(problem)")
      }
      self = .hostname(text.lowercased())
    }
  }

  /// The address as written in a URL or HAProxy `server` line's host part (no brackets).
  public var text: String {
    switch self {
    case .ipv4(let value), .ipv6(let value), .hostname(let value): value
    }
  }

  /// `host:port`, with brackets around IPv6 (`[::1]:8080`).
  public func hostPort(_ port: Int) -> String {
    if case .ipv6(let value) = self { return "[\(value)]:\(port)" }
    return "\(text):\(port)"
  }

  /// The address.
  public var description: String { text }

  /// Orders by text.
  public static func < (lhs: Address, rhs: Address) -> Bool { lhs.text < rhs.text }

  static func isIPv4(_ text: String) -> Bool {
    let parts = text.split(separator: ".", omittingEmptySubsequences: false)
    guard parts.count == 4 else { return false }
    return parts.allSatisfy { part in
      guard !part.isEmpty, part.count <= 3, part.allSatisfy(\.isASCII), part.allSatisfy(\.isNumber),
        let value = Int(part), value <= 255
      else { return false }
      // "01" is ambiguous (octal in some parsers): refuse leading zeros.
      return part == "0" || !part.hasPrefix("0")
    }
  }

  static func isIPv6(_ text: String) -> Bool {
    guard text.count <= 45 else { return false }
    var groupsText = Substring(text)
    var embeddedIPv4Groups = 0
    // An embedded IPv4 tail (::ffff:1.2.3.4) counts as two groups.
    if let lastColon = text.lastIndex(of: ":"), text[text.index(after: lastColon)...].contains(".") {
      guard isIPv4(String(text[text.index(after: lastColon)...])) else { return false }
      groupsText = text[...lastColon]
      if groupsText.hasSuffix("::") == false { groupsText = groupsText.dropLast() }
      embeddedIPv4Groups = 2
    }
    let doubleColons = groupsText.components(separatedBy: "::").count - 1
    guard doubleColons <= 1 else { return false }
    func groups(_ part: Substring) -> [Substring]? {
      if part.isEmpty { return [] }
      let pieces = part.split(separator: ":", omittingEmptySubsequences: false)
      for piece in pieces {
        guard (1...4).contains(piece.count), piece.allSatisfy(\.isHexDigit) else { return nil }
      }
      return pieces
    }
    if doubleColons == 1 {
      let halves = groupsText.components(separatedBy: "::")
      guard let head = groups(Substring(halves[0])), let tail = groups(Substring(halves[1])) else { return false }
      return head.count + tail.count + embeddedIPv4Groups <= 7
    }
    guard let all = groups(groupsText) else { return false }
    return all.count + embeddedIPv4Groups == 8
  }

  static func hostnameProblem(_ text: String) -> String? {
    guard text.utf8.count <= 253 else { return "longer than 253 characters" }
    let labels = text.split(separator: ".", omittingEmptySubsequences: false)
    for label in labels {
      guard !label.isEmpty else { return "has an empty label" }
      guard label.count <= 63 else { return "has a label longer than 63 characters" }
      guard label.allSatisfy({ $0.isASCII && ($0.isLetter || $0.isNumber || $0 == "-") }) else {
        return "labels may hold only letters, digits and \"-\""
      }
      guard label.first != "-", label.last != "-" else { return "a label starts or ends with \"-\"" }
    }
    if let last = labels.last, last.allSatisfy(\.isNumber) { return "the last label is all digits" }
    return nil
  }
}

extension Character {
  fileprivate var isHexDigit: Bool { "0123456789abcdefABCDEF".contains(self) }
}

/// A validated `host:port` pair, as given to `--listen`, `--advertise` and `--address`
/// (IPv6 in brackets: `[::1]:8080`).
public struct HostPort: Sendable, Hashable, CustomStringConvertible {
  /// The host.
  public var address: Address
  /// The port, 1–65535.
  public var port: Int

  /// Parses `host:port`.
  public init(parsing text: String) throws(RegistrationError) {
    let registration = try Registration.parsePlain(text)
    address = registration.address
    port = registration.port
  }

  /// `host:port`.
  public var description: String { address.hostPort(port) }
}
