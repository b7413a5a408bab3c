import Crypto
import Foundation

/// A JSON Web Key's public members, enough for an RFC 7638 thumbprint.
///
/// ACME accounts here are P-256 (`EC`); `RSA` exists so that the thumbprint can be checked against RFC 7638's
/// own example, which is an RSA key.
public enum JWK: Sendable, Hashable {
  /// An elliptic-curve key on P-256: the base64url coordinates.
  case p256(x: String, y: String)
  /// An RSA key: the base64url modulus and exponent.
  case rsa(n: String, e: String)

  /// The public key of an ACME account key.
  public init(_ key: P256.Signing.PublicKey) {
    let point = Array(key.x963Representation)  // 0x04 || x || y
    self = .p256(x: Base64URL.encode(point[1..<33]), y: Base64URL.encode(point[33..<65]))
  }

  /// The required members in lexicographic order, as RFC 7638 section 3 asks: no whitespace, no other member.
  public var canonicalJSON: String {
    switch self {
    case .p256(let x, let y): #"{"crv":"P-256","kty":"EC","x":"\#(x)","y":"\#(y)"}"#
    case .rsa(let n, let e): #"{"e":"\#(e)","kty":"RSA","n":"\#(n)"}"#
    }
  }

  /// The RFC 7638 thumbprint with SHA-256, base64url: the second half of every key authorization.
  public var thumbprint: String {
    Base64URL.encode(SHA256.hash(data: Array(canonicalJSON.utf8)))
  }
}

/// Flattened JWS (RFC 7515) signed with ES256, the body of every ACME POST (RFC 8555, section 6.2).
public struct JWS: Sendable, Hashable, Encodable {
  /// The protected header, base64url.
  public var protected: String
  /// The payload, base64url; empty for POST-as-GET.
  public var payload: String
  /// The signature (`r || s`, 64 bytes), base64url.
  public var signature: String

  /// How the header names the signer: a new account shows its key, a known one its URL.
  public enum Signer: Sendable, Hashable {
    /// `jwk`: for newAccount (and revocation with the certificate key).
    case jwk
    /// `kid`: the account URL.
    case kid(String)
  }

  /// Signs `payload` (`nil` for POST-as-GET) for `url` with `nonce`.
  public static func sign(
    payload: [UInt8]?,
    url: String,
    nonce: String,
    signer: Signer,
    key: P256.Signing.PrivateKey
  ) throws -> JWS {
    var header: [String: Any] = ["alg": "ES256", "nonce": nonce, "url": url]
    switch signer {
    case .jwk:
      let jwk = JWK(key.publicKey)
      guard case .p256(let x, let y) = jwk else { preconditionFailure("a P-256 key gives an EC JWK") }
      header["jwk"] = ["crv": "P-256", "kty": "EC", "x": x, "y": y]
    case .kid(let url): header["kid"] = url
    }
    let headerBytes = try JSONSerialization.data(
      withJSONObject: header, options: [.sortedKeys, .withoutEscapingSlashes])
    let protected = Base64URL.encode(headerBytes)
    let encodedPayload = payload.map { Base64URL.encode($0) } ?? ""
    let signingInput = Array("\(protected).\(encodedPayload)".utf8)
    let signature = try key.signature(for: signingInput)
    return JWS(protected: protected, payload: encodedPayload, signature: Base64URL.encode(signature.rawRepresentation))
  }

  /// Checks the signature with `publicKey`; for tests and for anyone who wants to see the JWS is sound.
  public func isValid(for publicKey: P256.Signing.PublicKey) -> Bool {
    guard let raw = Base64URL.decode(signature),
      let ecdsa = try? P256.Signing.ECDSASignature(rawRepresentation: raw)
    else { return false }
    return publicKey.isValidSignature(ecdsa, for: Array("\(protected).\(payload)".utf8))
  }
}

/// The key authorization of an HTTP-01 challenge (RFC 8555, section 8.1): `token "." thumbprint`.
public func keyAuthorization(token: String, accountKey: P256.Signing.PublicKey) -> String {
  "\(token).\(JWK(accountKey).thumbprint)"
}
