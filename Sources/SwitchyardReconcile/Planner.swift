import AddressText
import SwitchyardModel

/// One Runtime API change. The controller sends them in order and checks every reply.
public enum RuntimeCommand: Sendable, Hashable, CustomStringConvertible {
  /// `add server <ref> <address>:<port> <options…>`; the server starts in maintenance.
  case addServer(ServerRef, address: Address, port: Int, options: [String])
  /// `enable health <ref>`: start its health check.
  case enableHealth(ServerRef)
  /// `set server <ref> state ready|drain|maint`.
  case setState(ServerRef, ServerAdminState)
  /// `set server <ref> addr <address> port <port>`.
  case setAddress(ServerRef, address: Address, port: Int)
  /// `set weight <ref> <weight>`.
  case setWeight(ServerRef, Int)
  /// `shutdown sessions server <ref>`: close what a server still holds after its drain timeout.
  case shutdownSessions(ServerRef)
  /// `del server <ref>`: only for an idle server in maintenance.
  case deleteServer(ServerRef)

  /// The server the command changes.
  public var server: ServerRef {
    switch self {
    case .addServer(let ref, _, _, _), .enableHealth(let ref), .setState(let ref, _), .setAddress(let ref, _, _),
      .setWeight(let ref, _), .shutdownSessions(let ref), .deleteServer(let ref):
      ref
    }
  }

  /// The command line, as the Runtime API reads it.
  public var description: String {
    switch self {
    case .addServer(let ref, let address, let port, let options):
      (["add server", ref.description, address.hostPort(port)] + options).joined(separator: " ")
    case .enableHealth(let ref): "enable health \(ref)"
    case .setState(let ref, let state): "set server \(ref) state \(state.rawValue)"
    case .setAddress(let ref, let address, let port): "set server \(ref) addr \(address.text) port \(port)"
    case .setWeight(let ref, let weight): "set weight \(ref) \(weight)"
    case .shutdownSessions(let ref): "shutdown sessions server \(ref)"
    case .deleteServer(let ref): "del server \(ref)"
    }
  }
}

/// What one reconcile pass does to HAProxy.
public struct Plan: Sendable, Hashable {
  /// Why HAProxy must reload; empty when the Runtime API can do everything.
  public var reloadReasons: [String] = []
  /// Runtime API commands, in order. With a reload, only those for backends that HAProxy runs with
  /// the same structure: they are safe to send before the reload, so a structural change elsewhere
  /// does not hold them back. A backend the reload creates or changes gets none; the pass after the
  /// reload plans whatever the new configuration alone does not set (drain states).
  public var commands: [RuntimeCommand] = []
  /// Servers being removed that still drain: another pass must come back to delete them.
  public var draining: [ServerRef] = []
  /// The numeric id each server to add gets (`add server … id n`): the next ones above every id its
  /// backend uses. Without one, HAProxy 2.6 picks the lowest free id by walking every id in use, which
  /// costs in proportion to the backend on every `add server`.
  public var newServerIDs: [ServerRef: Int] = [:]

  /// Whether HAProxy must reload.
  public var needsReload: Bool { !reloadReasons.isEmpty }
  /// Whether there is nothing to do now.
  public var isEmpty: Bool { reloadReasons.isEmpty && commands.isEmpty }
}

/// Turns what a node should run and what its HAProxy runs into the changes that close the gap.
public enum Planner {
  /// How removed servers leave.
  public struct RemovalPolicy: Sendable, Hashable {
    /// How long a removed server may keep its connections before they are shut down.
    public var drainTimeout: Duration

    /// Creates a policy.
    public init(drainTimeout: Duration = .seconds(30)) {
      self.drainTimeout = drainTimeout
    }
  }

  /// Plans one pass.
  ///
  /// - Parameters:
  ///   - desired: the state read from etcd.
  ///   - rendered: the configuration rendered from it.
  ///   - runningStructure: the structure of the configuration HAProxy runs, or `nil` when unknown.
  ///   - observed: the servers HAProxy reports.
  ///   - drainingFor: how long each server being removed has drained so far.
  ///   - settings: the node's settings (server options).
  ///   - policy: how removed servers leave.
  public static func plan(
    desired: DesiredState,
    rendered: RenderedConfig,
    runningStructure: String?,
    observed: ObservedState,
    drainingFor: [ServerRef: Duration] = [:],
    settings: NodeSettings,
    policy: RemovalPolicy = RemovalPolicy(),
    features: RuntimeFeatures = .haproxy26
  ) -> Plan {
    plan(
      desired: desired,
      structure: rendered.structure,
      runningStructure: runningStructure,
      observed: observed,
      drainingFor: drainingFor,
      settings: settings,
      policy: policy,
      features: features
    )
  }

  /// Plans one pass from the structure of the desired configuration
  /// (``ConfigRenderer/structure(_:settings:)``), for the backends in `scope` only when one is given:
  /// a pass that knows which services changed observes and plans just their backends. Structural
  /// changes are found anywhere.
  public static func plan(
    desired: DesiredState,
    structure: String,
    runningStructure: String?,
    observed: ObservedState,
    drainingFor: [ServerRef: Duration] = [:],
    settings: NodeSettings,
    policy: RemovalPolicy = RemovalPolicy(),
    scope: Set<String>? = nil,
    features: RuntimeFeatures = .haproxy26
  ) -> Plan {
    var plan = Plan()
    guard let runningStructure else { return Plan(reloadReasons: ["the configuration HAProxy runs is not known"]) }
    if let reason = structureChange(from: runningStructure, to: structure) {
      plan.reloadReasons.append(reason)
    }
    let runningSections = backendSections(of: runningStructure)
    let desiredSections = backendSections(of: structure)
    var additions: [RuntimeCommand] = []
    var removals: [RuntimeCommand] = []
    // Servers deleted to be added again as another kind (plain or TLS): added after the deletes.
    var readditions: [RuntimeCommand] = []
    for backend in desired.backends where scope?.contains(backend.name) ?? true {
      // A backend HAProxy does not run yet cannot take `add server`, and one whose own structure
      // changed is replaced by the reload: the reload alone sets both.
      guard let section = runningSections[backend.name], section == desiredSections[backend.name] else { continue }
      var backendAdditions: [RuntimeCommand] = []
      var backendRemovals: [RuntimeCommand] = []
      var backendReadditions: [RuntimeCommand] = []
      var backendDraining: [ServerRef] = []
      var missingHostNames: [String] = []
      let serverPolicy = BackendPolicy(settings: backend.settings, node: settings)
      let running = Dictionary(
        (observed.backends[backend.name] ?? []).map { ($0.name, $0) },
        uniquingKeysWith: { first, _ in first }
      )
      let wanted = Set(backend.servers.map(\.name))
      var backendIDs: [ServerRef: Int] = [:]
      // Ids are known only when HAProxy reported every server's: a new id must be free.
      let knownIDs = running.values.allSatisfy { $0.id != nil }
      var nextID = (running.values.compactMap(\.id).max() ?? 0) + 1
      for server in backend.servers {
        let ref = ServerRef(backend: backend.name, server: server.name)
        if let current = running[server.name], server.isDynamic, needsReplacement(current, by: server) {
          // TLS keywords cannot change in place: the server leaves as a removed one does (drained first),
          // and once it is deleted it is added again, in the same plan, as the kind it is now.
          let (commands, stillDraining) = removal(
            of: current, ref: ref, drainedFor: drainingFor[ref] ?? .zero, policy: policy, features: features)
          backendRemovals += commands
          if stillDraining {
            backendDraining.append(ref)
          } else {
            if knownIDs, nextID <= Int(Int32.max) {
              backendIDs[ref] = nextID
              nextID += 1
            }
            backendReadditions += addition(
              of: server, ref: ref, policy: serverPolicy, caFile: settings.backendCAPath, features: features)
          }
        } else if let current = running[server.name] {
          backendAdditions += changes(to: server, from: current, ref: ref)
        } else if server.isDynamic {
          if knownIDs, nextID <= Int(Int32.max) {
            backendIDs[ref] = nextID
            nextID += 1
          }
          backendAdditions += addition(
            of: server, ref: ref, policy: serverPolicy, caFile: settings.backendCAPath, features: features)
        } else {
          // A host-name server is in the structure, so it is there after the reload the structure asks for.
          missingHostNames.append("server \(ref) with a host name is missing")
        }
      }
      for current in running.values.sorted(by: { $0.name < $1.name }) where !wanted.contains(current.name) {
        let ref = ServerRef(backend: backend.name, server: current.name)
        let (commands, stillDraining) = removal(
          of: current,
          ref: ref,
          drainedFor: drainingFor[ref] ?? .zero,
          policy: policy,
          features: features
        )
        backendRemovals += commands
        if stillDraining { backendDraining.append(ref) }
      }
      // The reload sets this backend anyway.
      guard missingHostNames.isEmpty else {
        plan.reloadReasons += missingHostNames
        continue
      }
      additions += backendAdditions
      removals += backendRemovals
      readditions += backendReadditions
      plan.draining += backendDraining
      plan.newServerIDs.merge(backendIDs) { first, _ in first }
    }
    // Deletes go last: every leaving server stops taking requests before HAProxy spends time on the first
    // delete (on a large backend each command costs HAProxy 2.6 a walk over all its servers).
    let deletes = removals.filter { if case .deleteServer = $0 { true } else { false } }
    plan.commands =
      additions + removals.filter { if case .deleteServer = $0 { false } else { true } } + deletes + readditions
    return plan
  }

  /// The Runtime API state a registration asks for.
  public static func adminState(for state: InstanceState) -> ServerAdminState {
    switch state {
    case .up: .ready
    case .drain: .drain
    case .maint: .maint
    }
  }

  /// Names the first line where two structures differ, or `nil` when they are the same.
  static func structureChange(from running: String, to desired: String) -> String? {
    guard running != desired else { return nil }
    let old = running.split(separator: "\n", omittingEmptySubsequences: false)
    let new = desired.split(separator: "\n", omittingEmptySubsequences: false)
    for index in 0..<max(old.count, new.count) {
      let before = index < old.count ? String(old[index]) : "(end)"
      let after = index < new.count ? String(new[index]) : "(end)"
      if before != after {
        return "the configuration's structure changed at line \(index + 1): \"\(before)\" → \"\(after)\""
      }
    }
    return "the configuration's structure changed"
  }

  /// The lines of each `backend` section of a structure, by backend name: a section is its `backend`
  /// line and the indented lines after it.
  static func backendSections(of structure: String) -> [String: [Substring]] {
    var sections: [String: [Substring]] = [:]
    var current: String?
    for line in structure.split(separator: "\n", omittingEmptySubsequences: false) {
      if line.hasPrefix("backend ") {
        let name = String(line.dropFirst("backend ".count).prefix { $0 != " " })
        sections[name] = [line]
        current = name
      } else if let name = current, line.hasPrefix(" ") {
        sections[name, default: []].append(line)
      } else {
        current = nil
      }
    }
    return sections
  }

  /// Whether HAProxy runs `current` as another kind of connection than `server` asks for: TLS or plain
  /// (reported by HAProxy), or TLS with another server name (known only to the controller; an unknown one is
  /// taken to be the desired one).
  static func needsReplacement(_ current: ObservedServer, by server: DesiredServer) -> Bool {
    if let usesTLS = current.usesTLS, usesTLS != server.tls { return true }
    return server.tls && current.usesTLS == true && current.tlsServerNameKnown
      && current.tlsServerName != server.tlsServerName
  }

  private static func addition(
    of server: DesiredServer, ref: ServerRef, policy: BackendPolicy, caFile: String?, features: RuntimeFeatures
  ) -> [RuntimeCommand] {
    var commands: [RuntimeCommand] = [
      .addServer(
        ref,
        address: server.address,
        port: server.port,
        options: ConfigRenderer.serverOptions(weight: server.weight, policy: policy)
          + (features.addedServersPoolConnections ? [] : ConfigRenderer.runtimeParityOptions)
          + ConfigRenderer.tlsOptions(for: server, caFile: caFile)
      ),
      .enableHealth(ref),
    ]
    // A server added at runtime starts in maintenance. Not `add server … enabled`, which would save HAProxy
    // a walk of the backend per add: HAProxy 2.6.12 then shows the server as up but never sends it a request
    // (it stays out of the load-balancing tree, even after `state ready`; tried here with one server).
    let target = adminState(for: server.state)
    if target != .maint { commands.append(.setState(ref, target)) }
    return commands
  }

  private static func changes(to server: DesiredServer, from current: ObservedServer, ref: ServerRef)
    -> [RuntimeCommand]
  {
    var commands: [RuntimeCommand] = []
    if server.isDynamic, current.port != server.port || !sameAddress(current.address, server.address) {
      commands.append(.setAddress(ref, address: server.address, port: server.port))
    }
    // Every server is checked; a check that never started (or was switched off) is started again.
    if !current.isCheckEnabled { commands.append(.enableHealth(ref)) }
    let target = adminState(for: server.state)
    if current.adminState != target { commands.append(.setState(ref, target)) }
    if current.weight != server.weight { commands.append(.setWeight(ref, server.weight)) }
    return commands
  }

  /// Drain first; once the server holds no connection (or its drain timeout passed), maintenance and delete.
  /// A server seen holding no connection at all has nothing to drain: maintenance and delete at once, a
  /// follow-up pass sooner. (Should a connection come in between, HAProxy refuses the delete and the
  /// server waits in maintenance, its connections untouched, like a drained one.)
  ///
  /// Where `del server` closes idle connections itself (``RuntimeFeatures/deleteClosesIdleConnections``),
  /// connections are not listed: maintenance and delete at once; a delete HAProxy refuses (a request
  /// still runs there) waits in maintenance and is tried again, with its sessions shut down once the
  /// drain timeout passed.
  private static func removal(
    of current: ObservedServer,
    ref: ServerRef,
    drainedFor: Duration,
    policy: RemovalPolicy,
    features: RuntimeFeatures
  ) -> (commands: [RuntimeCommand], stillDraining: Bool) {
    if features.deleteClosesIdleConnections, !current.connectionsObserved {
      var commands: [RuntimeCommand] = []
      if current.adminState != .maint { commands.append(.setState(ref, .maint)) }
      if drainedFor >= policy.drainTimeout { commands.append(.shutdownSessions(ref)) }
      commands.append(.deleteServer(ref))
      return (commands, false)
    }
    if current.adminState == .ready, !(current.connectionsObserved && current.activeConnections == 0) {
      return ([.setState(ref, .drain)], true)
    }
    let idle = current.activeConnections == 0
    let timedOut = drainedFor >= policy.drainTimeout
    guard idle || timedOut else { return ([], true) }
    var commands: [RuntimeCommand] = []
    if current.adminState != .maint { commands.append(.setState(ref, .maint)) }
    if !idle { commands.append(.shutdownSessions(ref)) }
    commands.append(.deleteServer(ref))
    return (commands, false)
  }

  /// Whether HAProxy's printed address is `address`; IPv6 compares by value (`::1` is `0:0:0:0:0:0:0:1`).
  static func sameAddress(_ printed: String?, _ address: Address) -> Bool {
    guard let printed else { return false }
    if printed.lowercased() == address.text { return true }
    guard address.kind == .ipv6, let lhs = IPLiteral.ipv6Groups(printed), let rhs = IPLiteral.ipv6Groups(address.text)
    else { return false }
    return lhs == rhs
  }
}
