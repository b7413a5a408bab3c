/// Where HAProxy differs from the desired state behind the controller's back: a server HAProxy lost or
/// gained (a reload by hand from an older file, a `del server` or `add server` typed by an operator), or a
/// wanted server whose health check does not run. Pure; compared backend by backend, by name, with no
/// string per server of the fleet.
public struct Drift: Sendable, Hashable {
  /// Wanted servers HAProxy does not have, as `backend/server`, sorted.
  public var missing: [String] = []
  /// Whether HAProxy has a ready server that is not wanted. Servers on their way out (draining, in
  /// maintenance) are the removal's business, not drift.
  public var unwanted = false
  /// Whether a wanted server's health check does not run.
  public var unchecked = false

  /// Compares what HAProxy runs with `desired`.
  public init(desired: DesiredState, observed: ObservedState) {
    for backend in desired.backends {
      let servers = observed.backends[backend.name] ?? []
      let wanted = Set(backend.servers.map(\.name))
      let running = Set(servers.map(\.name))
      missing += wanted.subtracting(running).map { "\(backend.name)/\($0)" }
      unwanted = unwanted || servers.contains { $0.adminState == .ready && !wanted.contains($0.name) }
      unchecked = unchecked || servers.contains { !$0.isCheckEnabled && wanted.contains($0.name) }
    }
    missing.sort()
  }

  /// Whether the servers differ (missing or unwanted ones).
  public var serversDiffer: Bool { !missing.isEmpty || unwanted }

  /// Whether a full pass must repair HAProxy. A server whose check does not run is repaired at once (a
  /// pass plans `enable health`); a difference in servers only when it was also seen on the refresh
  /// before (`differedBefore`): seen once, it may be a pass at work.
  public func needsRepair(differedBefore: Bool) -> Bool {
    unchecked || (serversDiffer && differedBefore)
  }
}
