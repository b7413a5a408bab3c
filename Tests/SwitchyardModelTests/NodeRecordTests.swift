import SwitchyardModel
import Testing

@Suite("Node records (/switchyard/nodes/<node-id>)")
struct NodeRecordTests: RefusedEntrySuite {
  static let key = "/switchyard/nodes/lb1"
  static let valid =
    #"{"admin_url":"http://127.0.0.1:9101","applied_revision":42,"haproxy_version":"2.6.12-1+deb12u2","#
    + #""listen":"127.0.0.1:8001","started":1796000000,"stats":"127.0.0.1:8401","switchyard_version":"0.26.0"}"#

  static func parse(_ value: String, key: String = key) throws(RegistrationError) -> NodeRecord {
    try NodeRecord.parse(key: Array(key.utf8), value: Array(value.utf8))
  }

  @Test func aValidRecordParsesAndEncodesToTheSameBytes() throws {
    let record = try Self.parse(Self.valid)
    #expect(record.node.rawValue == "lb1")
    #expect(record.listen.port == 8001 && record.stats.port == 8401)
    #expect(record.adminURL == "http://127.0.0.1:9101")
    #expect(record.haproxyVersion == "2.6.12-1+deb12u2")
    #expect(record.appliedRevision == 42 && record.started == 1_796_000_000)
    #expect(String(decoding: record.encoded(), as: UTF8.self) == Self.valid)
    #expect(NodeRecord.key(of: record.node) == Self.key)
  }

  @Test func theHAProxyVersionAndRevisionMayBeMissing() throws {
    let record = try Self.parse(
      #"{"admin_url":"https://[::1]:9101","listen":"0.0.0.0:80","started":0,"stats":"[::1]:8401","switchyard_version":"1"}"#
    )
    #expect(record.haproxyVersion == nil && record.appliedRevision == 0)
  }

  static let refused: [RefusedEntry<Self>] = [
    .init("unknown field", #"{"listen":"127.0.0.1:8001","extra":1}"#, .invalidField, "extra"),
    .init("listen missing", valid.replacingOccurrences(of: #""listen":"127.0.0.1:8001","#, with: ""), "listen"),
    .init("listen not host:port", valid.replacingOccurrences(of: "127.0.0.1:8001", with: "x y"), "listen"),
    .init("admin URL with a path", valid.replacingOccurrences(of: "9101", with: "9101/x"), "admin_url"),
    .init(
      "admin URL javascript:",
      valid.replacingOccurrences(of: "http://127.0.0.1:9101", with: "javascript:alert(1)"), "admin_url"),
    .init("HTML in a version", valid.replacingOccurrences(of: "0.26.0", with: "<script>"), "switchyard_version"),
    .init("negative revision", valid.replacingOccurrences(of: ":42", with: ":-1"), "applied_revision"),
    .init("not JSON", "lb1", .invalidValue, nil),
    .init("nested key", key: "/switchyard/nodes/a/b", valid, .invalidKey, nil),
    .init("bad node id", key: "/switchyard/nodes/l b", valid, .invalidKey, nil),
  ]

  @Test(arguments: refused)
  func hostileRecordsAreRefusedNamingTheField(entry: RefusedEntry<Self>) {
    #expect {
      _ = try NodeRecord.parse(key: entry.key, value: entry.value)
    } throws: { error in
      guard let error = error as? RegistrationError else { return false }
      return error.code == entry.code && (entry.field == nil || error.field == entry.field)
        && !error.description.contains("<script>") && !error.description.contains("javascript:")
    }
  }

  @Test func anOversizedValueIsRefused() {
    #expect(throws: RegistrationError.self) {
      try Self.parse(String(repeating: " ", count: NodeRecord.maxValueBytes + 1) + Self.valid)
    }
  }
}
