import EtcdClient
import Foundation
import SwitchyardModel
import SwitchyardTestSupport
import Testing

extension ScenarioContext {
  // MARK: - The nodes' records when a controller dies

  /// Records nobody's controller wrote, each refused by `switchyard status` with its reason.
  static let hostileNodeRecords: [(key: String, value: String, reason: String)] = [
    (
      NodeRecord.root + "evil-url",
      #"{"admin_url":"javascript:alert(1)","listen":"10.0.0.1:80","started":0,"stats":"10.0.0.1:81","switchyard_version":"1"}"#,
      "must start with http:// or https://"
    ),
    (
      NodeRecord.root + "evil-terminal",
      #"{"admin_url":"http://10.0.0.1:1","listen":"10.0.0.1:80","started":0,"stats":"10.0.0.1:81","switchyard_version":"\u001b]0;owned\u0007"}"#,
      "switchyard_version"
    ),
    (NodeRecord.root + "evil/nested", "{}", "key must be"),
    (NodeRecord.root + "evil-json", "EVIL <script>", "is not a JSON object"),
  ]

  /// lb1's controller killed (-9) under load; its HAProxy keeps serving.
  ///
  /// Expected: lb1's record leaves etcd within the TTL (10 s) plus a second, its lease no longer kept alive;
  /// lb2's stays all along; `switchyard status`, from the test's host with etcd alone, lists both
  /// nodes ready before, lb2 alone after, and each hostile record as invalid with its reason, escaped; lb1's
  /// controller started again announces it again (a grant and a put); 0 failed requests; the controllers
  /// write nothing but their records.
  func nodeRecordsWhenAControllerDies() async throws {
    let log = EtcdWriteLog(etcd, from: try await etcd.get(.key("/")).header.revision + 1)
    defer { log.stop() }
    _ = try await record(of: "lb2")
    _ = try await record(of: "lb1")
    for entry in Self.hostileNodeRecords { try await log.put(entry.key, entry.value) }
    try await expectStatus(ready: ["lb1", "lb2"])

    cluster.controller("lb1")?.kill()
    faultBegins()
    var lb2Missing: [String] = []
    var goneAfter: Duration?
    while elapsedSinceFault < .seconds(NodeRecord.ttl + 3) {
      if goneAfter == nil, try await etcd.value(of: NodeRecord.root + "lb1") == nil { goneAfter = elapsedSinceFault }
      if try await etcd.value(of: NodeRecord.root + "lb2") == nil { lb2Missing.append("\(elapsedSinceFault)") }
      if goneAfter != nil { break }
      try await Task.sleep(for: .milliseconds(100))
    }
    note("lb1's record left etcd \(goneAfter.map { "\($0)" } ?? "never") after its controller was killed")
    #expect(
      goneAfter.map { $0 <= .seconds(NodeRecord.ttl + 1) } == true,
      "\(name): lb1's record left after \(String(describing: goneAfter)) (TTL \(NodeRecord.ttl) s)")
    #expect(lb2Missing.isEmpty, "\(name): lb2's record was gone at \(lb2Missing.prefix(5))")
    try await expectStatus(ready: ["lb2"], absent: ["lb1"])

    try cluster.startController("lb1")
    try await cluster.waitReady("lb1")
    let back = try await record(of: "lb1")
    #expect(back.version == 1, "\(name): lb1's new record was written \(back.version) times")
    for entry in Self.hostileNodeRecords { try await log.delete(entry.key) }
    await healed()
    let writes = try await judgeWrites(log)
    #expect(writes.nodeRecords <= 3, "\(name): \(writes.nodeRecords) writes of the nodes' records")
  }

  /// `node`'s record, once it is there (within 15 s).
  private func record(of node: String) async throws -> KeyValue {
    var found: KeyValue?
    try await retrying(timeout: .seconds(15), every: .milliseconds(200)) {
      found = try await etcd.value(of: NodeRecord.root + node)
      guard found != nil else { throw TestSupportError("no record of \(node)") }
    }
    return try #require(found)
  }

  /// Runs `switchyard status --json` and `switchyard status` against the lab's etcd from the test's host (no
  /// local cluster), and checks the nodes it lists and the hostile records it refuses.
  private func expectStatus(ready: [String], absent: [String] = []) async throws {
    let home = try TemporaryDirectory(prefix: "fault-status")
    defer { home.remove() }
    var environment = ProcessInfo.processInfo.environment
    environment["SWITCHYARD_HOME"] = home.path
    environment["ETCD_ENDPOINTS"] = nil
    let arguments = ["status", "--etcd-endpoints", cluster.endpoints]
    let json = try await ManagedProcess.run(
      switchyardBinary, arguments: arguments + ["--json"], environment: environment)
    let report = try JSONDecoder().decode(StatusReport.self, from: Data(json.utf8))
    for node in ready {
      let entry = report.announcedNodes.first { $0.id == node }
      #expect(entry?.answer == "ready", "\(name): status says \(node) is \(entry?.answer ?? "absent")")
      #expect(entry?.adminURL == cluster.adminURL(node), "\(name): \(node)'s admin URL \(entry?.adminURL ?? "-")")
    }
    for node in absent {
      #expect(!report.announcedNodes.contains { $0.id == node }, "\(name): status still lists \(node)")
    }
    for entry in Self.hostileNodeRecords {
      let listed = report.announcedNodes.first { $0.key == entry.key }
      #expect(listed?.invalid?.contains(entry.reason) == true, "\(name): \(entry.key): \(String(describing: listed))")
    }
    let text = try await ManagedProcess.run(switchyardBinary, arguments: arguments, environment: environment)
    #expect(
      !text.unicodeScalars.contains { $0.value < 0x20 && $0 != "\n" }, "\(name): a control character in status")
    #expect(!text.contains("<script>") && text.contains("invalid record"), "\(name): \(text)")
  }
}

/// The part of `switchyard status --json` this scenario reads (the fault tests do not link SwitchyardLocal).
private struct StatusReport: Decodable {
  struct Node: Decodable {
    var id: String
    var key: String
    var invalid: String?
    var adminURL: String?
    var answer: String
  }

  var announcedNodes: [Node]
}
