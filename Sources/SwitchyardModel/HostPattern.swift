/// A host a route matches: an exact DNS name (`api.example.com`) or a leading wildcard
/// (`*.example.com`) that matches exactly one more label, as TLS certificates and Kubernetes Ingress
/// do: `a.example.com` matches, `a.b.example.com` and `example.com` do not.
///
/// Patterns are validated strictly because they end up in HAProxy maps and Runtime API commands:
/// only lower-case letters, digits, `-` and `.` survive, whatever was written to etcd.
public struct HostPattern: Sendable, Hashable, Comparable, CustomStringConvertible {
  /// Whether a pattern names one host or every host one label below a domain.
  public enum Kind: Sendable, Hashable {
    /// One host: `api.example.com`.
    case exact
    /// Any one label in front of a domain: `*.example.com`.
    case wildcard
  }

  /// Longest accepted pattern, in bytes: the longest DNS name.
  public static let maxLength = 253
  /// Longest accepted label, in bytes: DNS's limit.
  public static let maxLabelLength = 63

  /// Exact or wildcard.
  public let kind: Kind
  /// Lower-cased text, `api.example.com` or `*.example.com`.
  public let text: String

  /// Validates and lower-cases `text`. Errors have code `.invalidField` and field `hosts`.
  ///
  /// Only ASCII is accepted (an internationalized name is given in punycode, `xn--…`), at most
  /// ``maxLength`` bytes of dot-separated labels of 1–63 letters, digits and `-`, not starting or
  /// ending with `-`. A wildcard is `*.` followed by at least two labels, so `*.com` is refused.
  public init(validating text: String) throws(RegistrationError) {
    if let problem = Self.problem(text) {
      throw RegistrationError(code: .invalidField, field: "hosts", reason: problem)
    }
    let lowered = Self.lowercasedASCII(text)
    self.text = lowered
    kind = lowered.hasPrefix("*.") ? .wildcard : .exact
  }

  /// Whether a request's host matches; `host` is already lower-cased and has no port. Pure, for
  /// tests and `route ls`. Bytes are compared, never Unicode-equivalent characters.
  public func matches(_ host: String) -> Bool {
    switch kind {
    case .exact:
      return host.utf8.elementsEqual(text.utf8)
    case .wildcard:
      let suffix = text.utf8.dropFirst()  // ".example.com"
      let hostBytes = Array(host.utf8)
      guard hostBytes.count > suffix.count, hostBytes.suffix(suffix.count).elementsEqual(suffix) else { return false }
      return !hostBytes.dropLast(suffix.count).contains(UInt8(ascii: "."))
    }
  }

  /// The pattern.
  public var description: String { text }

  /// Exact patterns first, then wildcards; each by text (byte order, the same on every machine).
  public static func < (lhs: HostPattern, rhs: HostPattern) -> Bool {
    if lhs.kind != rhs.kind { return lhs.kind == .exact }
    return lhs.text < rhs.text
  }

  // MARK: - Rules

  /// Why `text` cannot be a host pattern, or `nil`. Upper-case ASCII letters are accepted (the
  /// pattern is lower-cased); the messages never contain the input raw.
  public static func problem(_ text: String) -> String? {
    if text.isEmpty { return "is empty" }
    for scalar in text.unicodeScalars where !scalar.isASCII {
      return "contains \(describe(scalar)); give an internationalized name in punycode (\"xn--...\")"
    }
    guard text.utf8.count <= maxLength else { return "is longer than \(maxLength) bytes" }
    let lowered = lowercasedASCII(text)
    var labels = lowered.split(separator: ".", omittingEmptySubsequences: false)
    if labels.first == "*" {
      labels.removeFirst()
      guard labels.count >= 2 else {
        return "a wildcard needs at least two labels after \"*.\", as in \"*.example.com\""
      }
    }
    for label in labels {
      if let problem = labelProblem(label) { return problem }
    }
    return nil
  }

  private static func labelProblem(_ label: Substring) -> String? {
    if label.isEmpty { return "has an empty label (a leading or trailing \".\", or \"..\")" }
    for scalar in label.unicodeScalars where !isLabelCharacter(scalar) {
      switch scalar {
      case "*": return "has \"*\" other than as the whole first label, as in \"*.example.com\""
      case ":": return "contains \":\"; give the host without a port"
      default: return "contains \(describe(scalar)); only letters, digits, \"-\" and \".\" are allowed"
      }
    }
    guard label.utf8.count <= maxLabelLength else { return "has a label longer than \(maxLabelLength) bytes" }
    if label.hasPrefix("-") || label.hasSuffix("-") { return "has a label that starts or ends with \"-\"" }
    return nil
  }

  private static func isLabelCharacter(_ scalar: Unicode.Scalar) -> Bool {
    switch scalar {
    case "a"..."z", "0"..."9", "-": true
    default: false
    }
  }

  /// ASCII upper-case letters lowered; every other scalar as it is (no locale, no Unicode rules).
  static func lowercasedASCII(_ text: String) -> String {
    var result = String.UnicodeScalarView()
    for scalar in text.unicodeScalars {
      if case "A"..."Z" = scalar, let lower = Unicode.Scalar(scalar.value + 32) {
        result.append(lower)
      } else {
        result.append(scalar)
      }
    }
    return String(result)
  }
}
