import Foundation
import SwitchyardCerts

/// The cluster's ACME account in etcd, at ``key``: `{"account_url":…,"key_id":…,"sealed_key":…}`, the P-256
/// account key sealed with the cluster key, so every leader uses one account.
public struct ACMEAccountRecord: Sendable, Hashable, Codable {
  /// Where it lives.
  public static let key = "/switchyard/acme/account"
  /// The name the account key is sealed for (a name no route's certificate can have: those are `acme-…`).
  public static let sealName = try! CertificateName(validating: "acme_account")

  /// The account's URL at the CA.
  public var accountURL: String
  /// The ``SealedSecret/keyID`` of the cluster key that sealed ``sealedKey``.
  public var keyID: String
  /// The key's raw 32 bytes, sealed, base64.
  public var sealedKey: String

  enum CodingKeys: String, CodingKey {
    case accountURL = "account_url"
    case keyID = "key_id"
    case sealedKey = "sealed_key"
  }
}

/// An order in progress, at `/switchyard/acme/orders/<certificate name>`, so that a new leader resumes it or
/// honours its backoff: the order URL, the hosts, the certificate key (sealed), the attempts that failed and
/// when the next may start. Untrusted when read: ``parse(_:)`` bounds every field.
public struct ACMEOrderRecord: Sendable, Hashable, Codable {
  /// Every order lives under this prefix.
  public static let root = "/switchyard/acme/orders/"

  /// The order's URL at the CA, once placed.
  public var orderURL: String?
  /// The hosts, sorted.
  public var hosts: [String]
  /// The cluster key's id and the certificate key's PEM sealed with it, base64.
  public var keyID: String?
  /// See ``keyID``.
  public var sealedKey: String?
  /// Failed attempts in a row.
  public var attempts: Int
  /// When the next attempt may start, in seconds since 1970.
  public var nextAttemptAt: Int64?
  /// The last failure, in words (never key material).
  public var lastError: String?

  /// A new record for `hosts`.
  public init(hosts: [String]) {
    self.hosts = hosts
    self.attempts = 0
  }

  enum CodingKeys: String, CodingKey {
    case orderURL = "order_url"
    case hosts
    case keyID = "key_id"
    case sealedKey = "sealed_key"
    case attempts
    case nextAttemptAt = "next_attempt_at"
    case lastError = "last_error"
  }

  /// The key of the order for `name`.
  public static func key(for name: CertificateName) -> String { root + name.rawValue }

  /// Reads a record written by a leader; refuses oversize values and fields out of bounds.
  public static func parse(_ value: [UInt8]) throws(ACMEError) -> ACMEOrderRecord {
    guard value.count <= 16 * 1024 else { throw ACMEError(.invalidInput, "an order record is over 16 KiB") }
    let record: ACMEOrderRecord
    do { record = try JSONDecoder().decode(ACMEOrderRecord.self, from: Data(value)) } catch {
      throw ACMEError(.invalidInput, "an order record is not valid JSON of an order")
    }
    guard record.hosts.count <= 100, (0...1_000_000).contains(record.attempts),
      (record.orderURL?.utf8.count ?? 0) <= 2048, (record.lastError?.utf8.count ?? 0) <= 1024
    else { throw ACMEError(.invalidInput, "an order record has a field out of bounds") }
    return record
  }

  /// Compact JSON with sorted keys.
  public func encoded() -> [UInt8] {
    let encoder = JSONEncoder()
    encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
    return Array((try? encoder.encode(self)) ?? Data())
  }
}

extension ACMEAccountRecord {
  /// Reads the account record; refuses oversize values.
  public static func parse(_ value: [UInt8]) throws(ACMEError) -> ACMEAccountRecord {
    guard value.count <= 8 * 1024,
      let record = try? JSONDecoder().decode(ACMEAccountRecord.self, from: Data(value))
    else { throw ACMEError(.invalidInput, "the ACME account record is not valid") }
    return record
  }

  /// Compact JSON with sorted keys.
  public func encoded() -> [UInt8] {
    let encoder = JSONEncoder()
    encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
    return Array((try? encoder.encode(self)) ?? Data())
  }
}

/// The coordinator's decisions, without I/O.
public enum ACMEPlan {
  /// What to do about one certificate.
  public enum Step: Sendable, Hashable {
    /// The certificate is good until `renewAt`.
    case keep(renewAt: Date)
    /// A failed attempt asks to wait until then.
    case wait(until: Date)
    /// Order now (resuming the order in progress if there is one for the same hosts).
    case order(Reason)
  }

  /// Why an order is needed.
  public enum Reason: String, Sendable, Hashable {
    /// No usable certificate.
    case missing
    /// The route's hosts are not the certificate's.
    case hostsChanged
    /// The certificate is in its renewal window.
    case renewal
  }

  /// The step for a certificate that should serve `hosts`.
  ///
  /// - Parameters:
  ///   - certificate: The stored certificate's hosts and validity, when it opens and validates.
  ///   - order: The order record, when there is one; it only counts for the same hosts.
  ///   - renewalFraction: The last part of the lifetime in which to renew (1/3 by default).
  public static func step(
    hosts: [String],
    certificate: (hosts: [String], notBefore: Date, notAfter: Date)?,
    order: ACMEOrderRecord?,
    now: Date,
    renewalFraction: Double
  ) -> Step {
    let reason: Reason
    if let certificate {
      if certificate.hosts.sorted() != hosts.sorted() {
        reason = .hostsChanged
      } else {
        let renewAt = renewalTime(
          notBefore: certificate.notBefore, notAfter: certificate.notAfter, fraction: renewalFraction)
        if now < renewAt { return .keep(renewAt: renewAt) }
        reason = .renewal
      }
    } else {
      reason = .missing
    }
    if let order, order.hosts.sorted() == hosts.sorted(), let next = order.nextAttemptAt {
      let until = Date(timeIntervalSince1970: TimeInterval(next))
      if now < until { return .wait(until: until) }
    }
    return .order(reason)
  }

  /// When the last `fraction` of the lifetime begins.
  public static func renewalTime(notBefore: Date, notAfter: Date, fraction: Double) -> Date {
    let lifetime = notAfter.timeIntervalSince(notBefore)
    let clamped = min(max(fraction, 0), 1)
    return notAfter.addingTimeInterval(-lifetime * clamped)
  }

  /// The wait after `attempts` failures in a row: `minimum` doubled each time, at most `maximum`.
  public static func backoff(attempts: Int, minimum: Duration, maximum: Duration) -> Duration {
    guard attempts > 1 else { return minimum }
    var wait = minimum
    for _ in 1..<min(attempts, 40) {
      wait = wait * 2
      if wait >= maximum { return maximum }
    }
    return min(wait, maximum)
  }

  /// Whether `url` has the scheme, host and port of `directoryURL`: an order URL read from etcd is only
  /// followed to the CA itself.
  public static func isSameOrigin(_ url: String, as directoryURL: String) -> Bool {
    guard let a = URLComponents(string: url), let b = URLComponents(string: directoryURL),
      a.scheme == "https", a.scheme == b.scheme, a.host == b.host, a.port == b.port, a.user == nil
    else { return false }
    return true
  }
}
