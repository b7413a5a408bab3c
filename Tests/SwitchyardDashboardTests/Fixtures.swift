import SwitchyardDashboard
import SwitchyardModel

/// Node records, feeds and snapshots for the merge's tests.
enum Fixture {
  static func entry(_ id: String, port: Int, key: String? = nil) -> ClusterMemory.Entry {
    let value =
      #"{"admin_url":"http://127.0.0.1:\#(port)","applied_revision":0,"listen":"127.0.0.1:8001","#
      + #""started":1796000000,"stats":"127.0.0.1:8401","switchyard_version":"0.26.0"}"#
    return ClusterMemory.Entry(key: Array((key ?? "/switchyard/nodes/\(id)").utf8), value: Array(value.utf8))
  }

  static func listing(_ entries: ClusterMemory.Entry..., revision: Int64 = 100) -> ClusterMemory.Listing {
    .read(revision: revision, entries: entries)
  }

  static func server(
    _ name: String, admin: String = "ready", health: String = "up", weight: Int = 100, registered: Bool = true
  ) -> NodeSnapshot.Server {
    NodeSnapshot.Server(
      name: name, address: "127.0.0.1:\(9000 + name.count)", weight: weight, adminState: admin, health: health,
      registered: registered)
  }

  static func snapshot(
    _ node: String, applied: Int64 = 10, ready: Bool = true, services: [NodeSnapshot.Service] = [],
    invalid: [NodeSnapshot.InvalidEntry] = [], routes: [NodeSnapshot.Route]? = nil, routeProblems: [String]? = nil
  ) -> NodeSnapshot {
    NodeSnapshot(
      node: node, ready: ready, notReadyReasons: ready ? [] : ["HAProxy is not running"], appliedRevision: applied,
      haproxyPID: 1, haproxyRunning: ready, haproxyAdopted: false, haproxyVersion: "2.6.12", etcdConnected: true,
      watchSilentSeconds: 0.1, etcdWatchEndpoint: "127.0.0.1:2379", reloads: 1, haproxyRestarts: 0,
      lastError: nil, services: services, invalidEntries: invalid, invalidEntryCount: invalid.count,
      routes: routes, routeProblems: routeProblems, lastReloadReason: "backend svc_web is new",
      lastReloadAt: 1_700_000_000_000)
  }

  static func service(_ name: String, _ servers: [NodeSnapshot.Server]) -> NodeSnapshot.Service {
    NodeSnapshot.Service(
      name: name, backend: "svc_\(name)", checkPath: "/healthz", servers: servers, mode: "http",
      balance: "roundrobin")
  }

  static func traffic(_ services: [NodeTraffic.Service], at time: Int64 = 0) -> NodeTraffic {
    NodeTraffic(sampledAt: time, services: services)
  }

  static func trafficService(_ name: String, rate: Double, servers: [NodeTraffic.Server]) -> NodeTraffic.Service {
    NodeTraffic.Service(
      name: name, sessions: servers.reduce(0) { $0 + $1.sessions }, rate: rate, requests: 1_000, errors5xx: 1,
      servers: servers)
  }

  static func trafficServer(_ name: String, status: String = "UP", rate: Double = 1.5) -> NodeTraffic.Server {
    NodeTraffic.Server(
      name: name, sessions: 2, rate: rate, requests: 500, errors5xx: 0, status: status, check: "L7OK/200",
      weight: 100)
  }
}
