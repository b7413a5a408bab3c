import SwitchyardModel

/// One etcd revision a node's watch delivered, in the node's history of recent changes
/// (`GET /state/changes`): when the node saw it and when its HAProxy had it.
///
/// Times are the node's wall clock in milliseconds since 1970, so that the dashboard can put the nodes'
/// histories side by side (they agree as far as the nodes' clocks do).
public struct ChangeRecord: Sendable, Hashable, Codable {
  /// One key the revision changed.
  public struct Event: Sendable, Hashable, Codable {
    /// The key, escaped (``RegistrationError/escape(_:limit:)``): printable ASCII, at most 200 characters.
    public var key: String
    /// `put` or `delete`.
    public var kind: String

    /// Creates an event.
    public init(key: String, kind: String) {
      self.key = key
      self.kind = kind
    }
  }

  /// The etcd revision (one transaction).
  public var revision: Int64
  /// When the node's watch delivered it.
  public var seenAt: Int64
  /// When HAProxy had it (the end of the pass that applied it); `nil` while it is pending.
  public var appliedAt: Int64?
  /// The first ``ChangeHistory/maxEventsPerRevision`` keys it changed.
  public var events: [Event]
  /// How many keys it changed in all.
  public var eventCount: Int

  /// Creates a record.
  public init(revision: Int64, seenAt: Int64, appliedAt: Int64?, events: [Event], eventCount: Int) {
    self.revision = revision
    self.seenAt = seenAt
    self.appliedAt = appliedAt
    self.events = events
    self.eventCount = eventCount
  }
}

/// What one node's HAProxy reports about its traffic (`GET /traffic`), from `show stat`.
public struct NodeTraffic: Sendable, Hashable, Codable {
  /// One server of a backend.
  public struct Server: Sendable, Hashable, Codable {
    /// The server (instance id).
    public var name: String
    /// Current sessions (`scur`).
    public var sessions: Int
    /// Requests per second (HTTP requests, or sessions for a tcp service) over the last sample.
    public var rate: Double
    /// Requests since the HAProxy worker started.
    public var requests: Int
    /// Responses with a 5xx status since the worker started.
    public var errors5xx: Int
    /// HAProxy's status: `UP`, `DOWN`, `MAINT`, `DRAIN`, `no check`, `UP 1/2`, …
    public var status: String
    /// The last health check's result (`L7OK`, `L4CON`, `L7STS/503`, …), when checks run.
    public var check: String?
    /// The effective weight.
    public var weight: Int

    /// Creates a server entry.
    public init(
      name: String, sessions: Int, rate: Double, requests: Int, errors5xx: Int, status: String, check: String?,
      weight: Int
    ) {
      self.name = name
      self.sessions = sessions
      self.rate = rate
      self.requests = requests
      self.errors5xx = errors5xx
      self.status = status
      self.check = check
      self.weight = weight
    }
  }

  /// One service's backend and its servers.
  public struct Service: Sendable, Hashable, Codable {
    /// The service name.
    public var name: String
    /// Current sessions of the backend.
    public var sessions: Int
    /// Requests per second of the backend over the last sample.
    public var rate: Double
    /// Requests of the backend since the worker started.
    public var requests: Int
    /// 5xx responses of the backend since the worker started.
    public var errors5xx: Int
    /// Its servers, by name.
    public var servers: [Server]

    /// Creates a service entry.
    public init(name: String, sessions: Int, rate: Double, requests: Int, errors5xx: Int, servers: [Server]) {
      self.name = name
      self.sessions = sessions
      self.rate = rate
      self.requests = requests
      self.errors5xx = errors5xx
      self.servers = servers
    }
  }

  /// When HAProxy was asked, in milliseconds since 1970.
  public var sampledAt: Int64
  /// The services, by name.
  public var services: [Service]

  /// Creates a report.
  public init(sampledAt: Int64, services: [Service]) {
    self.sampledAt = sampledAt
    self.services = services
  }
}

/// Everything one node adds to the dashboard, in one compact document (`GET /state/dashboard`): its
/// `/state`, its recent changes and its traffic. What the controller that serves a dashboard asks every
/// other node for, once a second while someone watches.
public struct NodeFeed: Sendable, Codable {
  /// The node's `/state`.
  public var state: NodeSnapshot
  /// Its recent changes, oldest first.
  public var changes: [ChangeRecord]
  /// Its traffic; `nil` when HAProxy did not answer `show stat`.
  public var traffic: NodeTraffic?

  /// Creates a feed.
  public init(state: NodeSnapshot, changes: [ChangeRecord], traffic: NodeTraffic?) {
    self.state = state
    self.changes = changes
    self.traffic = traffic
  }
}
