import HAProxyKit
import SwitchyardReconcile

/// Passes for a few instances of a large backend: only the servers that changed are planned, against
/// what the controller believes HAProxy runs (``RuntimeBelief``), so that one change beside 10,000 servers
/// neither lists nor compares the other 9,999.
extension Applier {
  /// At most this many leaving servers of one backend have their connections looked up one by one; past
  /// it, one listing of the backend's connections costs less.
  static let connectionLookupsPerBackend = 64

  /// The backends of `targets` (backend → the servers that changed) that can be planned from the belief:
  /// in `backends` (the round's, which HAProxy runs), believed, and with no server leaving but among the
  /// changed ones (a drain that goes on is followed against HAProxy's own report of the backend).
  func targeted(_ targets: [String: Set<String>], in backends: [String]) -> [String: Set<String>] {
    guard !targets.isEmpty else { return [:] }
    let leaving = removals.withLock { $0.leavingServers }
    let running = Set(backends)
    return belief.withLock { belief in
      targets.filter { backend, servers in
        running.contains(backend) && belief.knows(backend) && (leaving[backend] ?? []).isSubset(of: servers)
      }
    }
  }

  /// HAProxy's report of `backends` (each whole; none asked for when there are none), which becomes the
  /// belief about them, and the believed servers of `targeted`, as if observed. A `full` round (every
  /// backend) also lets go of beliefs about backends that are gone.
  func observe(_ backends: [String], each: Bool, targeted: [String: Set<String>], full: Bool) async throws
    -> ObservedState
  {
    var observed = backends.isEmpty ? ObservedState() : try await runtime.observe(backends: backends, each: each)
    belief.withLock { belief in
      if full { belief.keep(only: Set(backends)) }
      belief.observed(observed, backends: backends)
      for (backend, names) in targeted {
        observed.backends[backend] = belief.servers(names, in: backend) ?? []
        observed.backendIDs[backend] = belief.backendID(backend)
      }
      observed = belief.withTLSServerNames(observed)
    }
    return observed
  }

  /// Fills in the connections of the targeted servers that leave (believed, but not in `planned`): one
  /// `show stat` row each, or one listing of the backend's connections when many leave at once.
  func addConnections(to observed: inout ObservedState, leaving planned: DesiredState, targeted: [String: Set<String>])
    async throws
  {
    for backend in planned.backends where targeted[backend.name] != nil {
      let wanted = Set(backend.servers.map(\.name))
      let leaving = (observed.backends[backend.name] ?? []).filter { !wanted.contains($0.name) }
      guard !leaving.isEmpty else { continue }
      if leaving.count > Self.connectionLookupsPerBackend {
        try await runtime.addConnections(to: &observed, backends: [backend.name])
      } else {
        try await runtime.addConnections(
          to: &observed, servers: leaving.map { ServerRef(backend: backend.name, server: $0.name) })
      }
    }
  }

  /// `plan`'s server ids with those of the targeted backends' added servers taken from the belief: the
  /// planner saw only the changed servers of those backends, not the ids the others use.
  func newServerIDs(_ plan: Plan, targeted: [String: Set<String>]) -> [ServerRef: Int] {
    let added = plan.commands.compactMap { command -> ServerRef? in
      guard case .addServer(let ref, _, _, _) = command, targeted[ref.backend] != nil else { return nil }
      return ref
    }
    let kept = plan.newServerIDs.filter { targeted[$0.key.backend] == nil }
    return kept.merging(belief.withLock { $0.newServerIDs(for: added) }) { first, _ in first }
  }

  /// Publishes the round's backends: those observed whole from `observed`, the targeted ones server by
  /// server from the belief.
  func publish(desired: DesiredState, observed: ObservedState, scope: Set<String>?, targeted: [String: Set<String>]) {
    guard let scope, !targeted.isEmpty else {
      publisher.publish(desired: desired, observed: observed, scope: scope)
      return
    }
    let others = scope.subtracting(targeted.keys)
    if !others.isEmpty { publisher.publish(desired: desired, observed: observed, scope: others) }
    for (name, servers) in targeted {
      guard let backend = desired.backends.first(where: { $0.name == name }) else { continue }
      let believed = belief.withLock { $0.servers(servers, in: name) } ?? []
      publisher.publish(servers: servers, believed: believed, of: backend)
    }
  }
}
