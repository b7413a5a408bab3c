import ArgumentParser
import EtcdClient
import Foundation
import SwitchyardLocal
import SwitchyardModel

extension StatusCommand {
  /// The etcd to read the nodes from when `status` does not report a local cluster: the one the etcd options
  /// or `$ETCD_ENDPOINTS` name; else, when `--home` is not given and no local cluster is recorded in the
  /// state directory, the options' defaults (`127.0.0.1:2379`). `nil`: report the local cluster, as before.
  func etcdOnlyConfiguration(
    environment: [String: String] = ProcessInfo.processInfo.environment
  ) throws -> EtcdConfiguration? {
    let named =
      [etcd.endpoints, etcd.user, etcd.passwordFile, etcd.caCertificate, etcd.certificate, etcd.key]
      .contains { $0 != nil }
      || [EtcdOptions.userVariable, "ETCD_ENDPOINTS"].contains { !(environment[$0] ?? "").isEmpty }
    if named { return try etcd.makeConfiguration(environment: environment) }
    guard home.home == nil else { return nil }
    let local = LocalCluster.defaultHome(environment: environment)
    if (try? ClusterState.load(home: local)) != nil { return nil }
    return try etcd.makeConfiguration(environment: environment)
  }

  /// Reads the report from etcd alone; etcd that does not answer ends the command with an error.
  static func readFromEtcd(_ configuration: EtcdConfiguration) async throws -> ClusterReport {
    do {
      return try await ClusterReport.read(etcd: configuration)
    } catch {
      let endpoints = configuration.endpoints.map(\.description).joined(separator: ",")
      FileHandle.standardError.write(
        Data(
          "error: no local cluster here, and etcd at \(endpoints) could not be read: \(printable("\(error)"))\n".utf8))
      throw ExitCode.failure
    }
  }

  /// The lines about the nodes that announce themselves in etcd: one row each, with its problem below.
  static func announcedNodeLines(_ report: ClusterReport) -> [String] {
    if let problem = report.announcedNodesError {
      return ["Load-balancer nodes in etcd: cannot read \(NodeRecord.root) (\(printable(problem)))."]
    }
    guard let nodes = report.announcedNodes, let revision = report.etcdRevision else { return [] }
    guard !nodes.isEmpty else {
      return ["Load-balancer nodes in etcd: none announces itself under \(NodeRecord.root)."]
    }
    var lines = [
      "Load-balancer nodes in etcd (revision \(revision); newest change to what they serve: "
        + "\(report.newestChange.map(String.init) ?? "-")):"
    ]
    var rows = [["NODE", "STATE", "LISTEN", "ADMIN", "SWITCHYARD", "HAPROXY", "APPLIED", "BEHIND", "STARTED"]]
    var problems: [String] = []
    for node in nodes {
      if let invalid = node.invalid {
        rows.append([printable(node.id), "invalid record", "-", "-", "-", "-", "-", "-", "-"])
        problems.append("\(printable(node.id)): invalid record, not used: \(printable(invalid))")
        continue
      }
      let applied =
        node.liveAppliedRevision.map(String.init) ?? node.appliedRevision.map { "\($0) (record)" } ?? "-"
      rows.append(
        [
          node.id, node.answer, node.listen ?? "-", node.adminURL ?? "-", node.switchyardVersion ?? "-",
          node.haproxyVersion ?? "-", applied, node.behind.map(String.init) ?? "-", started(node.started),
        ].map(printable))
      if let detail = node.detail { problems.append("\(printable(node.id)): \(node.answer): \(printable(detail))") }
      for problem in node.certificateProblems ?? [] { problems.append("\(printable(node.id)): \(printable(problem))") }
      if node.acmeLeader == true { problems.append("\(printable(node.id)): leads the cluster's ACME orders") }
    }
    lines += alignedColumns(rows, indent: "  ")
    lines += problems.map { "  \($0)" }
    return lines
  }

  /// `2026-11-17 09:30:00Z`, or `-`.
  private static func started(_ seconds: Int64?) -> String {
    guard let seconds else { return "-" }
    let formatter = ISO8601DateFormatter()
    formatter.formatOptions = [.withFullDate, .withSpaceBetweenDateAndTime, .withTime, .withColonSeparatorInTime]
    return formatter.string(from: Date(timeIntervalSince1970: TimeInterval(seconds))) + "Z"
  }

  /// `text` with anything but printable ASCII escaped: nothing read from etcd or from a node can forge a
  /// line of the report or send the terminal a control sequence.
  static func printable(_ text: String) -> String {
    text.unicodeScalars.map {
      (0x20...0x7E).contains($0.value) ? String($0) : "\\u{\(String($0.value, radix: 16))}"
    }
    .joined()
  }
}
