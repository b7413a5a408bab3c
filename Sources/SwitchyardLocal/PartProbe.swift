import EtcdClient
import Foundation
import Logging
import SwitchyardAgent
import SwitchyardHTTP
import SwitchyardModel

/// Asks the parts of a local cluster how they are: whether one is healthy, what an LB node's controller
/// reports, and which backends answer through an LB node.
struct PartProbe: Sendable {
  /// The state directory of the cluster (for the certificates of a secure one).
  let home: String

  /// The CA that checks the `https://` admin endpoints of a secure cluster's LB nodes: the local CA.
  var adminCACertificate: String { LocalSecurity(home: home).caCertificate }

  /// `GET url`, checking an `https://` server's certificate against the local CA.
  func get(_ url: String, headers: [(name: String, value: String)] = []) async throws -> (status: Int, body: String) {
    try await HTTPCheck.get(
      url, headers: headers, caCertificate: url.hasPrefix("https://") ? adminCACertificate : nil)
  }

  /// Whether the part answers its health URL with 200 (a TLS-only etcd member: its status, see below; an LB
  /// node of a secure cluster: over https, checked against the local CA).
  func isHealthy(_ spec: PartSpec) async -> Bool {
    if spec.kind == .etcd, spec.healthURL.hasPrefix("https:") { return await isSecureMemberHealthy(spec) }
    guard let (status, _) = try? await get(spec.healthURL) else { return false }
    return status == 200
  }

  /// A member that serves TLS only is asked for its status (which etcd answers without authentication),
  /// over TLS with the status user's certificate: healthy when it knows a leader and reports no error.
  private func isSecureMemberHealthy(_ spec: PartSpec) async -> Bool {
    let security = LocalSecurity(home: home)
    guard
      var configuration = try? security.configuration(
        for: AccessPolicy.statusUser, endpoints: "https://\(spec.address)", withPassword: false)
    else { return false }
    configuration.dialTimeout = .seconds(1)
    configuration.requestTimeout = .seconds(2)
    var logger = Logger(label: "switchyard.health")
    logger.logLevel = .critical
    let status = try? await withEtcdClient(configuration: configuration, logger: logger) { try await $0.status() }
    return status.map { $0.leader != 0 && $0.errors.isEmpty } ?? false
  }

  /// An LB node's `/state`, when its controller answers (over https, checked against the local CA, in a
  /// secure cluster).
  func controllerSnapshot(_ spec: PartSpec) async -> NodeSnapshot? {
    guard let admin = spec.adminURL, let (status, body) = try? await get("\(admin)/state"), status == 200
    else { return nil }
    return try? JSONDecoder().decode(NodeSnapshot.self, from: Data(body.utf8))
  }

  /// Which backends answer through an LB node (`Hello from <name>`) when asked for `path`, with `host` as the
  /// `Host` header when given; `503` answers count as none.
  func backendsSeen(through node: PartSpec, path: String = "/", host: String? = nil, tries: Int) async -> Set<String> {
    var seen: Set<String> = []
    let headers = host.map { [(name: "Host", value: $0)] } ?? []
    for _ in 0..<tries {
      guard let (status, body) = try? await get(node.address + path, headers: headers), status == 200 else {
        continue
      }
      seen.insert(
        body.replacingOccurrences(of: "Hello from ", with: "").trimmingCharacters(in: .whitespacesAndNewlines))
    }
    return seen
  }
}
