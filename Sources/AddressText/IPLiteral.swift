/// IPv4 and IPv6 address literals: the one parser of the package.
///
/// Strict on purpose: it accepts what `inet_pton(3)` accepts and no more (no leading zeros in an
/// IPv4 octet, which some parsers read as octal; no IPv6 zone such as `%eth0`; no brackets).
public enum IPLiteral {
  /// The four octets of a dotted quad; `nil` unless it is exactly four decimal numbers 0–255
  /// without leading zeros (`010` means 8 to some parsers and 10 to others).
  public static func ipv4Octets(_ text: some StringProtocol) -> [UInt8]? {
    let parts = Substring(text).split(separator: ".", omittingEmptySubsequences: false)
    guard parts.count == 4 else { return nil }
    var octets: [UInt8] = []
    for part in parts {
      guard (1...3).contains(part.utf8.count), part.utf8.allSatisfy(isDecimalDigit),
        part == "0" || !part.hasPrefix("0"), let octet = UInt8(part)
      else { return nil }
      octets.append(octet)
    }
    return octets
  }

  /// The eight 16-bit groups of an IPv6 address in RFC 4291 text form (`::` at most once, an
  /// optional dotted-quad tail, hex digits in either case); `nil` when it is not one.
  public static func ipv6Groups(_ text: some StringProtocol) -> [UInt16]? {
    let text = Substring(text)
    // The longest form: ffff:ffff:ffff:ffff:ffff:ffff:255.255.255.255
    guard text.utf8.count <= 45 else { return nil }
    let halves = text.split(separator: "::", maxSplits: 1, omittingEmptySubsequences: false)
    if halves.count == 2 {
      guard !halves[1].contains("::"), let head = groups(halves[0], allowIPv4Tail: false),
        let tail = groups(halves[1], allowIPv4Tail: true), head.count + tail.count <= 7
      else { return nil }
      return head + Array(repeating: 0, count: 8 - head.count - tail.count) + tail
    }
    guard let all = groups(text, allowIPv4Tail: true), all.count == 8 else { return nil }
    return all
  }

  /// Whether `text` is a dotted-quad IPv4 address.
  public static func isIPv4(_ text: some StringProtocol) -> Bool { ipv4Octets(text) != nil }

  /// Whether `text` is an IPv6 address (without brackets).
  public static func isIPv6(_ text: some StringProtocol) -> Bool { ipv6Groups(text) != nil }

  private static func groups(_ text: Substring, allowIPv4Tail: Bool) -> [UInt16]? {
    if text.isEmpty { return [] }
    let fields = text.split(separator: ":", omittingEmptySubsequences: false)
    var result: [UInt16] = []
    for (index, field) in fields.enumerated() {
      if allowIPv4Tail, index == fields.count - 1, field.contains(".") {
        guard let octets = ipv4Octets(field) else { return nil }
        result.append(UInt16(octets[0]) << 8 | UInt16(octets[1]))
        result.append(UInt16(octets[2]) << 8 | UInt16(octets[3]))
      } else {
        guard (1...4).contains(field.utf8.count), field.allSatisfy({ $0.isASCII && $0.isHexDigit }),
          let group = UInt16(field, radix: 16)
        else { return nil }
        result.append(group)
      }
    }
    return result
  }

  private static func isDecimalDigit(_ byte: UInt8) -> Bool {
    (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(byte)
  }
}
