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

    /// Creates a service entry.
    public init(name: String, backend: String, checkPath: String, servers: [Server]) {
      self.name = name
      self.backend = backend
      self.checkPath = checkPath
      self.servers = servers
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
  /// Whether the last etcd request succeeded.
  public var etcdConnected: Bool
  /// Seconds since the watch last gave word.
  public var watchSilentSeconds: Double?
  /// The etcd member the watch stream is open on (`host:port`), when one is open.
  public var etcdWatchEndpoint: String?
  /// Reloads since the controller started.
  public var reloads: Int
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

  /// Creates a snapshot.
  public init(
    node: String,
    ready: Bool,
    notReadyReasons: [String],
    appliedRevision: Int64,
    haproxyPID: Int32?,
    haproxyRunning: Bool,
    haproxyAdopted: Bool,
    etcdConnected: Bool,
    watchSilentSeconds: Double?,
    etcdWatchEndpoint: String?,
    reloads: Int,
    haproxyRestarts: Int,
    lastError: String?,
    services: [Service],
    invalidEntries: [InvalidEntry],
    invalidEntryCount: Int? = nil,
    overrides: [Override]? = nil
  ) {
    self.node = node
    self.ready = ready
    self.notReadyReasons = notReadyReasons
    self.appliedRevision = appliedRevision
    self.haproxyPID = haproxyPID
    self.haproxyRunning = haproxyRunning
    self.haproxyAdopted = haproxyAdopted
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
  }
}
