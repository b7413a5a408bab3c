/// What kind of process a part of the local cluster is.
public enum PartKind: String, Sendable, Codable, Hashable, CaseIterable {
  /// An etcd member.
  case etcd
  /// A load-balancer node: `switchyard controller` and the HAProxy it runs.
  case lb
  /// A sample backend: `switchyard backend`, service `backend`, which `switchyard scale` scales and requests
  /// that match no route reach.
  case backend
  /// An instance of the second sample service, `web` (`switchyard backend --service web`), reached through
  /// its routes (``ClusterLayout/webRoutes``).
  case web

  /// The order parts are listed and started in: etcd members, LB nodes, backends, then `web`.
  var rank: Int {
    switch self {
    case .etcd: 0
    case .lb: 1
    case .backend: 2
    case .web: 3
    }
  }
}

/// One process of the local cluster and how to start it.
public struct PartSpec: Sendable, Codable, Hashable {
  /// `etcd1`, `lb1`, `backend-1`, `web-1`.
  public var name: String
  /// What it is.
  public var kind: PartKind
  /// The executable (absolute path or a name looked up in `PATH`).
  public var executable: String
  /// Its arguments.
  public var arguments: [String]
  /// Ports it listens on, all on 127.0.0.1.
  public var ports: [Int]
  /// Where users reach it: `127.0.0.1:2379`, `http://127.0.0.1:8001`.
  public var address: String
  /// The URL that tells whether it is healthy (`/health` of etcd, `/readyz` of a controller, `/healthz` of a
  /// backend).
  public var healthURL: String
  /// The admin URL of a load-balancer node (`/state`, `/metrics`), if it is one.
  public var adminURL: String?

  /// The live dashboard of a load-balancer node (the whole cluster, at `/` of its admin address), if it is one.
  public var dashboardURL: String? { adminURL.map { $0 + "/" } }

  /// The HAProxy state directory of a load-balancer node (its controller's `--state-dir`), if it is one.
  public var haproxyStateDirectory: String? {
    guard kind == .lb, let flag = arguments.firstIndex(of: "--state-dir"), flag + 1 < arguments.count else {
      return nil
    }
    return arguments[flag + 1]
  }

  /// The access log of a load-balancer node (its controller's `--access-log` file), if it is one and has one.
  public var accessLogPath: String? {
    guard kind == .lb, let flag = arguments.firstIndex(of: "--access-log"), flag + 1 < arguments.count,
      arguments[flag + 1].hasPrefix("/")
    else { return nil }
    return arguments[flag + 1]
  }

  /// The number in its name: 1 for `etcd1`, `backend-1` and `web-1`.
  public var index: Int {
    Int(name.reversed().prefix { $0.isNumber }.reversed().map(String.init).joined()) ?? 0
  }
}

/// The fixed ports of a local cluster. Defaults follow the original demo: etcd1's client port is 2379, so
/// plain `etcdctl` works; the LB nodes serve on 8001, 8002, … with stats pages on 8401, 8402, ….
public struct ClusterPorts: Sendable, Codable, Hashable {
  /// Client ports of etcd1, etcd2, ….
  public var etcdClient: [Int]
  /// Peer ports of etcd1, etcd2, ….
  public var etcdPeer: [Int]
  /// Traffic ports of lb1, lb2, ….
  public var lb: [Int]
  /// Stats pages of lb1, lb2, ….
  public var stats: [Int]
  /// Admin ports (controller `/healthz`, `/readyz`, `/metrics`, `/state`) of lb1, lb2, ….
  public var admin: [Int]
  /// HTTPS ports of lb1, lb2, … when the LB nodes serve HTTPS (`up --https` or `--secure`); `nil` otherwise
  /// (and in state files from before HTTPS).
  public var https: [Int]?

  /// The most etcd members a local cluster has.
  public static let maxEtcdMembers = 5
  /// The most LB nodes a local cluster has.
  public static let maxLBNodes = 5

  /// Creates a set of ports; see ``problem(members:nodes:)`` for the checks.
  public init(etcdClient: [Int], etcdPeer: [Int], lb: [Int], stats: [Int], admin: [Int], https: [Int]? = nil) {
    self.etcdClient = etcdClient
    self.etcdPeer = etcdPeer
    self.lb = lb
    self.stats = stats
    self.admin = admin
    self.https = https
  }

  /// The default HTTPS ports of `nodes` LB nodes: 8443, 8444, ….
  public static func defaultHTTPSPorts(nodes: Int) -> [Int] { (0..<nodes).map { 8443 + $0 } }

  /// The default ports for `members` etcd members and `nodes` LB nodes: etcd client ports 2379, 22379,
  /// 32379, …, peer ports one above each; LB nodes 8001+, stats 8401+, admin 9101+.
  public static func defaults(members: Int, nodes: Int) -> ClusterPorts {
    let client = (0..<members).map { $0 == 0 ? 2379 : $0 * 10_000 + 12_379 }
    return ClusterPorts(
      etcdClient: client,
      etcdPeer: client.map { $0 + 1 },
      lb: (0..<nodes).map { 8001 + $0 },
      stats: (0..<nodes).map { 8401 + $0 },
      admin: (0..<nodes).map { 9101 + $0 }
    )
  }

  /// Every fixed port.
  public var all: [Int] { etcdClient + etcdPeer + lb + stats + admin + (https ?? []) }

  /// Why these ports cannot serve `members` members and `nodes` nodes, or `nil`.
  public func problem(members: Int, nodes: Int) -> String? {
    if etcdClient.count != members || etcdPeer.count != members {
      return "\(members) etcd members need \(members) client and \(members) peer ports"
    }
    if lb.count != nodes || stats.count != nodes || admin.count != nodes {
      return "\(nodes) LB nodes need \(nodes) traffic, stats and admin ports each"
    }
    if let https, https.count != nodes { return "\(nodes) LB nodes need \(nodes) HTTPS ports" }
    if let bad = all.first(where: { !(1...65535).contains($0) }) { return "port \(bad) is outside 1–65535" }
    if Set(all).count != all.count { return "a port is listed twice" }
    return nil
  }
}

/// The parts of a local cluster: pure, so the layout can be checked without starting anything.
public struct ClusterLayout: Sendable {
  /// The state directory.
  public var home: String
  /// The `switchyard` executable that LB nodes and backends run.
  public var switchyard: String
  /// The etcd executable.
  public var etcd: String
  /// The fixed ports.
  public var ports: ClusterPorts
  /// Whether etcd runs with TLS (client certificates required) and authentication, each part its own user.
  public var secure: Bool
  /// Whether the LB nodes serve HTTPS (``servesHTTPS``: also when `secure`).
  public var https: Bool

  /// Creates a layout.
  public init(
    home: String, switchyard: String, etcd: String = "etcd", ports: ClusterPorts, secure: Bool = false,
    https: Bool = false
  ) {
    self.home = home
    self.switchyard = switchyard
    self.etcd = etcd
    self.ports = ports
    self.secure = secure
    self.https = https
  }

  private var scheme: String { secure ? "https" : "http" }

  /// The certificates and credentials of a secure layout.
  public var security: LocalSecurity { LocalSecurity(home: home) }

  /// `127.0.0.1:2379,127.0.0.1:22379,…` (with `https://` when secure): what LB nodes and backends are given.
  public var etcdEndpoints: String {
    ports.etcdClient.map { secure ? "https://127.0.0.1:\($0)" : "127.0.0.1:\($0)" }.joined(separator: ",")
  }

  /// The options that make a part's etcd client connect as its own user (none when not secure).
  private func credentials(_ user: String) -> [String] {
    secure ? security.clientArguments(for: user) : []
  }

  /// A secure layout's stats pages ask for a password.
  private var statsAuthentication: [String] {
    secure ? ["--stats-auth", "\(LocalSecurity.statsUser):\(security.statsPasswordFile)"] : []
  }

  /// A secure layout's dashboards ask for a login. The other nodes' admin certificates, if any, are checked
  /// against the local CA: `--cacert`'s default for `--admin-cacert`.
  private var dashboardAuthentication: [String] {
    secure ? ["--dashboard-auth", "\(LocalSecurity.dashboardUser):\(security.dashboardPasswordFile)"] : []
  }

  /// The etcd user of each part that has one, with its role (secure layouts).
  public static func etcdUser(of spec: PartSpec) -> (name: String, role: String)? {
    AccessPolicy.role(of: spec.kind).map { (spec.name, $0) }
  }

  /// The etcd members.
  public func etcdMembers() -> [PartSpec] {
    let cluster = ports.etcdPeer.enumerated().map { "etcd\($0.offset + 1)=\(scheme)://127.0.0.1:\($0.element)" }
      .joined(separator: ",")
    let member = security.memberPair
    let tls =
      secure
      ? [
        "--cert-file", member.certificate, "--key-file", member.key,
        "--trusted-ca-file", security.caCertificate, "--client-cert-auth",
        "--peer-cert-file", member.certificate, "--peer-key-file", member.key,
        "--peer-trusted-ca-file", security.caCertificate, "--peer-client-cert-auth",
      ] : []
    return ports.etcdClient.indices.map { index in
      let name = "etcd\(index + 1)"
      let client = "\(scheme)://127.0.0.1:\(ports.etcdClient[index])"
      let peer = "\(scheme)://127.0.0.1:\(ports.etcdPeer[index])"
      return PartSpec(
        name: name,
        kind: .etcd,
        executable: etcd,
        arguments: [
          "--name", name,
          "--data-dir", "\(home)/\(name)",
          "--listen-client-urls", client,
          "--advertise-client-urls", client,
          "--listen-peer-urls", peer,
          "--initial-advertise-peer-urls", peer,
          "--initial-cluster", cluster,
          "--initial-cluster-state", "new",
          "--initial-cluster-token", "switchyard-local",
          // 3.5's default, off in 3.4: without it a member back from a partition forces an election and
          // nobody can read etcd for seconds.
          "--pre-vote=true",
        ] + tls,
        ports: [ports.etcdClient[index], ports.etcdPeer[index]],
        address: "127.0.0.1:\(ports.etcdClient[index])",
        healthURL: "\(client)/health"
      )
    }
  }

  /// A secure layout's admin endpoints serve HTTPS only, with the node's admin certificate from the local
  /// CA. `--admin-cacert` (for the other nodes' admin endpoints) defaults to `--cacert`, the local CA.
  private func adminTLS(_ node: String) -> [String] {
    guard secure else { return [] }
    let pair = security.adminPair(for: node)
    return ["--admin-tls-cert", pair.certificate, "--admin-tls-key", pair.key]
  }

  /// The CA file that checks the LB nodes' admin endpoints: the local CA in a secure layout, `nil` (plain
  /// HTTP) otherwise.
  public var adminCACertificate: String? { secure ? security.caCertificate : nil }

  /// The LB nodes. A secure layout's admin URLs (health, `/state`, the dashboard) are `https://`.
  public func lbNodes() -> [PartSpec] {
    ports.lb.indices.map { index in
      let name = "lb\(index + 1)"
      let admin = "\(scheme)://127.0.0.1:\(ports.admin[index])"
      return PartSpec(
        name: name,
        kind: .lb,
        executable: switchyard,
        arguments: [
          "controller",
          "--node-id", name,
          "--etcd-endpoints", etcdEndpoints,
          "--listen", "127.0.0.1:\(ports.lb[index])",
          "--stats", "127.0.0.1:\(ports.stats[index])",
          "--admin", "127.0.0.1:\(ports.admin[index])",
          "--state-dir", "\(home)/\(name)",
          "--access-log", "\(home)/\(name)/access.log",
        ] + credentials(name) + statsAuthentication + dashboardAuthentication + adminTLS(name)
          + httpsArguments(index),
        ports: [ports.lb[index], ports.stats[index], ports.admin[index]] + httpsPorts.dropFirst(index).prefix(1),
        address: "http://127.0.0.1:\(ports.lb[index])",
        healthURL: "\(admin)/readyz",
        adminURL: admin
      )
    }
  }

  /// Backend number `index` on `port`.
  public func backend(_ index: Int, port: Int) -> PartSpec {
    sampleService(.backend, index: index, port: port)
  }

  /// Instance number `index` of the second sample service, `web`, on `port`.
  public func web(_ index: Int, port: Int) -> PartSpec {
    sampleService(.web, index: index, port: port, service: Self.webService)
  }

  /// `switchyard backend` as part `<kind>-<index>` (its instance id too), registered under `service` (the
  /// backend's default, `backend`, when `nil`).
  private func sampleService(_ kind: PartKind, index: Int, port: Int, service: String? = nil) -> PartSpec {
    let name = "\(kind.rawValue)-\(index)"
    return PartSpec(
      name: name,
      kind: kind,
      executable: switchyard,
      arguments: ["backend"] + (service.map { ["--service", $0] } ?? []) + [
        "--etcd-endpoints", etcdEndpoints,
        "--listen", "127.0.0.1:\(port)",
        "--id", name,
      ] + credentials(name),
      ports: [port],
      address: "http://127.0.0.1:\(port)",
      healthURL: "http://127.0.0.1:\(port)/healthz"
    )
  }
}
