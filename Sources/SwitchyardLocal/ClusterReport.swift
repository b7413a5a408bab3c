import EtcdClient
import Logging
import SwitchyardModel

/// What `switchyard status` shows.
public struct ClusterReport: Sendable, Codable {
  /// One part.
  public struct Part: Sendable, Codable {
    /// `etcd1`, `lb1`, `backend-1`, `web-1`.
    public var name: String
    /// `etcd`, `lb`, `backend` or `web`.
    public var kind: String
    /// Its PID while it runs.
    public var pid: Int32?
    /// Where it is reached: an LB node that serves HTTPS lists both addresses
    /// (`http://127.0.0.1:8001 https://127.0.0.1:8443`).
    public var address: String
    /// `healthy`, `unhealthy` or `stopped`.
    public var health: String
  }

  /// One LB node as its controller reports it.
  public struct Node: Sendable, Codable {
    /// `lb1`.
    public var name: String
    /// The controller's `/state`.
    public var state: NodeSnapshot
  }

  /// One registration in etcd.
  public struct Registration: Sendable, Codable {
    /// The key.
    public var key: String
    /// The value, as stored.
    public var value: String
  }

  /// The state directory; `nil` for a report read from etcd alone (no local cluster).
  public var home: String?
  /// Every part.
  public var parts: [Part]
  /// Every running LB node.
  public var nodes: [Node]
  /// The registrations under `/services/`.
  public var registrations: [Registration]
  /// In a secure cluster (`up --secure`): when its certificates expire, and which need renewing.
  public var certificates: String?
  /// etcd's revision when the registrations were read; `nil` when etcd did not answer.
  public var etcdRevision: Int64?
  /// Every load-balancer node that announces itself in etcd; `nil` when etcd did not answer or could not be
  /// read (``announcedNodesError``).
  public var announcedNodes: [AnnouncedNode]?
  /// Why the announced nodes could not be read.
  public var announcedNodesError: String?
  /// The newest modification revision under the keyspaces nodes serve from (registrations, routes, service
  /// settings, overrides): what ``AnnouncedNode/behind`` counts from.
  public var newestChange: Int64?
}

extension ClusterReport {
  /// Asks each part of `state` how it is, each running LB node's controller for its `/state`, and etcd for
  /// the registrations; what does not answer is reported as such, not thrown.
  static func read(_ state: ClusterState, home: String, probe: PartProbe) async throws -> ClusterReport {
    var report = ClusterReport(home: home, parts: [], nodes: [], registrations: [], etcdRevision: nil)
    for record in state.parts {
      let running = record.isRunning
      let healthy = running ? await probe.isHealthy(record.spec) : false
      var health = running ? (healthy ? "healthy" : "unhealthy") : "stopped"
      // A node whose controller is gone may still serve: its HAProxy keeps the last state it was given.
      if record.spec.kind == .lb, !running, let haproxy = OrphanedHAProxies.runningPID(of: record.spec) {
        health = "controller stopped; HAProxy \(haproxy) serves its last state"
      }
      report.parts.append(
        .init(
          name: record.spec.name,
          kind: record.spec.kind.rawValue,
          pid: running ? record.pid : nil,
          address: ([record.spec.address] + [record.spec.httpsAddress].compactMap { $0 }).joined(separator: " "),
          health: health
        )
      )
      if record.spec.kind == .lb, running, let snapshot = await probe.controllerSnapshot(record.spec) {
        report.nodes.append(.init(name: record.spec.name, state: snapshot))
      }
    }
    let layout = state.layout(home: home)
    if layout.secure {
      report.certificates = (try? layout.security.certificateSummary()) ?? "cannot read \(layout.security.pkiDirectory)"
    }
    var configuration =
      layout.secure
      ? try layout.security.configuration(for: AccessPolicy.statusUser, endpoints: layout.etcdEndpoints)
      : try EtcdConfiguration(endpoints: layout.etcdEndpoints)
    configuration.dialTimeout = .seconds(1)
    configuration.requestTimeout = .seconds(3)
    var logger = Logger(label: "switchyard.status")
    logger.logLevel = .critical
    let base = report
    let adminCACertificate = layout.adminCACertificate
    if let read = try? await withEtcdClient(
      configuration: configuration, logger: logger,
      { etcd in
        var report = base
        let read = try await etcd.get(.prefix("/services/"))
        report.include(registrations: read)
        try await report.includeAnnouncedNodes(
          etcd, registrations: read, tolerant: true, adminCACertificate: adminCACertificate)
        return report
      })
    {
      report = read
    }
    return report
  }
}
