import Foundation

/// Base64url without padding (RFC 4648, section 5), the encoding of every binary field in JWS and ACME.
public enum Base64URL {
  /// Encodes `bytes`.
  public static func encode(_ bytes: some Sequence<UInt8>) -> String {
    Data(bytes).base64EncodedString()
      .replacingOccurrences(of: "+", with: "-")
      .replacingOccurrences(of: "/", with: "_")
      .replacingOccurrences(of: "=", with: "")
  }

  /// Decodes `text`; `nil` when it holds anything but the base64url alphabet.
  public static func decode(_ text: String) -> [UInt8]? {
    guard text.utf8.allSatisfy({ isAlphabet($0) }) else { return nil }
    var standard = text.replacingOccurrences(of: "-", with: "+").replacingOccurrences(of: "_", with: "/")
    standard += String(repeating: "=", count: (4 - standard.count % 4) % 4)
    return Data(base64Encoded: standard).map { Array($0) }
  }

  /// Whether `byte` is a letter, a digit, `-` or `_`.
  static func isAlphabet(_ byte: UInt8) -> Bool {
    switch byte {
    case UInt8(ascii: "A")...UInt8(ascii: "Z"), UInt8(ascii: "a")...UInt8(ascii: "z"),
      UInt8(ascii: "0")...UInt8(ascii: "9"), UInt8(ascii: "-"), UInt8(ascii: "_"):
      true
    default: false
    }
  }
}
