/// What a load-balancer node's controller shows at `/state`: readiness, HAProxy, etcd, and the services
/// and servers HAProxy runs.
///
/// The controller publishes it and `switchyard status` reads it; it lives here so that the local cluster
/// can decode it without depending on the controller. The property names are the JSON keys: renaming one
/// changes `/state`.
public struct NodeSnapshot: Sendable, Codable {
  /// One server as HAProxy runs it.
  public struct Server: Sendable, Hashable, Codable {
    /// Server name (instance id).
    public var name: String
    /// Address and port, as HAProxy has them.
    public var address: String
    /// Weight.
    public var weight: Int
    /// `ready`, `drain` or `maint`.
    public var adminState: String
    /// Whether its health check passes (`up`) or not (`down`).
    public var health: String
    /// Whether the server is still registered; `false` while a removed server drains.
    public var registered: Bool

    /// Creates a server entry.
    public init(name: String, address: String, weight: Int, adminState: String, health: String, registered: Bool) {
      self.name = name
      self.address = address
      self.weight = weight
      self.adminState = adminState
      self.health = health
      self.registered = registered
    }
  }

  /// One service and its servers.
  public struct Service: Sendable, Hashable, Codable {
    /// The service name.
    public var name: String
    /// The HAProxy backend.
    public var backend: String
    /// The health-check path of the backend.
    public var checkPath: String
    /// Servers, by name.
    public var servers: [Server]
    /// `http` or `tcp`; `nil` from a controller that predates service settings.
    public var mode: String?
    /// The port of a `tcp` service.
    public var port: Int?
    /// The algorithm the backend runs (`roundrobin`, `leastconn`, `random`, `source`).
    public var balance: String?
    /// Whether the service has no instance left and its backend stays only until the next reload.
    public var lingering: Bool?

    /// Creates a service entry.
    public init(
      name: String, backend: String, checkPath: String, servers: [Server], mode: String? = nil, port: Int? = nil,
      balance: String? = nil, lingering: Bool? = nil
    ) {
      self.name = name
      self.backend = backend
      self.checkPath = checkPath
      self.servers = servers
      self.mode = mode
      self.port = port
      self.balance = balance
      self.lingering = lingering
    }
  }

  /// One route in etcd, as the node uses it.
  public struct Route: Sendable, Hashable, Codable {
    /// Its name.
    public var name: String
    /// The service it sends requests to.
    public var service: String
    /// The hosts it matches; empty for any.
    public var hosts: [String]
    /// The path prefix it matches.
    public var pathPrefix: String
    /// Whether the prefix is removed before the request goes on.
    public var stripPrefix: Bool
    /// Where its requests go on this node: the service's backend, `unavailable` (503: no instance, or
    /// not served here), `rejected` (a tcp service) or `shadowed` (another route holds every host and
    /// prefix it claims).
    public var target: String

    /// Creates a route entry.
    public init(name: String, service: String, hosts: [String], pathPrefix: String, stripPrefix: Bool, target: String) {
      self.name = name
      self.service = service
      self.hosts = hosts
      self.pathPrefix = pathPrefix
      self.stripPrefix = stripPrefix
      self.target = target
    }
  }

  /// An entry skipped as invalid.
  public struct InvalidEntry: Sendable, Hashable, Codable {
    /// The key (escaped).
    public var key: String
    /// Why it was skipped.
    public var reason: String

    /// Creates an entry.
    public init(key: String, reason: String) {
      self.key = key
      self.reason = reason
    }
  }

  /// An operator's override of one instance, from `/switchyard/overrides/<service>/<id>`.
  public struct Override: Sendable, Hashable, Codable {
    /// The service.
    public var service: String
    /// The instance id.
    public var instance: String
    /// `drain` or `maint`.
    public var state: String
    /// Why, in the operator's words.
    public var reason: String?

    /// Creates an entry.
    public init(service: String, instance: String, state: String, reason: String?) {
      self.service = service
      self.instance = instance
      self.state = state
      self.reason = reason
    }
  }

  /// The node id.
  public var node: String
  /// Whether the node is ready, and if not, why.
  public var ready: Bool
  /// Why the node is not ready; empty when it is.
  public var notReadyReasons: [String]
  /// The etcd revision HAProxy was last brought in step with (0 before the first pass).
  public var appliedRevision: Int64
  /// HAProxy's master process.
  public var haproxyPID: Int32?
  /// Whether HAProxy runs.
  public var haproxyRunning: Bool
  /// Whether the controller adopted an HAProxy it found running.
  public var haproxyAdopted: Bool
  /// The HAProxy release that runs (`3.0.11-1+deb13u4`); before it runs, the executable's; `nil` from a
  /// controller that predates it.
  public var haproxyVersion: String?
  /// Whether the last etcd request succeeded.
  public var etcdConnected: Bool
  /// Seconds since the watch last gave word.
  public var watchSilentSeconds: Double?
  /// The etcd member the watch stream is open on (`host:port`), when one is open.
  public var etcdWatchEndpoint: String?
  /// Reloads since the controller started.
  public var reloads: Int
  /// Why HAProxy was last reloaded; `nil` before the first reload, and from a controller that predates it.
  public var lastReloadReason: String?
  /// When HAProxy was last reloaded, in milliseconds since 1970; `nil` as ``lastReloadReason``.
  public var lastReloadAt: Int64?
  /// HAProxy restarts since the controller started.
  public var haproxyRestarts: Int
  /// The last error, if the last pass failed.
  public var lastError: String?
  /// Services and their servers.
  public var services: [Service]
  /// Entries skipped in the last read (the first 100).
  public var invalidEntries: [InvalidEntry]
  /// How many entries were skipped in all; `nil` from a controller that listed every one.
  public var invalidEntryCount: Int?
  /// Operators' overrides in force; `nil` from a controller that predates them.
  public var overrides: [Override]?
  /// The routes in etcd (the first 1,000 by name); `nil` from a controller that predates routes.
  public var routes: [Route]?
  /// How many valid routes there are in all.
  public var routeCount: Int?
  /// Route conflicts, routes this node cannot use, and tcp ports taken twice, in words.
  public var routeProblems: [String]?
  /// The certificates this node serves over HTTPS (from `/switchyard/certs/`), with problems; `nil` on a
  /// node without an HTTPS listener, and from a controller that predates them.
  public var certificates: [Certificate]? = nil
  /// What this node's ACME coordinator does; `nil` when ACME is off, and from a controller that predates it.
  public var acme: ACME? = nil

  /// Creates a snapshot.
  public init(
    node: String,
    ready: Bool,
    notReadyReasons: [String],
    appliedRevision: Int64,
    haproxyPID: Int32?,
    haproxyRunning: Bool,
    haproxyAdopted: Bool,
    haproxyVersion: String? = nil,
    etcdConnected: Bool,
    watchSilentSeconds: Double?,
    etcdWatchEndpoint: String?,
    reloads: Int,
    haproxyRestarts: Int,
    lastError: String?,
    services: [Service],
    invalidEntries: [InvalidEntry],
    invalidEntryCount: Int? = nil,
    overrides: [Override]? = nil,
    routes: [Route]? = nil,
    routeCount: Int? = nil,
    routeProblems: [String]? = nil,
    lastReloadReason: String? = nil,
    lastReloadAt: Int64? = nil,
    certificates: [Certificate]? = nil,
    acme: ACME? = nil
  ) {
    self.node = node
    self.ready = ready
    self.notReadyReasons = notReadyReasons
    self.appliedRevision = appliedRevision
    self.haproxyPID = haproxyPID
    self.haproxyRunning = haproxyRunning
    self.haproxyAdopted = haproxyAdopted
    self.haproxyVersion = haproxyVersion
    self.etcdConnected = etcdConnected
    self.watchSilentSeconds = watchSilentSeconds
    self.etcdWatchEndpoint = etcdWatchEndpoint
    self.reloads = reloads
    self.haproxyRestarts = haproxyRestarts
    self.lastError = lastError
    self.services = services
    self.invalidEntries = invalidEntries
    self.invalidEntryCount = invalidEntryCount
    self.overrides = overrides
    self.routes = routes
    self.routeCount = routeCount
    self.routeProblems = routeProblems
    self.lastReloadReason = lastReloadReason
    self.lastReloadAt = lastReloadAt
    self.certificates = certificates
    self.acme = acme
  }
}
