import Foundation
import SwiftASN1
import SwitchyardCerts
import Testing
import X509

@Suite struct CertificateRecordTests {
  let clusterKey = ClusterKey.generate()
  let leaf: TestIssuer.Issued
  let record: CertificateRecord

  init() throws {
    let ca = try TestIssuer.authority()
    leaf = try TestIssuer.leaf(
      commonName: "shop.example.com", dnsNames: ["shop.example.com", "*.shop.example.com"], issuer: ca)
    let bundle = try CertificateBundle.validate(
      name: try CertificateName(validating: "shop"), chainPEM: leaf.pem, keyPEM: leaf.key.pem, hosts: nil, now: Date())
    record = bundle.record(sealedWith: clusterKey, source: .manual)
  }

  func fields() throws -> [String: Any] {
    try #require(try JSONSerialization.jsonObject(with: Data(record.jsonValue())) as? [String: Any])
  }

  func parse(_ object: [String: Any], key: String = "/switchyard/certs/shop") throws(CertificateProblem)
    -> CertificateRecord
  {
    let data = (try? JSONSerialization.data(withJSONObject: object)) ?? Data()
    return try CertificateRecord.parse(key: Array(key.utf8), value: Array(data), modRevision: 1)
  }

  @Test func theJSONHoldsNoKeyBytes() throws {
    let value = record.jsonValue()
    let json = String(decoding: value, as: UTF8.self)
    let secret = leaf.key.secret
    try #require(secret.count == 32)
    #expect(!json.contains("PRIVATE KEY"))
    // The scalar in base64 at each of the three alignments, in hex, and raw.
    for shift in 0..<3 {
      let encoded = Data([0, 0, 0][..<shift] + secret).base64EncodedString()
      #expect(!json.contains(String(encoded.dropFirst(4).prefix(24))))
    }
    #expect(!json.lowercased().contains(secret.map { String(format: "%02x", $0) }.joined()))
    #expect(!value.containsSubsequence(secret))
    #expect(Set(try fields().keys) == ["chain_pem", "hosts", "key_id", "not_after", "sealed_key", "source"])
    #expect(json.contains("\"key_id\":\"\(clusterKey.id)\""))
  }

  @Test func roundTrips() throws {
    let parsed = try CertificateRecord.parse(key: Array(record.path.utf8), value: record.jsonValue(), modRevision: 0)
    #expect(parsed == record)
    #expect(parsed.hosts.map(\.text) == ["shop.example.com", "*.shop.example.com"])
    #expect(CertificateRecord.path(for: record.name) == "/switchyard/certs/shop")
  }

  @Test func unknownFieldsAreRefused() throws {
    var object = try fields()
    object["private_key"] = "x"
    let problem = #expect(throws: CertificateProblem.self) { try parse(object) }
    #expect(problem?.reason.contains("unknown field \"private_key\"") == true)
    #expect(problem?.name == "shop")
  }

  @Test func oversizeIsRefused() throws {
    var object = try fields()
    object["chain_pem"] = String(repeating: "A", count: 70_000)
    let problem = #expect(throws: CertificateProblem.self) { try parse(object) }
    #expect(problem?.reason.contains("at most 65536 are accepted") == true)
  }

  @Test(arguments: [
    ("sealed_key", #""not base64!""#, "not base64"),
    ("sealed_key", #""AAAA""#, "too short"),
    ("sealed_key", "5", "must be a string"),
    ("key_id", #""ABC""#, "16 lower-case hex"),
    ("source", #""stolen""#, "\"manual\" or \"acme\""),
    ("not_after", #""tomorrow""#, "must be a date"),
    ("hosts", "[]", "1 to 100 entries"),
    ("hosts", #"["bad host"]"#, "hosts entry 0 contains"),
    ("hosts", #""shop.example.com""#, "array of strings"),
  ])
  func badFieldsAreRefused(field: String, json: String, expected: String) throws {
    var object = try fields()
    object[field] = try JSONSerialization.jsonObject(with: Data(json.utf8), options: .fragmentsAllowed)
    let problem = #expect(throws: CertificateProblem.self) { try parse(object) }
    #expect(problem?.field == field)
    #expect(problem?.reason.contains(expected) == true, "\(String(describing: problem))")
  }

  @Test func missingFieldsAndNonObjectsAreRefused() throws {
    for field in ["chain_pem", "hosts", "key_id", "not_after", "sealed_key", "source"] {
      var object = try fields()
      object[field] = nil
      let problem = #expect(throws: CertificateProblem.self) { try parse(object) }
      #expect(problem?.reason == "\(field) is missing")
    }
    #expect(throws: CertificateProblem.self) {
      try CertificateRecord.parse(key: Array("/switchyard/certs/shop".utf8), value: Array("[1]".utf8), modRevision: 1)
    }
  }

  @Test(arguments: [
    "/switchyard/certs/", "/switchyard/certs/a/b", "/switchyard/certs/a b", "/switchyard/routes/shop",
    "/switchyard/certs/\u{1b}[31m",
  ])
  func badKeysAreRefused(key: String) throws {
    let problem = #expect(throws: CertificateProblem.self) { try parse(try fields(), key: key) }
    #expect(problem?.field == "key")
    #expect(problem?.description.contains("\u{1b}") == false)
  }

  @Test func aRecordEditedInEtcdDoesNotOpen() throws {
    // Another host than the leaf covers.
    var object = try fields()
    object["hosts"] = ["evil.example.net"]
    let hosts = try parse(object)
    let problem = #expect(throws: CertificateProblem.self) {
      try CertificateBundle.open(hosts, with: clusterKey, now: Date())
    }
    #expect(problem?.field == "hosts")
    // A later not_after than the leaf's.
    object = try fields()
    object["not_after"] = "2999-01-01T00:00:00Z"
    let dated = try parse(object)
    let later = #expect(throws: CertificateProblem.self) {
      try CertificateBundle.open(dated, with: clusterKey, now: Date())
    }
    #expect(later?.field == "not_after")
    // The sealed key of this record under another name.
    let moved = try parse(try fields(), key: "/switchyard/certs/other")
    let movedProblem = #expect(throws: CertificateProblem.self) {
      try CertificateBundle.open(moved, with: clusterKey, now: Date())
    }
    #expect(movedProblem?.field == "sealed key")
  }
}

extension Array where Element == UInt8 {
  fileprivate func containsSubsequence(_ needle: [UInt8]) -> Bool {
    guard !needle.isEmpty, needle.count <= count else { return false }
    return (0...(count - needle.count)).contains { Array(self[$0..<($0 + needle.count)]) == needle }
  }
}
