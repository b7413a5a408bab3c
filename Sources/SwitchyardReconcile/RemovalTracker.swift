/// When each server that is being removed started to leave.
///
/// A server leaves from the pass that first finds it in HAProxy but no longer in etcd until HAProxy no
/// longer runs it, or it is registered again. Its start is kept through every pass in between (drain,
/// maintenance, a delete that HAProxy refuses because connections remain), so that its drain timeout
/// counts from when it started to leave, not from the last attempt.
public struct RemovalTracker: Sendable, Hashable {
  private var started: [ServerRef: ContinuousClock.Instant] = [:]

  /// Creates a tracker with nothing leaving.
  public init() {}

  /// Records which servers are leaving now: those HAProxy runs in a backend of `desired` that
  /// `desired` does not list. Servers that left or came back are forgotten. With a `scope`, only the
  /// backends it names were observed: what the tracker knows of the others stays.
  public mutating func update(
    desired: DesiredState,
    observed: ObservedState,
    now: ContinuousClock.Instant,
    scope: Set<String>? = nil
  ) {
    var leaving: Set<ServerRef> = []
    for backend in desired.backends where scope?.contains(backend.name) ?? true {
      let wanted = Set(backend.servers.map(\.name))
      for server in observed.backends[backend.name] ?? [] where !wanted.contains(server.name) {
        leaving.insert(ServerRef(backend: backend.name, server: server.name))
      }
    }
    started = started.filter { leaving.contains($0.key) || !(scope?.contains($0.key.backend) ?? true) }
    for ref in leaving where started[ref] == nil { started[ref] = now }
  }

  /// The backends that have servers leaving.
  public var leavingBackends: Set<String> { Set(started.keys.map(\.backend)) }

  /// The servers leaving, by backend.
  public var leavingServers: [String: Set<String>] {
    var servers: [String: Set<String>] = [:]
    for ref in started.keys { servers[ref.backend, default: []].insert(ref.server) }
    return servers
  }

  /// How long each leaving server has been leaving.
  public func elapsed(now: ContinuousClock.Instant) -> [ServerRef: Duration] {
    started.mapValues { $0.duration(to: now) }
  }
}
