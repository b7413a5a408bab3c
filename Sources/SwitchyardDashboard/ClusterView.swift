/// The whole cluster as one document: what the dashboard shows, sent to the browser as JSON by
/// `GET /api/cluster` and as the `cluster` event of `GET /api/events`.
///
/// Built by ``ClusterMemory/view(feeds:now:)`` from etcd's node records and every node's ``NodeFeed``.
/// Per-node values (instance cells, route targets, change delays) are arrays in the order of ``nodes``,
/// so that 1,000 instances on a few nodes stay a document of about 100 KB. Times are milliseconds since
/// 1970. Every text comes from etcd or from a node and is untrusted: the page inserts it as text, never
/// as markup.
public struct ClusterView: Sendable, Hashable, Codable {
  /// What etcd said when the nodes were listed.
  public struct Etcd: Sendable, Hashable, Codable {
    /// etcd's revision when the node records were listed; `nil` when etcd did not answer.
    public var revision: Int64?
    /// Why listing failed; `nil` when it worked.
    public var error: String?
  }

  /// One load-balancer node.
  public struct Node: Sendable, Hashable, Codable {
    /// The node id.
    public var id: String
    /// `up` (answers and ready), `not-ready` (answers, not ready), `not-answering` (its key is in etcd, its
    /// admin endpoint did not answer in time) or `gone` (its key left etcd and it does not answer).
    public var status: String
    /// Whether its key `/switchyard/nodes/<id>` is in etcd.
    public var registered: Bool
    /// Its admin URL, from its record (or the serving node's own).
    public var adminURL: String?
    /// Where HAProxy accepts client traffic, from its record.
    public var listen: String?
    /// Where HAProxy serves its stats page, from its record.
    public var stats: String?
    /// The Switchyard version it runs.
    public var switchyardVersion: String?
    /// The HAProxy version it runs.
    public var haproxyVersion: String?
    /// When the controller started, seconds since 1970, from its record.
    public var started: Int64?
    /// The revision HAProxy was last brought in step with.
    public var appliedRevision: Int64?
    /// Registration changes known to the cluster (any node's recent changes) that it has not applied.
    public var pending: Int
    /// When the oldest of them was first seen.
    public var pendingSince: Int64?
    /// Reloads since the controller started.
    public var reloads: Int?
    /// Why HAProxy was last reloaded, when the node says.
    public var lastReloadReason: String?
    /// When HAProxy was last reloaded, when the node says.
    public var lastReloadAt: Int64?
    /// HAProxy restarts since the controller started.
    public var haproxyRestarts: Int?
    /// Whether HAProxy runs.
    public var haproxyRunning: Bool?
    /// The etcd member its watch is on.
    public var etcdMember: String?
    /// Whether its last etcd request succeeded.
    public var etcdConnected: Bool?
    /// Why it is not ready.
    public var notReadyReasons: [String]
    /// Why its last pass failed.
    public var lastError: String?
    /// Why it did not answer.
    public var problem: String?
    /// Requests per second over all its services.
    public var rate: Double?
  }

  /// One instance's state on one node, encoded as an array:
  /// `[state, weight, sessions, rate, check, errors5xx, leaving]`, for example `["up",100,2,4.5,"L7OK/200",0,0]`.
  public struct Cell: Sendable, Hashable, Codable {
    /// `up`, `down` (its health check fails), `drain` or `maint`.
    public var state: String
    /// Its weight in HAProxy.
    public var weight: Int
    /// Current sessions.
    public var sessions: Int
    /// Requests per second.
    public var rate: Double
    /// The last health check (`L7OK/200`, `L4CON`), when checks run.
    public var check: String?
    /// 5xx responses since the HAProxy worker started.
    public var errors5xx: Int
    /// Whether the server left etcd and is draining its connections before it goes.
    public var leaving: Bool

    /// Creates a cell.
    public init(
      state: String, weight: Int, sessions: Int = 0, rate: Double = 0, check: String? = nil, errors5xx: Int = 0,
      leaving: Bool = false
    ) {
      self.state = state
      self.weight = weight
      self.sessions = sessions
      self.rate = rate
      self.check = check
      self.errors5xx = errors5xx
      self.leaving = leaving
    }

    /// Decodes `[state, weight, sessions, rate, check, errors5xx, leaving]`.
    public init(from decoder: any Decoder) throws {
      var container = try decoder.unkeyedContainer()
      state = try container.decode(String.self)
      weight = try container.decode(Int.self)
      sessions = try container.decode(Int.self)
      rate = try container.decode(Double.self)
      check = try container.decodeIfPresent(String.self)
      errors5xx = try container.decode(Int.self)
      leaving = try container.decode(Int.self) != 0
    }

    /// Encodes `[state, weight, sessions, rate, check, errors5xx, leaving]`.
    public func encode(to encoder: any Encoder) throws {
      var container = encoder.unkeyedContainer()
      try container.encode(state)
      try container.encode(weight)
      try container.encode(sessions)
      try container.encode(rate)
      if let check { try container.encode(check) } else { try container.encodeNil() }
      try container.encode(errors5xx)
      try container.encode(leaving ? 1 : 0)
    }
  }

  /// One instance of a service, with its cell on each node (`nil` where the node does not run it).
  public struct Instance: Sendable, Hashable, Codable {
    /// The instance id (HAProxy's server name).
    public var id: String
    /// Its address, as the first node that runs it reports it.
    public var address: String
    /// One per node, in the order of ``ClusterView/nodes``.
    public var cells: [Cell?]
  }

  /// One service.
  public struct Service: Sendable, Hashable, Codable {
    /// The service name.
    public var name: String
    /// `http` or `tcp`.
    public var mode: String?
    /// The balancing algorithm.
    public var balance: String?
    /// The health-check path.
    public var checkPath: String?
    /// The port of a tcp service.
    public var port: Int?
    /// Current sessions over all nodes.
    public var sessions: Int
    /// Requests per second over all nodes.
    public var rate: Double
    /// Requests since the nodes' workers started, summed.
    public var requests: Int
    /// 5xx responses since the nodes' workers started, summed.
    public var errors5xx: Int
    /// ``rate`` once per tick (a second), oldest first, for the last minute at most.
    public var history: [Double]
    /// Its instances, by id.
    public var instances: [Instance]
  }

  /// One route, and where each node sends its requests.
  public struct Route: Sendable, Hashable, Codable {
    /// Its name.
    public var name: String
    /// Its service.
    public var service: String
    /// Its hosts; empty for any.
    public var hosts: [String]
    /// Its path prefix.
    public var pathPrefix: String
    /// Whether the prefix is stripped.
    public var stripPrefix: Bool
    /// Per node, in the order of ``ClusterView/nodes``: the backend, `unavailable`, `rejected`,
    /// `shadowed`, or `nil` where the node does not say.
    public var targets: [String?]
  }

  /// How one node stands with one change.
  public enum Progress: Sendable, Hashable, Codable {
    /// Applied, this many milliseconds after the change was first seen (JSON: the number).
    case applied(Int64)
    /// Applied, when is not known: the node has no record of it (JSON: `"applied"`).
    case appliedUntimed
    /// Not applied yet (JSON: `"pending"`).
    case pending
    /// The node does not answer (JSON: `null`).
    case unknown

    /// Decodes a number, `"applied"`, `"pending"` or `null`.
    public init(from decoder: any Decoder) throws {
      let container = try decoder.singleValueContainer()
      if container.decodeNil() {
        self = .unknown
      } else if let delay = try? container.decode(Int64.self) {
        self = .applied(delay)
      } else {
        self = try container.decode(String.self) == "pending" ? .pending : .appliedUntimed
      }
    }

    /// Encodes a number, `"applied"`, `"pending"` or `null`.
    public func encode(to encoder: any Encoder) throws {
      var container = encoder.singleValueContainer()
      switch self {
      case .applied(let delay): try container.encode(delay)
      case .appliedUntimed: try container.encode("applied")
      case .pending: try container.encode("pending")
      case .unknown: try container.encodeNil()
      }
    }
  }

  /// One registration change (an etcd revision) and how far each node got with it.
  public struct Change: Sendable, Hashable, Codable {
    /// The etcd revision.
    public var revision: Int64
    /// When the first node saw it.
    public var seenAt: Int64
    /// Its first keys.
    public var events: [ChangeRecord.Event]
    /// How many keys it changed.
    public var eventCount: Int
    /// Per node, in the order of ``ClusterView/nodes``.
    public var progress: [Progress]
    /// The longest delay until a node applied it, once every answering node did.
    public var convergedAfter: Int64?
  }

  /// Something an operator should look at.
  public struct Warning: Sendable, Hashable, Codable {
    /// `etcd`, `invalid-node-record`, `not-answering`, `not-ready`, `lagging`, `key-missing`, `conflict`,
    /// `pass-failed` or `invalid-entry`.
    public var kind: String
    /// The node concerned, when one is.
    public var node: String?
    /// What is wrong, in words.
    public var text: String
  }

  /// The node whose controller made this view (the one the browser talks to).
  public var servedBy: String
  /// etcd, as of the listing of the nodes.
  public var etcd: Etcd
  /// The nodes, by id.
  public var nodes: [Node]
  /// The services, by name.
  public var services: [Service]
  /// The routes, by name.
  public var routes: [Route]
  /// The latest changes, newest first.
  public var changes: [Change]
  /// What an operator should look at, most urgent first.
  public var warnings: [Warning]
}
