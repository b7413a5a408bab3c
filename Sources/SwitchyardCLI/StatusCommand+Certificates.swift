import EtcdClient
import Foundation
import Logging

extension StatusCommand {
  /// The certificates section of `status`, read from the same etcd as the rest (as the operator user in a
  /// secure local cluster): each certificate's hosts, days left and source, a warning for each that expires
  /// within 14 days, and the invalid entries. A failed read is one line saying so, not a failed command.
  func certificateSection(now: Date = Date()) async -> [String] {
    do {
      let configuration = try etcdOnlyConfiguration() ?? etcd.makeConfiguration(localCluster: .operator)
      var logger = Logger(label: "switchyard.status")
      logger.logLevel = .critical
      let listing = try await withEtcdClient(configuration: configuration, logger: logger) { client in
        try await CertificateListing.read(from: client)
      }
      return [""] + listing.statusLines(now: now)
    } catch {
      return ["", "Certificates in etcd: cannot read /switchyard/certs/ (\(Self.printable("\(error)")))."]
    }
  }
}
