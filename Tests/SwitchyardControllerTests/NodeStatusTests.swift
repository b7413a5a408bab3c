import EtcdClient
import Foundation
import SwitchyardLocal
import SwitchyardModel
import SwitchyardTestSupport
import Testing

/// `switchyard status --etcd-endpoints …`: every node that announces itself in etcd, from any host, with
/// whether it answers; hostile records under `/switchyard/nodes/` are listed as invalid, escaped, never
/// printed raw.
@Suite(.serialized) struct NodeStatusTests {
  /// Records a node's controller never wrote: each must be refused with its reason.
  static let hostile: [(key: String, value: String, reason: String)] = [
    (
      "/switchyard/nodes/evil",
      #"{"admin_url":"javascript:alert(1)","listen":"127.0.0.1:1","started":0,"stats":"127.0.0.1:2","switchyard_version":"1"}"#,
      "must start with http:// or https://"
    ),
    (
      "/switchyard/nodes/escape",
      "{\"admin_url\":\"http://127.0.0.1:1\",\"listen\":\"127.0.0.1:1\",\"started\":0,\"stats\":\"127.0.0.1:2\","
        + #""switchyard_version":"\u001b[2J\u001b[31mowned"}"#,
      "switchyard_version"
    ),
    ("/switchyard/nodes/a/b", "{}", "key must be /switchyard/nodes/<node-id>"),
    ("/switchyard/nodes/bell\u{07}", "{}", "contains the character U+0007"),
    ("/switchyard/nodes/notjson", "<script>alert(1)</script>", "is not a JSON object"),
  ]

  @Test func statusListsEveryNodeFromEtcdAndRefusesHostileRecords() async throws {
    try await withNodes(count: 2) { cluster, nodes, etcd in
      for node in ["lb1", "lb2"] { _ = try await announcement(of: node, etcd: etcd, timeout: .seconds(10)) }
      for entry in Self.hostile { _ = try await etcd.put(entry.key, value: entry.value) }
      // A valid record whose node does not answer: listed, "not answering".
      let silent = try FreePort.allocate()
      let ghost = try NodeRecord(
        node: InstanceID(validating: "ghost"), listen: HostPort(parsing: "127.0.0.1:1"),
        stats: HostPort(parsing: "127.0.0.1:2"), adminURL: "http://127.0.0.1:\(silent)", switchyardVersion: "0.26.0",
        started: 0)
      _ = try await etcd.put(NodeRecord.key(of: ghost.node), value: ghost.encoded())
      let endpoints = cluster.endpoints.joined(separator: ",")
      let directory = try TemporaryDirectory(prefix: "status-home")
      defer { directory.remove() }
      // No local cluster in the state directory: status reads etcd alone.
      var environment = ProcessInfo.processInfo.environment
      environment["SWITCHYARD_HOME"] = directory.path
      environment["ETCD_ENDPOINTS"] = nil

      let json = try await switchyard(["status", "--json", "--etcd-endpoints", endpoints], environment: environment)
      let report = try JSONDecoder().decode(ClusterReport.self, from: Data(json.utf8))
      let listed = try #require(report.announcedNodes, "\(json)")
      for node in nodes {
        let entry = try #require(listed.first { $0.id == node.name }, "\(json)")
        #expect(entry.invalid == nil && entry.answer == "ready", "\(entry)")
        #expect(entry.adminURL == node.adminURL && entry.listen == "127.0.0.1:\(node.listenPort)")
        #expect(entry.behind == 0, "\(entry)")
        #expect(entry.haproxyVersion != nil && entry.switchyardVersion == SwitchyardVersion.current)
      }
      let ghostEntry = try #require(listed.first { $0.id == "ghost" })
      #expect(ghostEntry.answer == "not answering", "\(ghostEntry)")
      for entry in Self.hostile {
        let found = listed.first { $0.key == RegistrationError.escape(entry.key, limit: 200) }
        #expect(found?.invalid?.contains(entry.reason) == true, "\(entry.key): \(String(describing: found))")
      }
      #expect(report.home == nil && report.parts.isEmpty)

      let text = try await switchyard(["status", "--etcd-endpoints", endpoints], environment: environment)
      #expect(text.contains("Load-balancer nodes in etcd"), "\(text)")
      #expect(!text.unicodeScalars.contains { $0.value < 0x20 && $0 != "\n" }, "a control character in:\n\(text)")
      #expect(!text.contains("<script>"), "\(text)")
      for node in nodes {
        let row = text.split(separator: "\n").first { $0.hasPrefix("  \(node.name) ") }
        #expect(row?.split(separator: " ").dropFirst().first == "ready", "\(text)")
        #expect(row?.contains(node.adminURL) == true, "\(text)")
      }
      #expect(text.contains("evil: invalid record, not used:"), "\(text)")
      #expect(text.contains("ghost: not answering"), "\(text)")
      #expect(text.contains("Registrations in etcd (revision"), "\(text)")

      // Where etcd cannot be reached, status says so and fails.
      let unreachable = try FreePort.allocate()
      let (status, output) = try await switchyardStatus(
        ["status", "--etcd-endpoints", "127.0.0.1:\(unreachable)", "--dial-timeout", "0.5", "--request-timeout", "1"],
        environment: environment)
      #expect(status != 0 && output.contains("could not be read"), "\(output)")
    }
  }
}
