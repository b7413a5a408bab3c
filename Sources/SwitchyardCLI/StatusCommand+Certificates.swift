import EtcdClient
import Foundation
import Logging
import SwitchyardLocal

extension StatusCommand {
  /// The certificates section of `status`, read from the same etcd as the rest (as the operator user in a
  /// secure local cluster): each certificate's hosts, days left and source, a warning for each that expires
  /// within 14 days, and the invalid entries. A failed read is one line saying so, not a failed command.
  func certificateSection(now: Date = Date()) async -> [String] {
    do {
      return [""] + (try await certificateListing()).statusLines(now: now)
    } catch {
      return ["", "Certificates in etcd: cannot read /switchyard/certs/ (\(Self.printable("\(error)")))."]
    }
  }

  /// The certificates in etcd, read as ``certificateSection(now:)`` reads them.
  func certificateListing() async throws -> CertificateListing {
    let configuration = try etcdOnlyConfiguration() ?? etcd.makeConfiguration(localCluster: .operator)
    var logger = Logger(label: "switchyard.status")
    logger.logLevel = .critical
    return try await withEtcdClient(configuration: configuration, logger: logger) { client in
      try await CertificateListing.read(from: client)
    }
  }

  /// `status --json`: the report, with the certificates in etcd under `edgeCertificates` (as `cert ls --json`
  /// prints them), or `edgeCertificatesError` when they cannot be read.
  func jsonDocument(_ report: ClusterReport, now: Date = Date()) async throws -> Data {
    let encoder = JSONEncoder()
    encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
    guard var object = try JSONSerialization.jsonObject(with: encoder.encode(report)) as? [String: Any] else {
      return try encoder.encode(report)
    }
    do {
      let listing = try await certificateListing()
      object["edgeCertificates"] = try JSONSerialization.jsonObject(with: encoder.encode(listing.document(now: now)))
    } catch {
      object["edgeCertificatesError"] = Self.printable("\(error)")
    }
    return try JSONSerialization.data(
      withJSONObject: object, options: [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes])
  }
}
