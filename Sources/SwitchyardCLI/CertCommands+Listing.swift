import EtcdClient
import Foundation
import SwitchyardCerts

/// The certificates in etcd as `switchyard cert ls` and `switchyard status` show them, read without the
/// cluster key: each valid one with its hosts, expiry, source and key id, and the invalid entries with why.
/// Pure once read; every printed text comes from a validated type or is escaped.
struct CertificateListing: Sendable {
  /// One certificate, as `cert ls --json` prints it.
  struct Item: Sendable, Hashable, Codable {
    var name: String
    var hosts: [String]
    var subject: String
    var notAfter: String
    var daysLeft: Int
    var source: String
    var keyID: String
    var modRevision: Int64
  }

  /// An entry that is not a valid certificate.
  struct Invalid: Sendable, Hashable, Codable {
    var key: String
    var reason: String
  }

  /// What `cert ls --json` prints.
  struct Document: Sendable, Codable {
    var revision: Int64
    var certificates: [Item]
    var invalid: [Invalid]
  }

  /// Days before expiry from which `status` warns.
  static let warningDays = 14

  /// The etcd revision the entries were read at.
  let revision: Int64
  /// Every entry under `/switchyard/certs/`, by key.
  let summaries: [CertificateSummary]

  /// The valid entries.
  var valid: [(summary: CertificateSummary, record: CertificateRecord)] {
    summaries.compactMap { summary in
      guard summary.problem == nil, let record = summary.record else { return nil }
      return (summary, record)
    }
  }

  /// The invalid entries.
  var invalid: [CertificateSummary] { summaries.filter { $0.problem != nil } }

  /// Builds the listing from the entries under `/switchyard/certs/`.
  init(revision: Int64, entries: [KeyValue]) {
    self.revision = revision
    summaries = entries.map { CertificateSummary(key: $0.key, value: $0.value, modRevision: $0.modRevision) }
      .sorted { $0.key < $1.key }
  }

  /// Reads `/switchyard/certs/`.
  static func read(from client: EtcdClient) async throws -> CertificateListing {
    let response = try await client.getPaginated(.prefix(CertificateRecord.root))
    return CertificateListing(revision: response.header.revision, entries: response.kvs)
  }

  /// `12`, or `EXPIRED` once past.
  static func daysText(_ days: Int) -> String { days < 0 ? "EXPIRED" : String(days) }

  /// The listing as `cert ls --json` prints it.
  func document(now: Date) -> Document {
    Document(
      revision: revision,
      certificates: valid.map { summary, record in
        Item(
          name: record.name.rawValue, hosts: record.hosts.map(\.text), subject: summary.subject ?? "",
          notAfter: CertificateDates.text(record.notAfter),
          daysLeft: CertificateDates.daysLeft(until: record.notAfter, now: now), source: record.source.rawValue,
          keyID: record.sealedKey.keyID, modRevision: record.modRevision)
      },
      invalid: invalid.map { Invalid(key: $0.key, reason: $0.problem?.reason ?? "") })
  }

  /// The table rows: name, hosts, not after, days left, source, key id.
  func rows(now: Date) -> [[String]] {
    var rows = [["NAME", "HOSTS", "NOT AFTER", "DAYS LEFT", "SOURCE", "KEY ID"]]
    for (_, record) in valid {
      rows.append([
        record.name.rawValue, record.hosts.map(\.text).joined(separator: ","), CertificateDates.text(record.notAfter),
        Self.daysText(CertificateDates.daysLeft(until: record.notAfter, now: now)), record.source.rawValue,
        record.sealedKey.keyID,
      ])
    }
    return rows
  }

  /// `<key>: INVALID: <reason>` for each invalid entry.
  var invalidLines: [String] {
    invalid.map { "\($0.key): INVALID: \($0.problem?.reason ?? "?")" }
  }

  /// The listing as `cert ls` prints it.
  func lines(now: Date) -> [String] {
    var lines: [String] = []
    if valid.isEmpty {
      lines.append("No valid certificates in etcd (revision \(revision)).")
    } else {
      lines.append("Certificates in etcd (revision \(revision)):")
      lines += alignedColumns(rows(now: now))
    }
    if !invalid.isEmpty {
      lines.append("")
      lines.append("Invalid entries (not served; a node keeps the last valid certificate of that name it read):")
      lines += invalidLines.map { "  \($0)" }
    }
    return lines
  }

  /// The `status` section: the table, a warning for each certificate that expires within
  /// ``warningDays`` days (or has), and the invalid entries.
  func statusLines(now: Date) -> [String] {
    guard !summaries.isEmpty else { return ["Certificates in etcd: none."] }
    var lines = ["Certificates in etcd (revision \(revision)):"]
    if !valid.isEmpty { lines += alignedColumns(rows(now: now), indent: "  ") }
    for (_, record) in valid {
      let days = CertificateDates.daysLeft(until: record.notAfter, now: now)
      if days < 0 {
        lines.append("  warning: certificate \(record.name) expired at \(CertificateDates.text(record.notAfter))")
      } else if days < Self.warningDays {
        lines.append(
          "  warning: certificate \(record.name) expires within \(Self.warningDays) days "
            + "(\(CertificateDates.text(record.notAfter)), \(days) days left)")
      }
    }
    lines += invalidLines.map { "  \($0)" }
    return lines
  }
}
