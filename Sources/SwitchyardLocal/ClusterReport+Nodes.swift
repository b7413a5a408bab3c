import EtcdClient
import Foundation
import Logging
import SwitchyardHTTP
import SwitchyardModel

extension ClusterReport {
  /// One load-balancer node as it announces itself in etcd (`/switchyard/nodes/<node-id>`), and what its
  /// admin endpoint said when asked. Every text that came from etcd or from the node is escaped.
  public struct AnnouncedNode: Sendable, Codable, Hashable {
    /// The node id, from the key.
    public var id: String
    /// The key.
    public var key: String
    /// Why the record is not valid (``NodeRecord/parse(key:value:)``'s error); `nil` for a valid one, whose
    /// fields follow.
    public var invalid: String?
    /// Where HAProxy accepts client traffic.
    public var listen: String?
    /// Where HAProxy serves its stats page.
    public var stats: String?
    /// The controller's admin URL.
    public var adminURL: String?
    /// The Switchyard version the controller runs.
    public var switchyardVersion: String?
    /// The HAProxy version, once the node knew it.
    public var haproxyVersion: String?
    /// The applied revision the record says (written at most every 5 s, when it moved).
    public var appliedRevision: Int64?
    /// When the controller started, in seconds since 1970.
    public var started: Int64?
    /// The lease the record is held by.
    public var lease: Int64
    /// `ready`, `not ready`, `not answering`, or `not asked` (an invalid record, or an `https://` admin URL
    /// when status has no CA to check it with; a local secure cluster's status checks with the local CA).
    public var answer: String
    /// Why it is not ready, or what went wrong asking it.
    public var detail: String?
    /// The revision the node's `/state` says it has applied, when it answered.
    public var liveAppliedRevision: Int64?
    /// How many revisions the newest change to what nodes serve is ahead of the node's applied revision (its
    /// live one when it answered, else its record's); 0 when it has applied everything.
    public var behind: Int64?
    /// The certificates the node refuses or does not serve yet, each as `certificate <name>: <state>:
    /// <problem>` (escaped); `nil` when it did not answer or predates certificates.
    public var certificateProblems: [String]?
    /// Whether the node leads the cluster's ACME orders, when ACME is on there.
    public var acmeLeader: Bool?
  }

  /// The announced nodes, etcd's revision, and the newest change to what nodes serve, read at one revision.
  struct AnnouncedNodes: Sendable {
    var nodes: [AnnouncedNode]
    var revision: Int64
    var newestChange: Int64
  }

  /// How long a node's admin endpoint has to answer `/state`.
  static let nodeAnswerTimeout: Duration = .seconds(1)

  /// Reads `/switchyard/nodes/` and the newest modification revision under every keyspace nodes serve from
  /// (registrations, routes, service settings, overrides), all at one revision, then asks each valid node's
  /// admin endpoint for `/state`, all at once, with a short timeout. `registrations`, when given, is the read
  /// of `/services/` already made, at the revision to read the rest at. `https://` admin URLs are asked
  /// only with `adminCACertificate`, the CA their certificates must chain to.
  static func readAnnouncedNodes(
    _ etcd: EtcdClient, registrations: RangeResult? = nil, adminCACertificate: String? = nil
  ) async throws -> AnnouncedNodes {
    let revision: Int64
    var newest: Int64
    if let registrations {
      revision = registrations.header.revision
      newest = registrations.kvs.map(\.modRevision).max() ?? 0
    } else {
      let latest = try await etcd.get(
        .prefix(RegistrationKey.root),
        options: GetOptions(limit: 1, keysOnly: true, sortOrder: .descending, sortTarget: .modRevision))
      revision = latest.header.revision
      newest = latest.kvs.first?.modRevision ?? 0
    }
    for prefix in [InstanceOverride.root, Route.root, ServiceSettings.root] {
      let latest = try await etcd.get(
        .prefix(prefix),
        options: GetOptions(
          limit: 1, revision: revision, keysOnly: true, sortOrder: .descending, sortTarget: .modRevision))
      newest = max(newest, latest.kvs.first?.modRevision ?? 0)
    }
    let records = try await etcd.get(.prefix(NodeRecord.root), options: GetOptions(revision: revision)).kvs
    let newestChange = newest
    let nodes = await withTaskGroup(of: (Int, AnnouncedNode).self) { group in
      for (index, kv) in records.enumerated() {
        group.addTask {
          (index, await announcedNode(kv, newestChange: newestChange, adminCACertificate: adminCACertificate))
        }
      }
      var nodes: [(Int, AnnouncedNode)] = []
      for await node in group { nodes.append(node) }
      return nodes.sorted { $0.0 < $1.0 }.map(\.1)
    }
    return AnnouncedNodes(nodes: nodes, revision: revision, newestChange: newestChange)
  }

  /// One record: parsed, and, when valid, its node asked for `/state`.
  private static func announcedNode(
    _ kv: KeyValue, newestChange: Int64, adminCACertificate: String?
  ) async -> AnnouncedNode {
    let keyText = String(decoding: kv.key, as: UTF8.self)
    var node = AnnouncedNode(
      id: RegistrationError.escape(keyText.dropFirst(NodeRecord.root.count), limit: 100),
      key: RegistrationError.escape(keyText, limit: 200), lease: kv.lease, answer: "not asked")
    let record: NodeRecord
    do {
      record = try NodeRecord.parse(key: kv.key, value: kv.value)
    } catch {
      node.invalid = error.description
      return node
    }
    node.listen = record.listen.description
    node.stats = record.stats.description
    node.adminURL = record.adminURL
    node.switchyardVersion = record.switchyardVersion
    node.haproxyVersion = record.haproxyVersion
    node.appliedRevision = record.appliedRevision
    node.started = record.started
    var applied = record.appliedRevision
    if record.adminURL.hasPrefix("https://"), adminCACertificate == nil {
      node.detail = "https: status has no CA to check this admin URL with"
    } else {
      do {
        let (code, body) = try await HTTPCheck.get(
          "\(record.adminURL)/state", timeout: nodeAnswerTimeout, caCertificate: adminCACertificate)
        guard code == 200 else {
          throw AnswerProblem(description: "/state answered HTTP \(code)")
        }
        let state = try JSONDecoder().decode(NodeSnapshot.self, from: Data(body.utf8))
        node.answer = state.ready ? "ready" : "not ready"
        if !state.ready {
          node.detail = RegistrationError.escape(state.notReadyReasons.joined(separator: "; "), limit: 300)
        }
        node.liveAppliedRevision = state.appliedRevision
        node.certificateProblems = state.certificates?.compactMap { certificate in
          guard certificate.state == "invalid" || certificate.state == "pending" else { return nil }
          return RegistrationError.escape(
            "certificate \(certificate.name): \(certificate.state): \(certificate.problem ?? "-")", limit: 300)
        }
        node.acmeLeader = state.acme?.isLeader
        applied = max(applied, state.appliedRevision)
      } catch {
        node.answer = "not answering"
        node.detail = RegistrationError.escape("\(error)", limit: 200)
      }
    }
    node.behind = max(0, newestChange - applied)
    return node
  }

  private struct AnswerProblem: Error, CustomStringConvertible {
    var description: String
  }

  /// What `switchyard status` shows where no local cluster runs, or with `--etcd-endpoints`: every node that
  /// announces itself in the etcd `configuration` reaches, and the registrations. etcd that cannot be read
  /// throws; a user that may read the registrations but not the nodes' records gets the registrations and
  /// ``announcedNodesError``. Nodes' `https://` admin URLs are asked with etcd's CA (`tls.caCertificatePath`),
  /// and not asked without one.
  public static func read(etcd configuration: EtcdConfiguration) async throws -> ClusterReport {
    var logger = Logger(label: "switchyard.status")
    logger.logLevel = .critical
    var report = ClusterReport(home: nil, parts: [], nodes: [], registrations: [], etcdRevision: nil)
    try await withEtcdClient(configuration: configuration, logger: logger) { etcd in
      let read = try await etcd.get(.prefix(RegistrationKey.root))
      report.include(registrations: read)
      // `https://` admin URLs are checked against etcd's CA, as a controller's `--admin-cacert` defaults to
      // its `--cacert`.
      try await report.includeAnnouncedNodes(
        etcd, registrations: read, tolerant: true, adminCACertificate: configuration.tls?.caCertificatePath)
    }
    return report
  }

  /// Sets the registrations and etcd's revision from a read of `/services/`.
  mutating func include(registrations read: RangeResult) {
    etcdRevision = read.header.revision
    registrations = read.kvs.map {
      .init(key: String(decoding: $0.key, as: UTF8.self), value: String(decoding: $0.value, as: UTF8.self))
    }
  }

  /// Adds the announced nodes; with `tolerant`, a failure (a user without read permission on the nodes'
  /// keys, from a secure cluster made before nodes announced themselves) is noted rather than thrown.
  /// `adminCACertificate` checks `https://` admin URLs (see
  /// ``readAnnouncedNodes(_:registrations:adminCACertificate:)``).
  mutating func includeAnnouncedNodes(
    _ etcd: EtcdClient, registrations: RangeResult, tolerant: Bool = false, adminCACertificate: String? = nil
  ) async throws {
    do {
      let announced = try await Self.readAnnouncedNodes(
        etcd, registrations: registrations, adminCACertificate: adminCACertificate)
      announcedNodes = announced.nodes
      newestChange = announced.newestChange
    } catch {
      guard tolerant else { throw error }
      announcedNodesError = RegistrationError.escape("\(error)", limit: 300)
    }
  }
}
