import SwitchyardReconcile

/// One HTTP-01 challenge answer published in etcd, at `/switchyard/acme/challenges/<token>` with the key
/// authorization as value, so that every node can answer `GET /.well-known/acme-challenge/<token>`.
///
/// Entries are read back from etcd, so nothing in them is trusted: ``parse(key:value:)`` accepts a token of
/// 1 to 128 base64url characters and a value that is exactly `<token>.<thumbprint>` with a 43-character
/// base64url SHA-256 thumbprint. Both may then go into an HAProxy map and a Runtime API command as they are.
public struct ACMEChallenge: Sendable, Hashable {
  /// Every challenge lives under this prefix.
  public static let root = "/switchyard/acme/challenges/"
  /// The path HTTP-01 validation asks for, before the token.
  public static let wellKnownPath = "/.well-known/acme-challenge/"

  /// The token, the last segment of the validation URL.
  public let token: String
  /// What the validation request must get as body.
  public let keyAuthorization: String

  /// Validates a token and its key authorization.
  public init(token: String, keyAuthorization: String) throws(ACMEError) {
    // The rules of the map HAProxy answers from (``ACMEChallengeMap``): what etcd gives is checked by them.
    if let problem = ACMEChallengeMap.tokenProblem(token) {
      throw ACMEError(.invalidInput, "the ACME token \"\(ACMEText.printable(token, limit: 40))\": \(problem)")
    }
    if let problem = ACMEChallengeMap.keyAuthorizationProblem(keyAuthorization, token: token) {
      throw ACMEError(.invalidInput, "the key authorization for token \(token): \(problem)")
    }
    self.token = token
    self.keyAuthorization = keyAuthorization
  }

  /// Parses one etcd entry under ``root``.
  public static func parse(key: [UInt8], value: [UInt8]) throws(ACMEError) -> ACMEChallenge {
    let keyText = String(decoding: key, as: UTF8.self)
    guard keyText.hasPrefix(root), Array(keyText.utf8) == key else {
      throw ACMEError(.invalidInput, "\"\(ACMEText.printable(keyText, limit: 80))\" is not under \(root)")
    }
    let longest = ACMEChallengeMap.maxTokenLength + 1 + ACMEChallengeMap.thumbprintLength
    guard value.count <= longest, let text = String(validating: value, as: UTF8.self) else {
      throw ACMEError(
        .invalidInput, "the value of \(ACMEText.printable(keyText, limit: 80)) is not a key authorization")
    }
    return try ACMEChallenge(token: String(keyText.dropFirst(root.count)), keyAuthorization: text)
  }

  /// The etcd key of this challenge.
  public var key: String { Self.root + token }

  /// Whether `text` is 1 to 128 base64url characters (RFC 8555, section 8.3 asks for at least 128 bits of
  /// entropy; Let's Encrypt's tokens are 43 characters).
  public static func isToken(_ text: String) -> Bool { ACMEChallengeMap.tokenProblem(text) == nil }
}
