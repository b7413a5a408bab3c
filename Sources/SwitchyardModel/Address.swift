import AddressText

/// A validated network address: an IPv4 dotted quad, an IPv6 address or an RFC 1123 host name.
///
/// A struct rather than an enum with string payloads, so that an `Address` can only come from
/// `init(validating:)`: whatever holds one can print it into HAProxy's configuration.
public struct Address: Sendable, Hashable, Comparable, CustomStringConvertible {
  /// Which form the address has.
  public enum Kind: Sendable, Hashable {
    /// Dotted-quad IPv4, `10.0.0.5`.
    case ipv4
    /// IPv6, `::1`, stored and described without brackets.
    case ipv6
    /// An RFC 1123 host name, `backend-1.internal`, stored in lower case.
    case hostname
  }

  /// Which form the address has.
  public let kind: Kind
  /// The address without brackets: only ASCII letters, digits, `.`, `-` and `:`.
  public let text: String
  /// Whether this is `0.0.0.0`, `::` or `::ffff:0.0.0.0`: fine to listen on, wrong to register.
  public let isUnspecified: Bool
  /// Whether this address reaches only this machine: `127.0.0.0/8`, `::1`, `::ffff:127.0.0.0/104`
  /// (IPv4 loopback mapped into IPv6), or the host name `localhost`. Any other host name may resolve
  /// anywhere, so it is not loopback; neither is the unspecified address, which listens everywhere.
  public let isLoopback: Bool

  /// Longest accepted address (the longest host name).
  public static let maxLength = 253

  /// Validates `text`: IPv4 without leading zeros, IPv6 without brackets or zone, or a host name.
  /// Errors have code `.invalidField` and field `address`.
  public init(validating text: String) throws(RegistrationError) {
    func failure(_ reason: String) -> RegistrationError {
      RegistrationError(code: .invalidField, field: "address", reason: reason)
    }
    if text.isEmpty { throw failure("is empty") }
    for scalar in text.unicodeScalars where !("!"..."~").contains(scalar) {
      throw failure("contains \(describe(scalar))")
    }
    if text.utf8.count > Self.maxLength { throw failure("is longer than \(Self.maxLength) characters") }
    if text.hasPrefix("[") || text.hasSuffix("]") {
      throw failure("\(quoted(text)) is in brackets; write IPv6 addresses without them, as in \"::1\"")
    }
    if text.contains(":") {
      guard let groups = IPLiteral.ipv6Groups(text) else {
        throw failure("\(quoted(text)) is not a valid IPv6 address")
      }
      kind = .ipv6
      self.text = text.lowercased()
      let mappedUnspecified = groups[0..<5].allSatisfy { $0 == 0 } && groups[5] == 0xffff && groups[6...] == [0, 0]
      isUnspecified = groups.allSatisfy { $0 == 0 } || mappedUnspecified
      let isMapped = groups[0..<5].allSatisfy { $0 == 0 } && groups[5] == 0xffff
      isLoopback = (groups[0..<7].allSatisfy { $0 == 0 } && groups[7] == 1) || (isMapped && groups[6] >> 8 == 127)
    } else if text.utf8.allSatisfy({ $0 == UInt8(ascii: ".") || Self.isDigit($0) }) {
      guard let octets = IPLiteral.ipv4Octets(text) else {
        throw failure("\(quoted(text)) is not a valid IPv4 address (four numbers 0–255 without leading zeros)")
      }
      kind = .ipv4
      self.text = text
      isUnspecified = octets.allSatisfy { $0 == 0 }
      isLoopback = octets[0] == 127
    } else {
      if let problem = Self.hostnameProblem(text) {
        throw failure("\(quoted(text)) is not a valid host name: \(problem)")
      }
      kind = .hostname
      self.text = text.lowercased()
      isUnspecified = false
      isLoopback = self.text == "localhost"
    }
  }

  /// `host:port` as HAProxy and URLs want it, with brackets around IPv6: `[::1]:8080`.
  public func hostPort(_ port: Int) -> String {
    HostPortText.format(host: text, port: port)
  }

  /// The address without brackets; safe to print anywhere.
  public var description: String { text }

  /// Orders by text.
  public static func < (lhs: Address, rhs: Address) -> Bool { lhs.text < rhs.text }

  // MARK: - Host names

  /// Why `text` is not an RFC 1123 host name, or `nil` when it is.
  static func hostnameProblem(_ text: String) -> String? {
    let labels = text.split(separator: ".", omittingEmptySubsequences: false)
    for label in labels {
      guard !label.isEmpty else { return "it has an empty label" }
      guard label.utf8.count <= 63 else { return "a label is longer than 63 characters" }
      for scalar in label.unicodeScalars where !Self.isHostnameCharacter(scalar) {
        return "it contains \(describe(scalar)); labels hold only letters, digits and \"-\""
      }
      guard label.first != "-", label.last != "-" else { return "a label starts or ends with \"-\"" }
    }
    // A numeric top-level label would make it look like (and be parsed by some as) an IP address.
    if let last = labels.last, last.allSatisfy(\.isNumber) { return "the last label is all digits" }
    return nil
  }

  static func isDigit(_ byte: UInt8) -> Bool { (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(byte) }

  private static func isHostnameCharacter(_ scalar: Unicode.Scalar) -> Bool {
    switch scalar {
    case "a"..."z", "A"..."Z", "0"..."9", "-": true
    default: false
    }
  }
}
