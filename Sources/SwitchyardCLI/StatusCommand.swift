import ArgumentParser
import Foundation
import SwitchyardLocal
import SwitchyardModel

/// `switchyard status`.
struct StatusCommand: AsyncParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "status",
    abstract: "Show each part of the local cluster, each LB node's servers, and the registrations in etcd.",
    discussion: """
      Every load-balancer node that announces itself in etcd (/switchyard/nodes/) is listed too, with whether \
      its admin endpoint answers. With --etcd-endpoints (or $ETCD_ENDPOINTS), or where no local cluster runs, \
      status reads etcd alone: on any host, the nodes and the registrations.
      """
  )

  @Flag(help: "Print JSON.") var json = false
  @OptionGroup var home: HomeOptions
  @OptionGroup var etcd: EtcdOptions

  func run() async throws {
    try await runClusterOperation {
      let report =
        if let configuration = try etcdOnlyConfiguration() {
          try await Self.readFromEtcd(configuration)
        } else {
          try await home.cluster().status()
        }
      if json {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
        print(String(decoding: try encoder.encode(report), as: UTF8.self))
      } else {
        print(try await Self.table(report))
        for line in await certificateSection() { print(line) }
      }
    }
  }

  static func table(_ report: ClusterReport) async throws -> String {
    var lines = report.home == nil ? [] : [pad(["NAME", "KIND", "PID", "ADDRESS", "HEALTH"])]
    for part in report.parts {
      lines.append(pad([part.name, part.kind, part.pid.map(String.init) ?? "-", part.address, part.health]))
    }
    for node in report.nodes {
      lines.append("")
      let state = node.state
      lines.append(
        "\(node.name): \(state.ready ? "ready" : "not ready (\(state.notReadyReasons.joined(separator: "; ")))"), "
          + "applied revision \(state.appliedRevision), HAProxy \(state.haproxyVersion ?? "?") "
          + "pid \(state.haproxyPID.map(String.init) ?? "-"), reloads \(state.reloads)"
      )
      for service in state.services {
        let servers = service.servers.map { "\($0.name) \($0.address) \($0.adminState)/\($0.health)" }
        lines.append(
          "  \(service.backend): " + (servers.isEmpty ? "no servers (503)" : servers.joined(separator: ", ")))
      }
      lines += routingLines(state)
    }
    if report.home != nil { lines.append("") }
    let announced = announcedNodeLines(report)
    if !announced.isEmpty { lines += announced + [""] }
    if let certificates = report.certificates {
      lines.append("TLS and etcd authentication on: \(certificates).")
      lines.append("")
    }
    if let revision = report.etcdRevision {
      lines.append("Registrations in etcd (revision \(revision)):")
      // Keys and values as read from etcd, with anything but printable ASCII escaped: no value can
      // forge a line of the report or send the terminal a control sequence.
      lines += report.registrations.map { "  \(printable($0.key)) \(printable($0.value))" }
    } else {
      lines.append("etcd did not answer.")
    }
    return lines.joined(separator: "\n")
  }

  private static func pad(_ columns: [String]) -> String {
    let widths = [11, 8, 8, 26]
    return columns.enumerated().map { index, text in
      index < widths.count
        ? text.padding(toLength: max(widths[index], text.count + 1), withPad: " ", startingAt: 0) : text
    }.joined()
  }
}
