import SwitchyardModel

extension DesiredState {
  /// This state without its lingering backends, and their routes answering 503: what a reload installs,
  /// since a reload that happens anyway is the moment to let them go.
  public func withoutLingering() -> DesiredState {
    let gone = Set(backends.filter(\.isLingering).map(\.name))
    guard !gone.isEmpty else { return self }
    return DesiredState(
      revision: revision, backends: backends.filter { !$0.isLingering }, routes: routes.redirecting(gone),
      unavailablePorts: unavailablePorts)
  }

  /// This state with `ports` as the ports that cannot be listened on now.
  public func with(unavailablePorts ports: [Int: String]) -> DesiredState {
    ports == unavailablePorts
      ? self : DesiredState(revision: revision, backends: backends, routes: routes, unavailablePorts: ports)
  }

  /// This state with `table` as its routes.
  public func with(routes table: RouteTable) -> DesiredState {
    DesiredState(revision: revision, backends: backends, routes: table, unavailablePorts: unavailablePorts)
  }

  /// The route table of `routes` against this state's backends.
  public func routeTable(_ routes: [Route]) -> RouteTable {
    var http: [ServiceName: String] = [:]
    var tcp: Set<ServiceName> = []
    for backend in backends {
      if backend.mode == .tcp { tcp.insert(backend.service) } else { http[backend.service] = backend.name }
    }
    return RouteTable(routes: routes, httpBackends: http, tcpServices: tcp)
  }

  /// The services a node serves, in order, and those of them that only linger: every service with an
  /// instance (of those in the node's filter, when it has one), the default service, and every service
  /// the filter names.
  ///
  /// - Parameters:
  ///   - registered: the services with at least one valid instance.
  ///   - running: whether HAProxy runs a backend for a service (to keep a service that lost its last
  ///     instance until the next reload).
  ///   - previous: the services of the last pass.
  ///   - node: the node's filter and default service.
  public static func servedServices(
    registered: Set<ServiceName>, previous: [ServiceName], running: (ServiceName) -> Bool, node: NodeSettings
  ) -> (services: [ServiceName], lingering: Set<ServiceName>) {
    var served = registered.filter(node.serves)
    if let defaultService = node.defaultService { served.insert(defaultService) }
    // The services a node is told to serve have their backends from the start, as the default one:
    // their first registration needs no reload.
    if let filter = node.serviceFilter { served.formUnion(filter) }
    let lingering = Set(previous.filter { !served.contains($0) && node.serves($0) && running($0) })
    served.formUnion(lingering)
    let ordered = served.sorted { lhs, rhs in
      if lhs == node.defaultService { return rhs != node.defaultService }
      if rhs == node.defaultService { return false }
      return lhs < rhs
    }
    return (ordered, lingering)
  }

  /// The `tcp` services that get a frontend of their own, with their ports, in the backends' order; and
  /// why the others do not. A port the node listens on (clients, stats) or that a service before it
  /// takes is left to that one, on every node alike.
  public func tcpListeners(node: NodeSettings) -> (
    listeners: [(backend: DesiredBackend, port: Int)], conflicts: [String]
  ) {
    var taken: [Int: String] = [node.listen.port: "the node's listen address", node.stats.port: "the stats page"]
    for port in node.reservedPorts where taken[port] == nil { taken[port] = "the controller's admin endpoint" }
    var listeners: [(backend: DesiredBackend, port: Int)] = []
    var conflicts: [String] = []
    for backend in backends where backend.mode == .tcp {
      guard let port = backend.settings?.port else { continue }
      if let problem = unavailablePorts[port] {
        conflicts.append(
          "service \"\(backend.service)\": port \(port) cannot be listened on (\(problem)); it gets no listener")
        continue
      }
      if let holder = taken[port] {
        conflicts.append("service \"\(backend.service)\": port \(port) is taken by \(holder); it gets no listener")
        continue
      }
      taken[port] = "service \"\(backend.service)\""
      listeners.append((backend, port))
    }
    return (listeners, conflicts)
  }
}
