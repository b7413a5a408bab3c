import SwitchyardModel

/// Why a certificate, its key, a cluster key or a record in etcd was refused.
///
/// The text names what is wrong and, where it helps, which certificate (`certificate "shop": the key does not
/// match the leaf certificate (CN=shop.example.com)`). It never contains key material: reasons are written
/// by this module from validated facts, and anything taken from input is escaped and shortened.
public struct CertificateProblem: Error, Sendable, Hashable, CustomStringConvertible {
  /// The certificate's name, when the problem belongs to one.
  public var name: String?
  /// What the problem is about: `name`, `chain`, `key`, `hosts`, `cluster key`, `sealed key`, `record`, or a
  /// JSON field of a record.
  public var field: String
  /// What is wrong, in words.
  public var reason: String

  /// Creates a problem; `name` is escaped when shown.
  public init(name: String? = nil, field: String, reason: String) {
    self.name = name
    self.field = field
    self.reason = reason
  }

  /// `certificate "shop": <reason>`, or the reason alone without a name.
  public var description: String {
    guard let name else { return reason }
    return "certificate \"\(RegistrationError.escape(name, limit: 128))\": \(reason)"
  }

  /// The same problem, attributed to certificate `name` (unless it already names one).
  func named(_ name: CertificateName) -> CertificateProblem {
    var copy = self
    if copy.name == nil { copy.name = name.rawValue }
    return copy
  }
}
