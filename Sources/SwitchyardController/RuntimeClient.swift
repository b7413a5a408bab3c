import HAProxyKit
import Logging
import SwitchyardReconcile

/// The controller's Runtime API: observing HAProxy's servers and sending planned changes, with every
/// command validated before it goes out.
final class RuntimeClient: Sendable {
  private let runtime: RuntimeAPI

  init(stateDirectory: StateDirectory, logger: Logger) {
    runtime = RuntimeAPI(stateDirectory: stateDirectory, logger: logger)
  }

  /// The Runtime API session of the task, when it runs inside ``withRuntimeSession(_:)``.
  @TaskLocal private static var session: RuntimeAPI?

  /// Runs `body` with every ``observe(backends:each:)`` and ``execute(_:)`` it makes on one Runtime API
  /// connection. End it before a reload: the connection belongs to the worker that the reload retires.
  func withRuntimeSession<Result: Sendable>(_ body: () async throws -> Result) async throws -> Result {
    try await runtime.withSession { session in
      try await Self.$session.withValue(session) { try await body() }
    }
  }

  /// Replaces the routes map that HAProxy holds with `table`'s entries, in one atomic version.
  func replaceRoutes(_ table: RouteTable, mapPath: String) async throws {
    try await runtime.replaceMap(mapPath, entries: table.entries.map { ($0.key, $0.value) })
  }

  /// The servers of `backends`, without their connections (``addConnections(to:backends:)`` adds them
  /// where removals need them). With `each`, HAProxy is asked backend by backend instead of once for
  /// all: cheaper when a few backends of many are wanted.
  func observe(backends: [String], each: Bool = false) async throws -> ObservedState {
    let runtime = Self.session ?? self.runtime
    var states: [ServerState] = []
    if each {
      for backend in backends { states += try await runtime.serversState(backend: backend) }
    } else {
      states = try await runtime.serversState()
    }
    var observed = ObservedState()
    let wanted = Set(backends)
    for state in states where wanted.contains(state.backend) {
      if observed.backendIDs[state.backend] == nil, let id = state.backendID {
        observed.backendIDs[state.backend] = id
      }
      // Only the states the Runtime API sets count: `disabled` in the config leaves CMAINT behind after
      // `state ready`, and an unresolved host name sets RMAINT, neither of which `set server` changes.
      let admin: SwitchyardReconcile.ServerAdminState =
        state.adminFlags.contains(.forcedMaint) ? .maint : state.adminFlags.contains(.forcedDrain) ? .drain : .ready
      observed.backends[state.backend, default: []].append(
        ObservedServer(
          name: state.server,
          address: state.address,
          port: state.port,
          weight: state.userWeight,
          adminState: admin,
          isUp: state.operationalState == .running,
          isCheckEnabled: state.isCheckEnabled,
          id: state.id,
          usesTLS: state.usesTLS
        )
      )
    }
    return observed
  }

  /// Fills in the connections of the servers of `backends` in `observed` (`show servers conn`): only
  /// removals need them, so a pass asks for them only where servers are leaving.
  func addConnections(to observed: inout ObservedState, backends: [String]) async throws {
    let runtime = Self.session ?? self.runtime
    for backend in backends where observed.backends[backend]?.isEmpty == false {
      var connections: [String: ServerConnections] = [:]
      for entry in try await runtime.serverConnections(backend: backend) { connections[entry.server] = entry }
      observed.backends[backend] = observed.backends[backend]?.map { server in
        var server = server
        server.activeConnections = connections[server.name]?.used ?? 0
        server.idleConnections = connections[server.name]?.idle ?? 0
        server.connectionsObserved = true
        return server
      }
    }
  }

  /// Fills in the connections of `servers` in `observed`, one `show stat <backend id> 4 <server id>` row
  /// each: what a removal from a large backend needs, without listing the connections of all its servers
  /// as ``addConnections(to:backends:)`` does. A server whose ids are not known, or whose row does not name
  /// it, is left without (its removal drains first, and the follow-up looks at the backend whole).
  func addConnections(to observed: inout ObservedState, servers: [ServerRef]) async throws {
    let runtime = Self.session ?? self.runtime
    for ref in servers {
      guard let backendID = observed.backendIDs[ref.backend],
        let index = observed.backends[ref.backend]?.firstIndex(where: { $0.name == ref.server }),
        let serverID = observed.backends[ref.backend]?[index].id
      else { continue }
      let reply = try await runtime.send("show stat \(backendID) 4 \(serverID)")
      guard
        let row = (try? StatRow.parse(reply))?.first(where: {
          $0.isServer && $0.proxyName == ref.backend && $0.serviceName == ref.server
        }),
        let used = row.integer("used_conn_cur")
      else { continue }
      observed.backends[ref.backend]?[index].activeConnections = used
      observed.backends[ref.backend]?[index].idleConnections = row.integer("idle_conn_cur") ?? 0
      observed.backends[ref.backend]?[index].connectionsObserved = true
    }
  }

  /// Sends planned commands in order, in batches within a session, and returns for each `nil` when
  /// HAProxy confirmed it, else the error. Connection failures and timeouts throw. A server to add with an
  /// id in `newServerIDs` gets that id.
  func execute(_ commands: [RuntimeCommand], newServerIDs: [ServerRef: Int] = [:]) async throws -> [HAProxyError?] {
    let runtime = Self.session ?? self.runtime
    return try await runtime.run(commands.map { try Self.change(for: $0, newServerID: newServerIDs[$0.server]) })
  }

  /// The Runtime API change for a planned command, validated; an added server gets `newServerID` when
  /// there is one (see ``Plan/newServerIDs``).
  ///
  /// Other commands name servers by name, not `backend/#id`: HAProxy 2.6 finds a server either way by
  /// walking every server of its backend (a profile showed the same cost), and a name cannot point at
  /// another server than the one observed.
  static func change(for command: RuntimeCommand, newServerID: Int? = nil) throws -> RuntimeAPI.Change {
    let ref = command.server
    switch command {
    case .addServer(_, let address, let port, let options):
      return try .addServer(
        backend: ref.backend, server: ref.server, address: address.text, port: port, options: options,
        id: newServerID)
    case .enableHealth:
      return try .enableHealth(backend: ref.backend, server: ref.server)
    case .setState(_, let state):
      let target = HAProxyKit.ServerAdminState(rawValue: state.rawValue) ?? .maint
      return try .setServerState(backend: ref.backend, server: ref.server, state: target)
    case .setAddress(_, let address, let port):
      return try .setServerAddress(backend: ref.backend, server: ref.server, address: address.text, port: port)
    case .setWeight(_, let weight):
      return try .setWeight(backend: ref.backend, server: ref.server, weight: weight)
    case .shutdownSessions:
      return try .shutdownSessions(backend: ref.backend, server: ref.server)
    case .deleteServer:
      return try .deleteServer(backend: ref.backend, server: ref.server)
    }
  }
}
