/// The dashboard's login: HTTP basic authentication with one user and password (`--dashboard-auth`).
///
/// The check compares the whole `user:password` the browser sends with the expected one in constant time
/// (every byte is looked at, whatever differs first), so the time of an answer tells nothing about how
/// much of a guess was right. Nothing is logged or echoed.
public struct DashboardLogin: Sendable {
  /// The user name.
  public let user: String
  private let expected: [UInt8]

  /// The realm browsers show in their login prompt.
  public static let realm = "switchyard dashboard"

  /// A login for `user` with `password`. The user must not contain `:` (basic authentication splits there).
  public init(user: String, password: String) throws(DashboardLoginError) {
    if let problem = Self.userProblem(user) { throw DashboardLoginError(reason: problem) }
    guard !password.isEmpty else { throw DashboardLoginError(reason: "the password is empty") }
    self.user = user
    expected = Array("\(user):\(password)".utf8)
  }

  /// Why `user` cannot be a login's user name (1 to 64 of letters, digits, `.`, `_`, `-` and `@`), or `nil`.
  public static func userProblem(_ user: String) -> String? {
    guard !user.isEmpty, user.utf8.count <= 64 else { return "the user name must have 1 to 64 characters" }
    let allowed = user.unicodeScalars.allSatisfy {
      ("a"..."z").contains($0) || ("A"..."Z").contains($0) || ("0"..."9").contains($0)
        || "._-@".unicodeScalars.contains($0)
    }
    return allowed ? nil : "the user name may hold only letters, digits, \".\", \"_\", \"-\" and \"@\""
  }

  /// Whether an `Authorization` header value grants access.
  public func admits(authorization: String?) -> Bool {
    guard let authorization else { return false }
    let parts = authorization.split(separator: " ", maxSplits: 1, omittingEmptySubsequences: true)
    guard parts.count == 2, parts[0].lowercased() == "basic",
      let decoded = Self.base64Decode(parts[1].trimmingCharacters(inSet: " \t"))
    else { return false }
    return Self.constantTimeEqual(decoded, expected)
  }

  /// The `WWW-Authenticate` header value of a 401.
  public static var challenge: String { "Basic realm=\"\(realm)\", charset=\"UTF-8\"" }

  /// Whether `a` and `b` are equal, looking at every byte of the longer one whatever differs.
  static func constantTimeEqual(_ a: [UInt8], _ b: [UInt8]) -> Bool {
    var difference = UInt8(truncatingIfNeeded: a.count ^ b.count)
    if a.count != b.count { difference |= 1 }
    let length = max(a.count, b.count)
    for index in 0..<length {
      let left = index < a.count ? a[index] : 0
      let right = index < b.count ? b[index] : 0
      difference |= left ^ right
    }
    return difference == 0
  }

  /// Standard base64 (with or without padding); `nil` for anything else.
  static func base64Decode(_ text: Substring) -> [UInt8]? {
    var bits: UInt32 = 0
    var count = 0
    var output: [UInt8] = []
    var padding = 0
    for byte in text.utf8 {
      let value: UInt32
      switch byte {
      case UInt8(ascii: "A")...UInt8(ascii: "Z"): value = UInt32(byte - UInt8(ascii: "A"))
      case UInt8(ascii: "a")...UInt8(ascii: "z"): value = UInt32(byte - UInt8(ascii: "a")) + 26
      case UInt8(ascii: "0")...UInt8(ascii: "9"): value = UInt32(byte - UInt8(ascii: "0")) + 52
      case UInt8(ascii: "+"): value = 62
      case UInt8(ascii: "/"): value = 63
      case UInt8(ascii: "="):
        padding += 1
        continue
      default: return nil
      }
      guard padding == 0 else { return nil }
      bits = (bits << 6) | value
      count += 6
      if count >= 8 {
        count -= 8
        output.append(UInt8(truncatingIfNeeded: bits >> UInt32(count)))
      }
    }
    guard padding <= 2, count < 6 else { return nil }
    return output
  }
}

extension Substring {
  fileprivate func trimmingCharacters(inSet characters: String) -> Substring {
    var text = self
    while let first = text.first, characters.contains(first) { text = text.dropFirst() }
    while let last = text.last, characters.contains(last) { text = text.dropLast() }
    return text
  }
}

/// A `--dashboard-auth` that cannot be used.
public struct DashboardLoginError: Error, Hashable, Sendable, CustomStringConvertible {
  /// What is wrong.
  public var reason: String

  /// `the password is empty`
  public var description: String { reason }
}
