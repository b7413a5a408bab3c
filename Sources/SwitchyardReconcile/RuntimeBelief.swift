import AddressText

/// What the controller believes HAProxy runs, backend by backend: what it last observed of a backend
/// (`show servers state`), with every command HAProxy confirmed since applied on top.
///
/// A pass for one changed instance of a backend of 10,000 servers plans that server against this instead
/// of asking HAProxy for the whole backend and comparing all of it. The belief is only as good as the
/// replies it is built from, so it is dropped wherever it may be wrong: a backend whose command HAProxy
/// refused is forgotten (the next round observes it again), a reload or a failed pass forgets everything,
/// and the drift detector compares it with what HAProxy reports (``differences(from:)``) and asks for a full
/// pass when they differ.
public struct RuntimeBelief: Sendable, Hashable {
  private struct Backend: Sendable, Hashable {
    var servers: [String: ObservedServer]
    /// The backend's numeric id (`be_id`), when HAProxy reported it.
    var id: Int?
    /// The largest server id used in the backend, or `nil` when some server's id is not known.
    var maxServerID: Int?
  }

  private var backends: [String: Backend] = [:]
  /// The TLS server name each TLS server was given (`nil`: none), by server: HAProxy reports whether a
  /// server uses TLS but not with which name, so this is what the controller knows of it. Learnt from
  /// every confirmed `add server` and every installed configuration; forgetting the belief keeps it
  /// (what HAProxy was given does not change with what the controller believes of its state).
  private var tlsServerNames: [ServerRef: String?] = [:]
  /// Moves on every change, so that a reader can tell whether the belief changed while it looked at HAProxy.
  public private(set) var generation = 0

  /// Creates an empty belief: every backend is to be observed.
  public init() {}

  /// Whether there is a belief about `backend`.
  public func knows(_ backend: String) -> Bool { backends[backend] != nil }

  /// The backends there is a belief about.
  public var knownBackends: Set<String> { Set(backends.keys) }

  /// HAProxy reported `observed` for `backends` (each of them whole): that is now the belief about them,
  /// without connection counts (they are looked up when they matter).
  public mutating func observed(_ observed: ObservedState, backends names: some Sequence<String>) {
    generation &+= 1
    for name in names {
      var servers: [String: ObservedServer] = [:]
      var maxID: Int? = 0
      for var server in observed.backends[name] ?? [] {
        server.activeConnections = 0
        server.idleConnections = 0
        server.connectionsObserved = false
        servers[server.name] = server
        maxID = server.id.flatMap { id in maxID.map { max($0, id) } }
      }
      backends[name] = Backend(servers: servers, id: observed.backendIDs[name], maxServerID: maxID)
    }
  }

  /// The believed servers of `backend` named in `names`, as an observation of them alone; `nil` when there
  /// is no belief about it.
  public func servers(_ names: Set<String>, in backend: String) -> [ObservedServer]? {
    guard let known = backends[backend] else { return nil }
    return names.sorted().compactMap { known.servers[$0] }
  }

  /// The numeric id of `backend` (`be_id`), when known.
  public func backendID(_ backend: String) -> Int? { backends[backend]?.id }

  /// Ids for the servers of `refs` that are added to known backends, in order: the next ones above every
  /// id the backend used, as ``Planner`` gives them (see ``Plan/newServerIDs``). None for a backend where
  /// some server's id is not known.
  public func newServerIDs(for refs: [ServerRef]) -> [ServerRef: Int] {
    var next: [String: Int] = [:]
    var ids: [ServerRef: Int] = [:]
    for ref in refs {
      guard let known = backends[ref.backend], let maxID = known.maxServerID else { continue }
      let id = next[ref.backend] ?? maxID + 1
      guard id <= Int(Int32.max) else { continue }
      ids[ref] = id
      next[ref.backend] = id + 1
    }
    return ids
  }

  /// HAProxy confirmed `command`; `id` is the id an added server was given, if any.
  public mutating func confirmed(_ command: RuntimeCommand, id: Int? = nil) {
    let ref = command.server
    guard var backend = backends.removeValue(forKey: ref.backend) else { return }
    generation &+= 1
    defer { backends[ref.backend] = backend }
    if case .addServer(_, let address, let port, let options) = command {
      let usesTLS = options.contains("ssl")
      tlsServerNames[ref] = usesTLS ? .some(Self.value(of: "verifyhost", in: options)) : nil
      backend.servers[ref.server] = ObservedServer(
        name: ref.server, address: address.text, port: port, weight: Self.weight(in: options), adminState: .maint,
        isUp: true, isCheckEnabled: false, id: id, usesTLS: usesTLS)
      backend.servers[ref.server]?.tlsServerName = tlsServerNames[ref] ?? nil
      backend.servers[ref.server]?.tlsServerNameKnown = usesTLS
      backend.maxServerID = id.flatMap { id in backend.maxServerID.map { max($0, id) } }
      return
    }
    if case .deleteServer = command {
      tlsServerNames[ref] = nil
      backend.servers[ref.server] = nil
      return
    }
    guard var server = backend.servers[ref.server] else { return }
    switch command {
    case .enableHealth: server.isCheckEnabled = true
    case .setState(_, let state): server.adminState = state
    case .setAddress(_, let address, let port):
      server.address = address.text
      server.port = port
    case .setWeight(_, let weight): server.weight = weight
    case .addServer, .deleteServer, .shutdownSessions: break
    }
    backend.servers[ref.server] = server
  }

  /// HAProxy (re)loaded the configuration of `desired`: its TLS servers have the server names it gives them.
  public mutating func installed(_ desired: DesiredState) {
    tlsServerNames = [:]
    for backend in desired.backends {
      for server in backend.servers where server.tls {
        tlsServerNames[ServerRef(backend: backend.name, server: server.name)] = .some(server.tlsServerName)
      }
    }
  }

  /// `observed` with the TLS server names the controller knows filled in (``ObservedServer/tlsServerName``)
  /// for its servers that use TLS.
  public func withTLSServerNames(_ observed: ObservedState) -> ObservedState {
    guard !tlsServerNames.isEmpty else { return observed }
    var result = observed
    for (backend, servers) in observed.backends {
      result.backends[backend] = servers.map { server in
        guard server.usesTLS == true, let name = tlsServerNames[ServerRef(backend: backend, server: server.name)]
        else { return server }
        var copy = server
        copy.tlsServerName = name
        copy.tlsServerNameKnown = true
        return copy
      }
    }
    return result
  }

  /// Forgets what is believed about `backend`: it is observed again before anything is planned for it.
  public mutating func forget(_ backend: String) {
    generation &+= 1
    backends[backend] = nil
  }

  /// Forgets everything (a reload, a failed pass, another HAProxy).
  public mutating func forgetAll() {
    generation &+= 1
    backends.removeAll()
  }

  /// Keeps the beliefs about `names` only: the backends a full pass found.
  public mutating func keep(only names: Set<String>) {
    generation &+= 1
    backends = backends.filter { names.contains($0.key) }
  }

  /// The servers, as `backend/server`, sorted, where `observed` (HAProxy's report of every backend) differs
  /// from the belief: one is missing on either side, or its address, port, weight, state or health check
  /// differs. Backends there is no belief about are not compared; neither are health and connections,
  /// which HAProxy changes on its own.
  public func differences(from observed: ObservedState) -> [String] {
    var differing: [String] = []
    for (name, backend) in backends {
      var seen = Set<String>()
      for server in observed.backends[name] ?? [] {
        seen.insert(server.name)
        guard let believed = backend.servers[server.name], Self.same(believed, server) else {
          differing.append("\(name)/\(server.name)")
          continue
        }
      }
      for server in backend.servers.keys where !seen.contains(server) { differing.append("\(name)/\(server)") }
    }
    return differing.sorted()
  }

  private static func same(_ believed: ObservedServer, _ reported: ObservedServer) -> Bool {
    believed.port == reported.port && believed.weight == reported.weight && believed.adminState == reported.adminState
      && believed.isCheckEnabled == reported.isCheckEnabled
      && (believed.id == nil || reported.id == nil || believed.id == reported.id)
      && (believed.usesTLS == nil || reported.usesTLS == nil || believed.usesTLS == reported.usesTLS)
      && sameAddress(believed.address, reported.address)
  }

  /// Whether two printed addresses are the same: as printed, or as IPv6 groups.
  private static func sameAddress(_ believed: String?, _ reported: String?) -> Bool {
    guard let believed, let reported else { return believed == nil && reported == nil }
    if believed.lowercased() == reported.lowercased() { return true }
    guard let lhs = IPLiteral.ipv6Groups(believed), let rhs = IPLiteral.ipv6Groups(reported) else { return false }
    return lhs == rhs
  }

  /// The word after `keyword` in an `add server` line, if any.
  static func value(of keyword: String, in options: [String]) -> String? {
    guard let index = options.firstIndex(of: keyword), index + 1 < options.count else { return nil }
    return options[index + 1]
  }

  /// The weight an `add server` line gives (`weight <n>`); HAProxy's default of 1 without one.
  static func weight(in options: [String]) -> Int {
    guard let index = options.firstIndex(of: "weight"), index + 1 < options.count else { return 1 }
    return Int(options[index + 1]) ?? 1
  }
}
