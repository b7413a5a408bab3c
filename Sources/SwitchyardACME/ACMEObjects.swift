import Foundation

/// The ACME server's directory (RFC 8555, section 7.1.1): the URLs of its resources.
public struct ACMEDirectory: Sendable, Hashable, Decodable {
  /// Where fresh nonces come from.
  public var newNonce: String
  /// Where accounts are created or looked up.
  public var newAccount: String
  /// Where orders are placed.
  public var newOrder: String
}

/// An identifier in an order or authorization; only `dns` is used here.
public struct ACMEIdentifier: Sendable, Hashable, Codable {
  /// `dns`.
  public var type: String
  /// The host name.
  public var value: String

  /// A DNS identifier.
  public static func dns(_ host: String) -> ACMEIdentifier { ACMEIdentifier(type: "dns", value: host) }
}

/// An order (RFC 8555, section 7.1.3).
public struct ACMEOrder: Sendable, Hashable, Decodable {
  /// `pending`, `ready`, `processing`, `valid` or `invalid`.
  public var status: String
  /// What the certificate will name.
  public var identifiers: [ACMEIdentifier]
  /// One authorization URL per identifier.
  public var authorizations: [String]
  /// Where the CSR goes once the order is ready.
  public var finalize: String
  /// Where the chain is once the order is valid.
  public var certificate: String?
  /// Why the order failed, when it did.
  public var error: ACMEProblem?
}

/// An authorization (RFC 8555, section 7.1.4).
public struct ACMEAuthorization: Sendable, Hashable, Decodable {
  /// `pending`, `valid`, `invalid`, `deactivated`, `expired` or `revoked`.
  public var status: String
  /// The host it is for.
  public var identifier: ACMEIdentifier
  /// The ways to prove control of it.
  public var challenges: [ACMEChallengeObject]
}

/// A challenge inside an authorization (RFC 8555, section 7.1.5, 8).
public struct ACMEChallengeObject: Sendable, Hashable, Decodable {
  /// `http-01`, `dns-01`, `tls-alpn-01`, ….
  public var type: String
  /// Where to say "ready" (POST `{}`) and to poll.
  public var url: String
  /// `pending`, `processing`, `valid` or `invalid`.
  public var status: String
  /// The token the HTTP-01 file is named after.
  public var token: String?
  /// Why validation failed.
  public var error: ACMEProblem?
}

/// A problem document (RFC 7807) as ACME servers send them (RFC 8555, section 6.7).
public struct ACMEProblem: Sendable, Hashable, Decodable, CustomStringConvertible {
  /// `urn:ietf:params:acme:error:<name>` for ACME's own problems.
  public var type: String
  /// Words from the server; never shown unbounded.
  public var detail: String?
  /// The HTTP status it came with (not part of the document).
  public var status: Int?
  /// Per-identifier problems, for orders that failed for several reasons.
  public var subproblems: [ACMEProblem]?

  /// Creates a problem.
  public init(type: String, detail: String? = nil, status: Int? = nil) {
    self.type = type
    self.detail = detail
    self.status = status
  }

  /// The ACME problem's short name (`badNonce`, `rateLimited`, …), or the whole type when it is not ACME's.
  public var name: String {
    let prefix = "urn:ietf:params:acme:error:"
    return type.hasPrefix(prefix) ? String(type.dropFirst(prefix.count)) : type
  }

  /// Whether the request may simply be sent again with a fresh nonce.
  public var isBadNonce: Bool { name == "badNonce" }

  /// `name: detail`, printable characters only and at most 300 of them, since it comes from outside.
  public var description: String {
    ACMEText.printable("\(name)\(detail.map { ": \($0)" } ?? "")", limit: 300)
  }
}

/// What to do with text from the network or from etcd before it reaches a log or a report.
enum ACMEText {
  /// Keeps printable ASCII (control characters and others become `?`), at most `limit` characters.
  static func printable(_ text: String, limit: Int) -> String {
    var result = ""
    for scalar in text.unicodeScalars.prefix(limit) {
      result.unicodeScalars.append((0x20...0x7e).contains(scalar.value) ? scalar : "?")
    }
    if text.unicodeScalars.count > limit { result += "…" }
    return result
  }
}
