import SwitchyardModel

/// One server as the node should run it: a valid registration under a server name.
public struct DesiredServer: Sendable, Hashable, Comparable {
  /// HAProxy server name: the instance id.
  public let name: String
  /// Where to connect.
  public let address: Address
  /// Its port.
  public let port: Int
  /// Its weight, 0–256.
  public let weight: Int
  /// Whether it takes traffic.
  public let state: InstanceState
  /// The etcd revision of its last change.
  public let modRevision: Int64
  /// Whether HAProxy connects to it over TLS, verifying its certificate against the node's
  /// ``NodeSettings/backendCAPath``.
  public let tls: Bool
  /// The name sent as SNI and checked against its certificate (only with ``tls``).
  public let tlsServerName: String?

  /// Creates a server from a parsed instance.
  public init(_ instance: ServiceInstance) {
    name = instance.key.instance.haproxyServerName
    address = instance.registration.address
    port = instance.registration.port
    weight = instance.registration.weight
    state = instance.registration.state
    modRevision = instance.modRevision
    tls = instance.registration.tls
    tlsServerName = instance.registration.tlsServerName
  }

  /// Whether `other` is the same kind of connection: TLS or not, with the same server name. A server
  /// whose kind changes is a new server to HAProxy (deleted and added again, or a reload for one with a
  /// host name): its TLS keywords cannot be changed in place.
  public func sameTLS(as other: DesiredServer) -> Bool { tls == other.tls && tlsServerName == other.tlsServerName }

  /// Whether HAProxy's Runtime API can add and move this server: only IP addresses, since servers
  /// added at runtime are never resolved. Servers with host names go through the config file.
  public var isDynamic: Bool { address.kind != .hostname }

  /// Orders by name.
  public static func < (lhs: DesiredServer, rhs: DesiredServer) -> Bool { lhs.name < rhs.name }
}

/// One HAProxy backend: the servers of one service.
public struct DesiredBackend: Sendable, Hashable {
  /// The service.
  public let service: ServiceName
  /// The HTTP path of the backend's health check.
  public let checkPath: String
  /// The servers, sorted by name.
  public let servers: [DesiredServer]
  /// The service's settings from etcd; `nil`: the node's defaults.
  public let settings: ServiceSettings?
  /// The algorithm it runs: the settings' (round robin by default), or `random` in place of round robin
  /// for a fleet above HAProxy's limit (``BackendPolicy/effectiveBalance(serverCount:previous:)``).
  public let balance: ServiceSettings.Balance
  /// Whether the service has no instance left and the backend stays only because HAProxy runs it: it
  /// answers 503 until a reload that happens anyway removes it (removing it alone is no reason to reload).
  public let isLingering: Bool

  /// The HAProxy backend name, `svc_<service>`.
  public var name: String { service.haproxyBackendName }

  /// `http` or `tcp`.
  public var mode: ServiceSettings.Mode { settings?.mode ?? .http }

  /// Creates a backend. Servers are sorted by name.
  public init(
    service: ServiceName, checkPath: String, servers: [DesiredServer], settings: ServiceSettings? = nil,
    balance: ServiceSettings.Balance? = nil, isLingering: Bool = false
  ) {
    self.service = service
    self.checkPath = checkPath
    self.servers = servers.sorted()
    self.settings = settings
    self.balance = balance ?? settings?.balance ?? .roundrobin
    self.isLingering = isLingering
  }

  /// Creates a backend from servers already sorted by name (a patched one: sorting them again would cost
  /// in proportion to the backend).
  init(
    service: ServiceName, checkPath: String, sortedServers: [DesiredServer], settings: ServiceSettings?,
    balance: ServiceSettings.Balance, isLingering: Bool
  ) {
    self.service = service
    self.checkPath = checkPath
    servers = sortedServers
    self.settings = settings
    self.balance = balance
    self.isLingering = isLingering
  }

  /// Whether `other` renders the same lines in the configuration's structure: the same mode, algorithm,
  /// check and settings, and the same servers with host names (servers with addresses are the Runtime
  /// API's). A pass whose backends all keep their structure need not render and compare it again.
  public func hasSameStructure(as other: DesiredBackend) -> Bool {
    guard name == other.name, checkPath == other.checkPath, balance == other.balance else { return false }
    switch (settings, other.settings) {
    case (nil, nil): break
    case (let mine?, let theirs?) where mine.sameSettings(as: theirs): break
    default: return false
    }
    let named = servers.filter { !$0.isDynamic }
    let otherNamed = other.servers.filter { !$0.isDynamic }
    return named.count == otherNamed.count
      && zip(named, otherNamed).allSatisfy {
        $0.name == $1.name && $0.address == $1.address && $0.port == $1.port && $0.sameTLS(as: $1)
      }
  }

  /// The same backend, lingering or not.
  func lingering(_ isLingering: Bool) -> DesiredBackend {
    DesiredBackend(
      service: service, checkPath: checkPath, servers: servers, settings: settings, balance: balance,
      isLingering: isLingering)
  }
}

/// Everything one node should serve, read from etcd at one revision.
public struct DesiredState: Sendable, Hashable {
  /// The etcd revision the state was read at.
  public let revision: Int64
  /// One backend per served service: the default service first, then by name.
  public let backends: [DesiredBackend]
  /// The routes, as HAProxy's map holds them.
  public let routes: RouteTable
  /// Ports a `tcp` service asks for that cannot be listened on now, and why: they get no listener
  /// (``tcpListeners(node:)``). The controller finds them by trying to bind before a reload would.
  public let unavailablePorts: [Int: String]

  /// The health-check path used when a service has no instance that names one: `/`, as in the original.
  public static let defaultCheckPath = "/"

  /// Creates a state directly (for tests and tools).
  public init(
    revision: Int64, backends: [DesiredBackend], routes: RouteTable = .empty, unavailablePorts: [Int: String] = [:]
  ) {
    self.revision = revision
    self.backends = backends
    self.routes = routes
    self.unavailablePorts = unavailablePorts
    index = Self.index(backends)
  }

  /// Where each service's backend is in ``backends``.
  private let index: [ServiceName: Int]

  private static func index(_ backends: [DesiredBackend]) -> [ServiceName: Int] {
    Dictionary(backends.enumerated().map { ($1.service, $0) }, uniquingKeysWith: { first, _ in first })
  }

  /// Builds the state for `services` from valid instances. Instances of other services are ignored.
  ///
  /// HAProxy checks every server of a backend with the same request, so each backend gets one check
  /// path, chosen so that it stays put (a change costs a reload):
  /// - an instance that names no path takes the service's and never changes it;
  /// - the path in `previous` stays as long as one instance still names it, or none names any;
  /// - otherwise the path most instances name wins (ties go to the smallest);
  /// - a service that never had a named path checks `/`.
  ///
  /// A path in the service's settings (``ServiceSettings/Check/path``) overrides all of that.
  public init(
    revision: Int64, services: [ServiceName], instances: [ServiceInstance], previous: DesiredState? = nil,
    settings: [ServiceName: ServiceSettings] = [:], lingering: Set<ServiceName> = []
  ) {
    let byService = Dictionary(grouping: instances, by: \.key.service)
    self.revision = revision
    routes = previous?.routes ?? .empty
    unavailablePorts = previous?.unavailablePorts ?? [:]
    backends = services.map { service in
      let members = byService[service] ?? []
      let previousBackend = previous?.backend(for: service)
      let serviceSettings = settings[service]
      var votes: [String: Int] = [:]
      for path in members.compactMap(\.registration.checkPath) { votes[path, default: 0] += 1 }
      let checkPath = Self.checkPath(
        configured: serviceSettings?.check?.path, previous: previousBackend?.checkPath, votes: votes)
      let balance = BackendPolicy.effectiveBalance(
        configured: serviceSettings?.balance ?? .roundrobin,
        weightSum: members.reduce(0) { $0 + ($1.registration.state == .up ? $1.registration.weight : 0) },
        previous: previousBackend?.balance)
      return DesiredBackend(
        service: service, checkPath: checkPath, servers: members.map(DesiredServer.init), settings: serviceSettings,
        balance: balance, isLingering: lingering.contains(service))
    }
    index = Self.index(backends)
  }

  /// This state at `revision` with the backends of `changed` built again from `instances` (the
  /// instances of those services; others are ignored), with the check-path rules of
  /// ``init(revision:services:instances:previous:settings:lingering:)`` against this state. The other
  /// backends stay as they are: a change costs work in proportion to the services it touches.
  ///
  /// - Parameters:
  ///   - serving: the services the node serves now, in order, when they changed; a service new to it is
  ///     built, one not in it is gone.
  ///   - settings: the settings of (at least) the changed and new services.
  ///   - lingering: the services that stay only because HAProxy runs them.
  public func updating(
    services changed: Set<ServiceName>, instances: [ServiceInstance], revision: Int64,
    serving: [ServiceName]? = nil, settings: [ServiceName: ServiceSettings] = [:], lingering: Set<ServiceName> = []
  ) -> DesiredState {
    let order = serving ?? backends.map(\.service)
    let rebuild = order.filter { changed.contains($0) || index[$0] == nil }
    let rebuilt = DesiredState(
      revision: revision, services: rebuild, instances: instances, previous: self, settings: settings,
      lingering: lingering)
    return DesiredState(
      revision: revision,
      backends: order.map { service in
        if let backend = rebuilt.backend(for: service) { return backend }
        // Unchanged, but it may have lost its last instance earlier and linger now, or no longer.
        let backend = backends[index[service]!]
        let lingers = lingering.contains(service)
        return backend.isLingering == lingers ? backend : backend.lingering(lingers)
      },
      routes: routes, unavailablePorts: unavailablePorts)
  }

  /// The check path of a backend by the rules of ``init(revision:services:instances:previous:settings:lingering:)``:
  /// the `configured` one (service settings); else the `previous` one while an instance still names it or
  /// none names any; else the path most instances name (`votes`: how many name each), ties to the smallest;
  /// else `/`.
  static func checkPath(configured: String?, previous: String?, votes: [String: Int]) -> String {
    if let configured { return configured }
    if let previous, votes.isEmpty || votes[previous, default: 0] > 0 { return previous }
    return votes.max { ($0.value, $1.key) < ($1.value, $0.key) }?.key ?? defaultCheckPath
  }

  /// The backend of `service`, if the node serves it.
  public func backend(for service: ServiceName) -> DesiredBackend? {
    index[service].map { backends[$0] }
  }

  /// Instances that named a check path other than their backend's, as `(backend, server, path)`.
  /// HAProxy cannot check them on their own path; the controller logs them. Instances that named
  /// none use the backend's path and are no conflict.
  public static func checkPathConflicts(
    in state: DesiredState,
    instances: [ServiceInstance]
  ) -> [(backend: String, server: String, path: String)] {
    instances.compactMap { instance in
      guard let backend = state.backend(for: instance.key.service), let path = instance.registration.checkPath else {
        return nil
      }
      return path == backend.checkPath ? nil : (backend.name, instance.key.instance.haproxyServerName, path)
    }
  }
}
