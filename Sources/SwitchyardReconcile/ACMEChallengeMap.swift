/// The lines of the ACME HTTP-01 challenge map (``NodeSettings/acmeMapPath``): a token and the key
/// authorization HAProxy answers `GET /.well-known/acme-challenge/<token>` with (RFC 8555, section 8.3).
///
/// Both go into a map file and an `add map` command, so both are checked: a token is 1 to
/// ``maxTokenLength`` characters of the base64url alphabet, a key authorization is `<token>.<thumbprint>`
/// with the account key's SHA-256 JWK thumbprint in base64url (43 characters).
public enum ACMEChallengeMap {
  /// Longest accepted token (RFC 8555 asks for at least 128 bits of entropy; CAs send 43 characters).
  public static let maxTokenLength = 128
  /// Length of a base64url SHA-256 thumbprint without padding.
  public static let thumbprintLength = 43

  /// Why `token` cannot be a map key, or `nil`.
  public static func tokenProblem(_ token: String) -> String? {
    guard (1...maxTokenLength).contains(token.utf8.count) else {
      return "the token is empty or longer than \(maxTokenLength) characters"
    }
    guard isBase64URL(token) else { return "the token holds a character outside A-Z a-z 0-9 - _" }
    return nil
  }

  /// Why `keyAuthorization` is not `<token>.<43 base64url characters>` for `token`, or `nil`.
  public static func keyAuthorizationProblem(_ keyAuthorization: String, token: String) -> String? {
    let parts = keyAuthorization.split(separator: ".", omittingEmptySubsequences: false)
    guard parts.count == 2, parts[0] == token else {
      return "the key authorization does not start with the token and a \".\""
    }
    guard parts[1].utf8.count == thumbprintLength, isBase64URL(parts[1]) else {
      return "the key authorization's thumbprint is not \(thumbprintLength) characters of A-Z a-z 0-9 - _"
    }
    return nil
  }

  /// The map line `token keyAuthorization` (without a line break), after checking both.
  public static func line(token: String, keyAuthorization: String) throws(SettingsError) -> String {
    if let problem = tokenProblem(token) { throw SettingsError("ACME challenge", problem) }
    if let problem = keyAuthorizationProblem(keyAuthorization, token: token) {
      throw SettingsError("ACME challenge", problem)
    }
    return "\(token) \(keyAuthorization)"
  }

  private static func isBase64URL(_ text: some StringProtocol) -> Bool {
    text.unicodeScalars.allSatisfy { scalar in
      switch scalar {
      case "a"..."z", "A"..."Z", "0"..."9", "-", "_": true
      default: false
      }
    }
  }
}
