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

  /// Creates a server from a parsed instance.
  public init(_ instance: ServiceInstance) {
    name = instance.key.instance.haproxyServerName
    address = instance.registration.address
    port = instance.registration.port
    weight = instance.registration.weight
    state = instance.registration.state
    modRevision = instance.modRevision
  }

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

  /// The HAProxy backend name, `svc_<service>`.
  public var name: String { service.haproxyBackendName }

  /// Creates a backend. Servers are sorted by name.
  public init(service: ServiceName, checkPath: String, servers: [DesiredServer]) {
    self.service = service
    self.checkPath = checkPath
    self.servers = servers.sorted()
  }
}

/// Everything one node should serve, read from etcd at one revision.
public struct DesiredState: Sendable, Hashable {
  /// The etcd revision the state was read at.
  public let revision: Int64
  /// One backend per configured service, in the node's order.
  public let backends: [DesiredBackend]

  /// The health-check path used when a service has no instance that names one: `/`, as in the original.
  public static let defaultCheckPath = "/"

  /// Creates a state directly (for tests and tools).
  public init(revision: Int64, backends: [DesiredBackend]) {
    self.revision = revision
    self.backends = backends
  }

  /// Builds the state for `services` from valid instances. Instances of other services are ignored.
  ///
  /// HAProxy checks every server of a backend with the same request, so each backend gets one check
  /// path, chosen so that it stays put (a change costs a reload):
  /// - an instance that names no path takes the service's and never changes it;
  /// - the path in `previous` stays as long as one instance still names it, or none names any;
  /// - otherwise the path most instances name wins (ties go to the smallest);
  /// - a service that never had a named path checks `/`.
  public init(revision: Int64, services: [ServiceName], instances: [ServiceInstance], previous: DesiredState? = nil) {
    let byService = Dictionary(grouping: instances, by: \.key.service)
    self.revision = revision
    backends = services.map { service in
      let members = byService[service] ?? []
      let previousPath = previous?.backend(for: service)?.checkPath
      let named = members.compactMap(\.registration.checkPath)
      let checkPath: String
      if let previousPath, named.isEmpty || named.contains(previousPath) {
        checkPath = previousPath
      } else if named.isEmpty {
        checkPath = Self.defaultCheckPath
      } else {
        var votes: [String: Int] = [:]
        for path in named { votes[path, default: 0] += 1 }
        checkPath = votes.max { ($0.value, $1.key) < ($1.value, $0.key) }?.key ?? Self.defaultCheckPath
      }
      return DesiredBackend(service: service, checkPath: checkPath, servers: members.map(DesiredServer.init))
    }
  }

  /// This state at `revision` with the backends of `changed` built again from `instances` (the
  /// instances of those services; others are ignored), with the check-path rules of
  /// ``init(revision:services:instances:previous:)`` against this state. The other backends stay as they
  /// are: a change costs work in proportion to the services it touches.
  public func updating(services changed: Set<ServiceName>, instances: [ServiceInstance], revision: Int64)
    -> DesiredState
  {
    let rebuilt = DesiredState(
      revision: revision,
      services: backends.map(\.service).filter(changed.contains),
      instances: instances,
      previous: self
    )
    let byService = Dictionary(rebuilt.backends.map { ($0.service, $0) }, uniquingKeysWith: { first, _ in first })
    return DesiredState(revision: revision, backends: backends.map { byService[$0.service] ?? $0 })
  }

  /// The backend of `service`, if the node serves it.
  public func backend(for service: ServiceName) -> DesiredBackend? {
    backends.first { $0.service == service }
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
