import EtcdClient
import Foundation
import SwitchyardLocal
import Testing

/// Pure checks of the secure local cluster's pieces: openssl's dates, and the roles' key ranges.
@Suite struct CertificateExpiryTests {
  @Test func opensslDatesParse() throws {
    let date = try #require(LocalSecurity.parseExpiry("Dec  3 20:33:13 2026 GMT"))
    #expect(date.timeIntervalSince1970 == 1_796_329_993)
    #expect(LocalSecurity.parseExpiry("notAfter=garbage") == nil)
  }

  @Test func policyRangesCoverEveryRegistrationAndNotThePrefix() throws {
    let range = AccessPolicy.registrationKeys
    let start = String(decoding: range.key, as: UTF8.self)
    let end = String(decoding: range.rangeEnd, as: UTF8.self)
    for key in ["/services/backend/a", "/services/-x/1", "/services/.a/b", "/services/_/z", "/services/Z/9"] {
      #expect(key >= start && key < end, "\(key)")
    }
    #expect("/services/" < start, "a delete of the whole prefix must fall outside the registrar's range")
    // Routes, service settings and overrides are out of the registrar's reach.
    for prefix in AccessPolicy.operatorPrefixes { #expect(!(prefix >= start && prefix < end), "\(prefix)") }
    let roles = Dictionary(uniqueKeysWithValues: AccessPolicy.roles.map { ($0.name, $0.permissions) })
    let controller = try #require(roles[AccessPolicy.controllerRole])
    #expect(controller.count == 7 && controller.allSatisfy { $0.kind == .read })
    // Controllers read the certificates (keys sealed) and the ACME challenges' answers; operators write
    // certificates.
    for prefix in ["/switchyard/certs/", "/switchyard/acme/challenges/"] {
      #expect(controller.contains(Permission(.read, .prefix(prefix))), "\(prefix)")
    }
    // Each LB node's own role: exactly its record, read and write.
    let node = AccessPolicy.nodeRole(of: "lb1")
    #expect(node.name == "node-lb1")
    #expect(node.permissions == [Permission(.readWrite, .key("/switchyard/nodes/lb1"))])
    let operatorRole = try #require(roles[AccessPolicy.operatorRole])
    #expect(operatorRole.filter { $0.kind == .readWrite }.count == AccessPolicy.operatorPrefixes.count)
    #expect(operatorRole.contains(Permission(.readWrite, .prefix("/switchyard/certs/"))))
    #expect(AccessPolicy.role(of: .web) == AccessPolicy.registrarRole)
  }
}
