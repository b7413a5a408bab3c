import SwitchyardModel

/// The instances of one service that changed, as they are served now, with what its backend depends on
/// beyond its servers: what ``DesiredBackend/patching(_:)`` needs to update a backend without a look at
/// its other instances.
public struct InstanceUpdate: Sendable, Hashable {
  /// The instances that changed and are registered now, served (overrides applied).
  public var instances: [ServiceInstance]
  /// The instances that changed and are no longer registered (or no longer valid).
  public var removed: Set<InstanceID>
  /// The service's aggregate over all its served instances, after the changes.
  public var aggregate: ServiceAggregate
  /// The service's settings in force.
  public var settings: ServiceSettings?

  /// Creates an update.
  public init(
    instances: [ServiceInstance], removed: Set<InstanceID>, aggregate: ServiceAggregate, settings: ServiceSettings?
  ) {
    self.instances = instances
    self.removed = removed
    self.aggregate = aggregate
    self.settings = settings
  }

  /// The HAProxy names of the servers the update touches.
  public var serverNames: Set<String> {
    Set(instances.map(\.key.instance.haproxyServerName)).union(removed.map(\.haproxyServerName))
  }
}

extension DesiredBackend {
  /// This backend with the servers of `update`'s instances put in or taken out, when that is all that
  /// changes: the same check path, algorithm, settings and structure, as
  /// ``DesiredState/init(revision:services:instances:previous:settings:lingering:)`` would build them from
  /// every instance with this backend as the previous one. `nil` when more changes (build the backend again
  /// from all its instances): the check path or the algorithm moves, the settings differ, a server with a
  /// host name comes, goes or changes (those are in the configuration's structure), the service has no
  /// instance left, or the backend lingers.
  ///
  /// Costs a copy of the server list and nothing per other instance: the check path and the algorithm come
  /// from `update`'s aggregate.
  public func patching(_ update: InstanceUpdate) -> DesiredBackend? {
    guard !isLingering, update.aggregate.count > 0, settings == update.settings else { return nil }
    let path = DesiredState.checkPath(
      configured: update.settings?.check?.path, previous: checkPath, votes: update.aggregate.checkPaths)
    let algorithm = BackendPolicy.effectiveBalance(
      configured: update.settings?.balance ?? .roundrobin, weightSum: update.aggregate.upWeight, previous: balance)
    guard path == checkPath, algorithm == balance else { return nil }
    var replacing: [String: DesiredServer?] = [:]
    for id in update.removed { replacing[id.haproxyServerName] = .some(nil) }
    for instance in update.instances {
      let server = DesiredServer(instance)
      guard server.isDynamic else { return nil }
      replacing[server.name] = .some(server)
    }
    for name in replacing.keys {
      if let old = server(named: name), !old.isDynamic { return nil }
    }
    return DesiredBackend(
      service: service, checkPath: checkPath, sortedServers: Self.merge(servers, replacing), settings: settings,
      balance: balance, isLingering: false)
  }

  /// The server named `name`, found by bisection (the servers are sorted by name).
  public func server(named name: String) -> DesiredServer? {
    let index = servers.insertionIndex(of: name, by: \.name)
    return index < servers.count && servers[index].name == name ? servers[index] : nil
  }

  /// This backend with only the servers named in `names` (those it has): what a pass that plans those
  /// servers alone compares with HAProxy.
  public func only(_ names: Set<String>) -> DesiredBackend {
    DesiredBackend(
      service: service, checkPath: checkPath, sortedServers: names.sorted().compactMap(server(named:)),
      settings: settings, balance: balance, isLingering: isLingering)
  }

  /// `servers` (sorted by name) with each server named in `replacing` replaced by its value there, left
  /// out when that is `nil`, or put in its place when it was not there: one walk over both, sorted.
  static func merge(_ servers: [DesiredServer], _ replacing: [String: DesiredServer?]) -> [DesiredServer] {
    guard !replacing.isEmpty else { return servers }
    let changes = replacing.sorted { $0.key < $1.key }
    var merged: [DesiredServer] = []
    merged.reserveCapacity(servers.count + changes.count)
    var next = 0
    for (name, replacement) in changes {
      while next < servers.count, servers[next].name < name {
        merged.append(servers[next])
        next += 1
      }
      if next < servers.count, servers[next].name == name { next += 1 }
      if let replacement { merged.append(replacement) }
    }
    merged.append(contentsOf: servers[next...])
    return merged
  }
}

extension DesiredState {
  /// This state at `revision` with `backends` in place of the backends of the same services (services
  /// it does not serve are ignored).
  public func replacing(_ replacements: [DesiredBackend], revision: Int64) -> DesiredState {
    var backends = self.backends
    for backend in replacements {
      guard let index = backends.firstIndex(where: { $0.service == backend.service }) else { continue }
      backends[index] = backend
    }
    return DesiredState(revision: revision, backends: backends, routes: routes, unavailablePorts: unavailablePorts)
  }

  /// This state with the backends named in `servers` holding only the servers named there: what a pass
  /// that plans those servers alone (``RuntimeBelief``) hands the planner. Other backends stay whole.
  public func only(_ servers: [String: Set<String>]) -> DesiredState {
    guard !servers.isEmpty else { return self }
    return DesiredState(
      revision: revision,
      backends: backends.map { backend in servers[backend.name].map { backend.only($0) } ?? backend },
      routes: routes, unavailablePorts: unavailablePorts)
  }
}
