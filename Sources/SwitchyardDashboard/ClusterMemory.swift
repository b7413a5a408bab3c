import SwitchyardModel

/// What the dashboard of one controller remembers between ticks, and the merge of one tick's answers into
/// a ``ClusterView``. Pure: the controller's aggregator does the I/O (etcd, the other nodes' admin
/// endpoints) and hands the answers in.
///
/// One tick:
/// 1. ``observe(_:now:)`` takes etcd's listing of `/switchyard/nodes/`: valid records make nodes known,
///    invalid ones become warnings; a failed listing keeps what was known.
/// 2. ``targets`` names the other nodes to ask (every node listed, and every node that left etcd within
///    ``goneRetention`` or still answers), with the admin URL to ask at.
/// 3. ``view(feeds:now:)`` merges each node's ``NodeFeed`` (or why it did not answer) into one view.
public struct ClusterMemory: Sendable {
  /// A node to ask for its ``NodeFeed``.
  public struct Target: Sendable, Hashable {
    /// The node id.
    public var node: String
    /// Its admin URL (`http://host:port` or `https://host:port`).
    public var adminURL: String

    /// Creates a target.
    public init(node: String, adminURL: String) {
      self.node = node
      self.adminURL = adminURL
    }
  }

  /// etcd's answer to the listing of `/switchyard/nodes/`.
  public enum Listing: Sendable {
    /// The entries, as read, at `revision`.
    case read(revision: Int64, entries: [Entry])
    /// etcd did not answer; why.
    case failed(String)
  }

  /// One etcd entry, as read.
  public struct Entry: Sendable {
    /// The key.
    public var key: [UInt8]
    /// The value.
    public var value: [UInt8]

    /// Creates an entry.
    public init(key: [UInt8], value: [UInt8]) {
      self.key = key
      self.value = value
    }
  }

  /// What asking one node gave.
  public enum Answer: Sendable {
    /// Its feed.
    case feed(NodeFeed)
    /// It did not answer in time, or not with a feed; why.
    case failed(String)
  }

  /// A node that left etcd and does not answer is shown as `gone` this long (milliseconds), then forgotten.
  public static let goneRetention: Int64 = 600_000
  /// A node with changes pending longer than this (milliseconds) is lagging.
  public static let lagThreshold: Int64 = 2_000
  /// Rate history kept per service: one point per tick.
  public static let historyLength = 60
  /// Ticks further apart than this (milliseconds) start the rate history again.
  public static let historyGap: Int64 = 5_000
  /// Changes the view lists.
  public static let changesListed = 50
  /// Invalid entries listed as warnings; the count covers the rest.
  public static let invalidEntriesListed = 50
  /// Longest text taken from a node for a warning.
  static let maxText = 500

  private struct Known: Sendable {
    var record: NodeRecord?
    var registered = false
    var lastListed: Int64?
    var lastAnswered: Int64?
  }

  /// The node whose controller runs this dashboard.
  public let selfID: String
  /// Its own admin URL, used while it has no record in etcd.
  public var selfAdminURL: String?
  private var known: [String: Known] = [:]
  private var etcd = ClusterView.Etcd(revision: nil, error: "not asked yet")
  private var invalidRecords: [RegistrationError] = []
  private var history: [String: [Double]] = [:]
  private var lastView: Int64?

  /// The memory of the dashboard that node `selfID` serves, reachable at `selfAdminURL`.
  public init(selfID: String, selfAdminURL: String? = nil) {
    self.selfID = selfID
    self.selfAdminURL = selfAdminURL
  }

  /// Takes etcd's listing of the node records.
  public mutating func observe(_ listing: Listing, now: Int64) {
    switch listing {
    case .failed(let reason):
      etcd.error = Self.shortened(reason)
    case .read(let revision, let entries):
      etcd = ClusterView.Etcd(revision: revision, error: nil)
      invalidRecords = []
      var listed: Set<String> = []
      for entry in entries {
        do {
          let record = try NodeRecord.parse(key: entry.key, value: entry.value)
          let id = record.node.rawValue
          listed.insert(id)
          known[id, default: Known()].record = record
          known[id]?.registered = true
          known[id]?.lastListed = now
        } catch {
          invalidRecords.append(error)
        }
      }
      for id in known.keys where !listed.contains(id) { known[id]?.registered = false }
    }
  }

  /// The other nodes to ask, by id.
  public var targets: [Target] {
    known.compactMap { id, node in
      guard id != selfID, let url = node.record?.adminURL else { return nil }
      return Target(node: id, adminURL: url)
    }.sorted { $0.node < $1.node }
  }

  /// Merges the answers of one tick (by node id; the serving node's own feed among them) into a view.
  public mutating func view(feeds: [String: Answer], now: Int64) -> ClusterView {
    if let last = lastView, now - last > Self.historyGap { history = [:] }
    lastView = now
    for (id, answer) in feeds {
      if case .feed = answer { known[id, default: Known()].lastAnswered = now }
    }
    for (id, node) in known where id != selfID && !node.registered {
      let last = max(node.lastListed ?? 0, node.lastAnswered ?? 0)
      if now - last > Self.goneRetention { known[id] = nil }
    }
    var order = Set(known.keys)
    order.insert(selfID)
    let ids = order.sorted()
    let answered: [NodeFeed?] = ids.map { id in
      if case .feed(let feed) = feeds[id] { return feed }
      return nil
    }
    var warnings = Warnings()
    let changes = mergeChanges(ids: ids, answered: answered, now: now)
    var nodes = ids.indices.map { index in
      node(ids[index], feed: answered[index], answer: feeds[ids[index]], pending: changes.pending[index])
    }
    let services = mergeServices(ids: ids, answered: answered, nodes: &nodes)
    let routes = mergeRoutes(ids: ids, answered: answered)
    warnings.add(etcd: etcd, invalidRecords: invalidRecords)
    for index in ids.indices {
      warnings.add(node: nodes[index], feed: answered[index], selfID: selfID, now: now)
    }
    warnings.addConflicts(records: ids.compactMap { known[$0]?.record })
    warnings.addReported(ids: ids, answered: answered)
    return ClusterView(
      servedBy: selfID, etcd: etcd, nodes: nodes, services: services, routes: routes, changes: changes.listed,
      warnings: warnings.sorted)
  }

  // MARK: - Nodes

  private func node(_ id: String, feed: NodeFeed?, answer: Answer?, pending: (count: Int, since: Int64?))
    -> ClusterView.Node
  {
    let known = self.known[id]
    let record = known?.record
    let registered = known?.registered ?? false
    let status: String
    var problem: String?
    if let feed {
      status = feed.state.ready ? "up" : "not-ready"
    } else {
      if case .failed(let reason) = answer { problem = Self.shortened(reason) }
      if id == selfID { problem = problem ?? "its own status is not available" }
      status = registered || id == selfID ? "not-answering" : "gone"
    }
    let state = feed?.state
    return ClusterView.Node(
      id: id, status: status, registered: registered,
      adminURL: record?.adminURL ?? (id == selfID ? selfAdminURL : nil),
      listen: record?.listen.description, stats: record?.stats.description,
      switchyardVersion: record?.switchyardVersion,
      haproxyVersion: state?.haproxyVersion ?? record?.haproxyVersion,
      started: record?.started,
      appliedRevision: state?.appliedRevision ?? record?.appliedRevision,
      pending: feed == nil ? 0 : pending.count,
      pendingSince: feed == nil ? nil : pending.since,
      reloads: state?.reloads,
      lastReloadReason: state?.lastReloadReason.map { Self.shortened($0) },
      lastReloadAt: state?.lastReloadAt,
      haproxyRestarts: state?.haproxyRestarts,
      haproxyRunning: state?.haproxyRunning,
      etcdMember: state?.etcdWatchEndpoint,
      etcdConnected: state?.etcdConnected,
      notReadyReasons: (state?.notReadyReasons ?? []).map { Self.shortened($0) },
      lastError: state?.lastError.map { Self.shortened($0) },
      problem: problem,
      rate: nil)
  }

  // MARK: - Changes

  private func mergeChanges(ids: [String], answered: [NodeFeed?], now: Int64)
    -> (listed: [ClusterView.Change], pending: [(count: Int, since: Int64?)])
  {
    var first: [Int64: ChangeRecord] = [:]
    var seen: [Int64: Int64] = [:]
    var own: [[Int64: ChangeRecord]] = []
    for feed in answered {
      var mine: [Int64: ChangeRecord] = [:]
      for record in feed?.changes ?? [] {
        mine[record.revision] = record
        seen[record.revision] = min(seen[record.revision] ?? record.seenAt, record.seenAt)
        if (first[record.revision]?.eventCount ?? -1) < record.eventCount { first[record.revision] = record }
      }
      own.append(mine)
    }
    let revisions = first.keys.sorted(by: >)
    let pending: [(count: Int, since: Int64?)] = answered.map { feed in
      guard let applied = feed?.state.appliedRevision else { return (0, nil) }
      var count = 0
      var since: Int64?
      for revision in revisions {
        guard revision > applied else { break }
        count += 1
        since = min(since ?? Int64.max, seen[revision] ?? now)
      }
      return (count, since)
    }
    let listed = revisions.prefix(Self.changesListed).map { revision -> ClusterView.Change in
      let firstSeen = seen[revision] ?? now
      let progress = ids.indices.map { index -> ClusterView.Progress in
        guard let feed = answered[index] else { return .unknown }
        if let record = own[index][revision] {
          if let applied = record.appliedAt {
            return .applied(max(0, applied - firstSeen, applied - record.seenAt))
          }
          return feed.state.appliedRevision >= revision ? .appliedUntimed : .pending
        }
        return feed.state.appliedRevision >= revision ? .appliedUntimed : .pending
      }
      var converged: Int64?
      if !progress.contains(.pending) {
        for case .applied(let delay) in progress { converged = max(converged ?? 0, delay) }
      }
      let record = first[revision]
      return ClusterView.Change(
        revision: revision, seenAt: firstSeen, events: record?.events ?? [], eventCount: record?.eventCount ?? 0,
        progress: progress, convergedAfter: converged)
    }
    return (listed, pending)
  }

  // MARK: - Services and routes

  private struct ServiceDraft {
    var service: ClusterView.Service
    var instances: [String: ClusterView.Instance] = [:]

    /// Puts the cell of instance `id` on node number `node` of `count`.
    mutating func place(_ id: String, address: String?, node: Int, of count: Int, cell: ClusterView.Cell) {
      var instance =
        instances[id] ?? ClusterView.Instance(id: id, address: "", cells: Array(repeating: nil, count: count))
      if instance.address.isEmpty, let address { instance.address = address }
      instance.cells[node] = cell
      instances[id] = instance
    }
  }

  private mutating func mergeServices(ids: [String], answered: [NodeFeed?], nodes: inout [ClusterView.Node])
    -> [ClusterView.Service]
  {
    var drafts: [String: ServiceDraft] = [:]
    func draft(_ name: String, from state: NodeSnapshot.Service?) -> ServiceDraft {
      drafts[name]
        ?? ServiceDraft(
          service: ClusterView.Service(
            name: name, mode: state?.mode, balance: state?.balance, checkPath: state?.checkPath, port: state?.port,
            sessions: 0, rate: 0, requests: 0, errors5xx: 0, history: [], instances: []))
    }
    for (index, feed) in answered.enumerated() {
      guard let feed else { continue }
      let traffic = Dictionary(
        (feed.traffic?.services ?? []).map { ($0.name, $0) }, uniquingKeysWith: { first, _ in first })
      var names = Set<String>()
      for service in feed.state.services {
        names.insert(service.name)
        var entry = draft(service.name, from: service)
        if entry.service.mode == nil { entry.service.mode = service.mode }
        let servers = Dictionary(
          (traffic[service.name]?.servers ?? []).map { ($0.name, $0) }, uniquingKeysWith: { first, _ in first })
        for server in service.servers {
          entry.place(
            server.name, address: server.address, node: index, of: ids.count,
            cell: Self.cell(state: server, traffic: servers[server.name]))
        }
        for server in traffic[service.name]?.servers ?? [] where entry.instances[server.name]?.cells[index] == nil {
          entry.place(
            server.name, address: nil, node: index, of: ids.count, cell: Self.cell(state: nil, traffic: server))
        }
        drafts[service.name] = entry
      }
      var nodeRate = 0.0
      for service in feed.traffic?.services ?? [] {
        var entry = draft(service.name, from: nil)
        if !names.contains(service.name) {
          for server in service.servers {
            entry.place(
              server.name, address: nil, node: index, of: ids.count, cell: Self.cell(state: nil, traffic: server))
          }
        }
        entry.service.sessions += service.sessions
        entry.service.rate += service.rate
        entry.service.requests += service.requests
        entry.service.errors5xx += service.errors5xx
        nodeRate += service.rate
        drafts[service.name] = entry
      }
      if feed.traffic != nil { nodes[index].rate = TrafficSampler.rounded(nodeRate) }
    }
    var services: [ClusterView.Service] = []
    for name in drafts.keys.sorted() {
      guard var draft = drafts[name] else { continue }
      draft.service.rate = TrafficSampler.rounded(draft.service.rate)
      var points = history[name] ?? []
      points.append(draft.service.rate)
      if points.count > Self.historyLength { points.removeFirst(points.count - Self.historyLength) }
      history[name] = points
      draft.service.history = points
      draft.service.instances = draft.instances.keys.sorted().compactMap { draft.instances[$0] }
      services.append(draft.service)
    }
    for name in history.keys where drafts[name] == nil { history[name] = nil }
    return services
  }

  private static func cell(state: NodeSnapshot.Server?, traffic: NodeTraffic.Server?) -> ClusterView.Cell {
    let status = traffic?.status.uppercased() ?? ""
    let admin = state?.adminState ?? ""
    let value: String
    if admin == "maint" || status.hasPrefix("MAINT") {
      value = "maint"
    } else if admin == "drain" || status.hasPrefix("DRAIN") || status.hasPrefix("NOLB") {
      value = "drain"
    } else if traffic != nil {
      value = status.hasPrefix("DOWN") ? "down" : "up"
    } else {
      value = state?.health == "up" ? "up" : "down"
    }
    return ClusterView.Cell(
      state: value, weight: state?.weight ?? traffic?.weight ?? 0, sessions: traffic?.sessions ?? 0,
      rate: traffic?.rate ?? 0, check: traffic?.check, errors5xx: traffic?.errors5xx ?? 0,
      leaving: state.map { !$0.registered } ?? false)
  }

  private func mergeRoutes(ids: [String], answered: [NodeFeed?]) -> [ClusterView.Route] {
    var routes: [String: ClusterView.Route] = [:]
    for (index, feed) in answered.enumerated() {
      for route in feed?.state.routes ?? [] {
        var entry =
          routes[route.name]
          ?? ClusterView.Route(
            name: route.name, service: route.service, hosts: route.hosts, pathPrefix: route.pathPrefix,
            stripPrefix: route.stripPrefix, targets: Array(repeating: nil, count: ids.count))
        entry.targets[index] = route.target
        routes[route.name] = entry
      }
    }
    return routes.keys.sorted().compactMap { routes[$0] }
  }

  static func shortened(_ text: String) -> String {
    text.count <= maxText ? text : String(text.prefix(maxText)) + "…"
  }
}
