import Foundation
import SwitchyardModel
import X509

/// What `switchyard cert ls` and `switchyard status` show of one entry under `/switchyard/certs/`, read
/// without the cluster key: the record, and whether its chain holds up (it parses, each certificate issued
/// the one before, the leaf's end is the record's `not_after`, the leaf covers the record's hosts). The key
/// is not opened, so a key that does not match shows only where the cluster key is held.
public struct CertificateSummary: Sendable, Hashable {
  /// The entry's key, escaped for printing.
  public let key: String
  /// The parsed record; `nil` when it does not parse.
  public let record: CertificateRecord?
  /// The leaf's subject, escaped; `nil` when it could not be read.
  public let subject: String?
  /// Why the entry is invalid; `nil` when it is valid.
  public let problem: CertificateProblem?

  /// Checks one etcd entry.
  public init(key: [UInt8], value: [UInt8], modRevision: Int64) {
    self.key = printable(String(decoding: key, as: UTF8.self))
    var record: CertificateRecord?
    var subject: String?
    var problem: CertificateProblem?
    do throws(CertificateProblem) {
      let parsed = try CertificateRecord.parse(key: key, value: value, modRevision: modRevision)
      record = parsed
      do throws(CertificateProblem) {
        let chain = try CertificateBundle.parseChain(parsed.chainPEM)
        let leaf = chain[0].certificate
        subject = printable(leaf.subject.description)
        try CertificateBundle.checkIssuers(chain)
        guard leaf.notValidAfter == parsed.notAfter else {
          throw CertificateProblem(
            field: "not_after",
            reason:
              "the record's not_after (\(CertificateDates.text(parsed.notAfter))) is not the leaf's "
              + "(\(CertificateDates.text(leaf.notValidAfter)))")
        }
        _ = try CertificateBundle.coveredHosts(
          parsed.hosts, dnsNames: try CertificateBundle.leafDNSNames(leaf), leaf: leaf)
      } catch {
        throw error.named(parsed.name)
      }
    } catch {
      problem = error
    }
    self.record = record
    self.subject = subject
    self.problem = problem
  }

  /// Whole days until the record's `not_after`; negative once expired; `nil` without a record.
  public func daysLeft(now: Date) -> Int? {
    record.map { CertificateDates.daysLeft(until: $0.notAfter, now: now) }
  }
}
