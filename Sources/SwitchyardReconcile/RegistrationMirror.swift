import SwitchyardModel

/// The registrations under the prefix as of one etcd revision, kept current from watch events so that a
/// change costs work in proportion to what changed, not to the fleet.
///
/// It starts from a full read at one revision; each watch event after that revision replaces or
/// removes one entry, parsed once when it arrives. ``apply(_:)`` names the services whose instances
/// changed, so a pass can rebuild, observe and plan only their backends. A full read (the periodic and
/// post-failure safety net) builds a new mirror, and the events that arrived while it read are applied
/// on top of it (``ChangeLog``).
public struct RegistrationMirror: Sendable {
  /// One watch event, as the mirror needs it.
  public struct Change: Sendable, Hashable {
    /// The key.
    public var key: [UInt8]
    /// The new value; `nil` for a delete.
    public var value: [UInt8]?
    /// The revision of the change.
    public var modRevision: Int64

    /// Creates a change.
    public init(key: [UInt8], value: [UInt8]?, modRevision: Int64) {
      self.key = key
      self.value = value
      self.modRevision = modRevision
    }
  }

  private enum Entry: Sendable {
    case valid(ServiceInstance)
    case override(InstanceOverride)
    case invalid(RegistrationError)
  }

  private static let overrideRoot = Array(InstanceOverride.root.utf8)
  /// The load-balancer nodes' records: read and watched so that ``revision`` follows their writes, and
  /// otherwise ignored (they change nothing a node runs).
  private static let nodeRoot = Array(NodeRecord.root.utf8)
  private static let routeRoot = Array(Route.root.utf8)
  private static let settingsRoot = Array(ServiceSettings.root.utf8)

  /// The revision of the full read the mirror started from: changes at or before it are in it already.
  public let baseRevision: Int64
  /// The newest revision the mirror reflects.
  public private(set) var revision: Int64
  /// The newest revision of a change to the mirrored keys: the highest modification revision of the entries
  /// a full read found, and of every change applied since (deletes included). Unlike ``revision``, which a
  /// full read sets to etcd's revision, writes to keys outside the mirrored keyspaces (and the nodes' own
  /// records under `/switchyard/nodes/`) never move it.
  public private(set) var newestChange: Int64 = 0
  private var entries: [[UInt8]: Entry] = [:]
  private var byService: [ServiceName: [[UInt8]: ServiceInstance]] = [:]
  private var invalidEntries: [[UInt8]: RegistrationError] = [:] {
    didSet { invalidGeneration &+= 1 }
  }
  /// Changes whenever the invalid entries change, so that a reader can skip listing them when they did not.
  public private(set) var invalidGeneration = 0
  /// Overrides by service, then instance: a service without any costs its instances no lookup.
  private var overridesByService: [ServiceName: [RegistrationKey: InstanceOverride]] = [:]
  /// The routes in force, by key. An invalid value leaves the last valid route of its key in force.
  private var routesByKey: [[UInt8]: Route] = [:] {
    didSet { routesGeneration &+= 1 }
  }
  /// Changes whenever the routes in force change, so that a pass rebuilds the route table only then.
  public private(set) var routesGeneration = 0
  /// The service settings in force. An invalid value leaves the last valid settings of its service in force.
  private var settingsByService: [ServiceName: ServiceSettings] = [:]
  /// What each service's backend depends on beyond its servers (``aggregate(of:)``).
  private var aggregates: [ServiceName: ServiceAggregate] = [:]
  /// Whether the node can verify backends that ask for TLS (it has ``NodeSettings/backendCAPath``). When
  /// not, their registrations are not served: they are listed with ``invalid`` (code `.notServed`), never
  /// served unverified.
  public let servesTLS: Bool

  /// Builds the mirror from a full read at `revision`; `servesTLS`: see ``servesTLS``.
  public init(
    revision: Int64, entries kvs: [(key: [UInt8], value: [UInt8], modRevision: Int64)], servesTLS: Bool = false
  ) {
    baseRevision = revision
    self.revision = revision
    self.servesTLS = servesTLS
    let served = kvs.filter { !$0.key.starts(with: Self.nodeRoot) }
    newestChange = served.map(\.modRevision).max() ?? 0
    for kv in served where applyPolicy(Change(key: kv.key, value: kv.value, modRevision: kv.modRevision)) == nil {
      set(kv.key, value: kv.value, modRevision: kv.modRevision)
    }
  }

  /// Applies watch events in order. Events at or before ``baseRevision`` are already in the mirror and
  /// are skipped. Returns the services whose valid instances changed.
  @discardableResult
  public mutating func apply(_ changes: some Sequence<Change>) -> Set<ServiceName> {
    applyTracking(changes).services
  }

  /// Applies watch events as ``apply(_:)`` does, and returns which instances of which services changed: a
  /// registration or an override names its instance, new settings mark their service as a whole.
  public mutating func applyTracking(_ changes: some Sequence<Change>) -> InstanceChanges {
    var touched = InstanceChanges()
    for change in changes where change.modRevision > baseRevision {
      revision = max(revision, change.modRevision)
      if change.key.starts(with: Self.nodeRoot) { continue }
      newestChange = max(newestChange, change.modRevision)
      if let services = applyPolicy(change) {
        for service in services { touched.recordWhole(service) }
        continue
      }
      switch entries[change.key] {
      case .valid(let old): touched.record(old.key)
      case .override(let old): touched.record(old.instance)
      case .invalid, nil: break
      }
      if let value = change.value {
        if let key = set(change.key, value: value, modRevision: change.modRevision) { touched.record(key) }
      } else {
        remove(change.key)
      }
    }
    return touched
  }

  /// Keeps in force the routes and settings of `previous` (an older mirror) whose keys hold an invalid
  /// value here: a full read knows only the bad value, and the last valid one must stay in force.
  public mutating func keepLastValid(from previous: RegistrationMirror) {
    for key in invalidEntries.keys {
      if key.starts(with: Self.routeRoot), routesByKey[key] == nil, let route = previous.routesByKey[key] {
        routesByKey[key] = route
      } else if key.starts(with: Self.settingsRoot), let service = settingsService(key),
        settingsByService[service] == nil, let settings = previous.settingsByService[service]
      {
        settingsByService[service] = settings
      }
    }
  }

  /// Applies a change under the routes' or the settings' keyspace; `nil` when the key is in neither.
  /// Returns the service whose settings changed (none for a route: ``routesGeneration`` moves).
  private mutating func applyPolicy(_ change: Change) -> Set<ServiceName>? {
    if change.key.starts(with: Self.routeRoot) {
      if let value = change.value {
        setRoute(change.key, value: value, modRevision: change.modRevision)
      } else {
        invalidEntries[change.key] = nil
        routesByKey[change.key] = nil
      }
      return []
    }
    if change.key.starts(with: Self.settingsRoot) {
      if let value = change.value {
        return setSettings(change.key, value: value, modRevision: change.modRevision).map { [$0] } ?? []
      }
      invalidEntries[change.key] = nil
      guard let service = settingsService(change.key) else { return [] }
      return settingsByService.removeValue(forKey: service) == nil ? [] : [service]
    }
    return nil
  }

  private mutating func setRoute(_ key: [UInt8], value: [UInt8], modRevision: Int64) {
    do {
      let route = try Route.parse(key: key, value: value, modRevision: modRevision)
      if invalidEntries[key] != nil { invalidEntries[key] = nil }
      if routesByKey[key] != route { routesByKey[key] = route }
    } catch {
      invalidEntries[key] = error
    }
  }

  /// Stores settings; returns their service when those in force changed.
  private mutating func setSettings(_ key: [UInt8], value: [UInt8], modRevision: Int64) -> ServiceName? {
    do {
      let settings = try ServiceSettings.parse(key: key, value: value, modRevision: modRevision)
      if invalidEntries[key] != nil { invalidEntries[key] = nil }
      let old = settingsByService.updateValue(settings, forKey: settings.service)
      // A new revision of the same settings changes nothing HAProxy runs.
      return old.map { $0.sameSettings(as: settings) } == true ? nil : settings.service
    } catch {
      invalidEntries[key] = error
      return nil
    }
  }

  /// The service of a settings key, when it names a valid one.
  private func settingsService(_ key: [UInt8]) -> ServiceName? {
    guard let text = String(validating: key.dropFirst(Self.settingsRoot.count), as: UTF8.self) else { return nil }
    return try? ServiceName(validating: text)
  }

  /// The routes in force, by name.
  public var routes: [Route] { routesByKey.values.sorted { $0.name < $1.name } }

  /// The settings in force, by service.
  public var settings: [ServiceName: ServiceSettings] { settingsByService }

  /// The services with at least one valid instance.
  public var registeredServices: Set<ServiceName> { Set(byService.keys) }

  /// The instance of `key` as it is served (in the stricter of its registered state and its override's),
  /// if it is registered and valid.
  public func instance(_ key: RegistrationKey) -> ServiceInstance? {
    guard let instance = byService[key.service]?[Array(key.path.utf8)] else { return nil }
    return instance.applying(overridesByService[key.service]?[key])
  }

  /// What the backend of `service` depends on beyond its servers, over its served instances: kept current
  /// with every change, so reading it costs nothing in proportion to the service.
  public func aggregate(of service: ServiceName) -> ServiceAggregate {
    aggregates[service] ?? ServiceAggregate()
  }

  /// The valid instances of `service`, in key order, each in the stricter of its registered state and
  /// its override's.
  public func instances(of service: ServiceName) -> [ServiceInstance] {
    served(service).sorted { $0.key < $1.key }
  }

  /// Every valid instance, in key order, with overrides applied as in ``instances(of:)``.
  public var instances: [ServiceInstance] {
    byService.keys.flatMap(served).sorted { $0.key < $1.key }
  }

  /// The instances of `service` as they are served, in no order: a service without overrides costs
  /// its instances no lookup.
  private func served(_ service: ServiceName) -> [ServiceInstance] {
    let instances = (byService[service] ?? [:]).values
    guard let overrides = overridesByService[service] else { return Array(instances) }
    return instances.map { $0.applying(overrides[$0.key]) }
  }

  /// Every valid override, in key order, whether or not its instance is registered.
  public var overrides: [InstanceOverride] {
    overridesByService.values.flatMap(\.values).sorted { $0.instance < $1.instance }
  }

  /// One error per invalid entry, sorted by key, then description.
  public var invalid: [RegistrationError] {
    invalidEntries.values.sorted { ($0.key ?? "", $0.description) < ($1.key ?? "", $1.description) }
  }

  /// How many entries the mirror holds, valid or not.
  public var count: Int { entries.count + routesByKey.count + settingsByService.count }

  /// Stores one entry; returns the instance it registers or overrides when it is valid.
  @discardableResult
  private mutating func set(_ key: [UInt8], value: [UInt8], modRevision: Int64) -> RegistrationKey? {
    remove(key)
    if key.starts(with: Self.overrideRoot) {
      do {
        let override = try InstanceOverride.parse(key: key, value: value, modRevision: modRevision)
        entries[key] = .override(override)
        uncount(override.instance)
        overridesByService[override.instance.service, default: [:]][override.instance] = override
        count(override.instance)
        return override.instance
      } catch {
        entries[key] = .invalid(error)
        invalidEntries[key] = error
        return nil
      }
    }
    do throws(RegistrationError) {
      let instance = try ServiceInstance.parse(key: key, value: value, modRevision: modRevision)
      if instance.registration.tls, !servesTLS {
        throw RegistrationError(
          code: .notServed, key: instance.key.path, field: "tls",
          reason: "instance \(instance.key.instance) asks for TLS but this node has no --backend-ca")
      }
      entries[key] = .valid(instance)
      byService[instance.key.service, default: [:]][key] = instance
      count(instance.key)
      return instance.key
    } catch {
      entries[key] = .invalid(error)
      invalidEntries[key] = error
      return nil
    }
  }

  private mutating func remove(_ key: [UInt8]) {
    switch entries.removeValue(forKey: key) {
    case .valid(let instance):
      uncount(instance.key)
      byService[instance.key.service]?[key] = nil
      if byService[instance.key.service]?.isEmpty == true { byService[instance.key.service] = nil }
    case .override(let override):
      uncount(override.instance)
      overridesByService[override.instance.service]?[override.instance] = nil
      if overridesByService[override.instance.service]?.isEmpty == true {
        overridesByService[override.instance.service] = nil
      }
      count(override.instance)
    case .invalid:
      invalidEntries[key] = nil
    case nil:
      break
    }
  }

  /// Counts the served instance of `key` into its service's aggregate; ``uncount(_:)`` before a change to
  /// its registration or override, this after.
  private mutating func count(_ key: RegistrationKey) {
    guard let instance = instance(key) else { return }
    aggregates[key.service, default: ServiceAggregate()].add(instance)
  }

  /// Counts the served instance of `key` out of its service's aggregate.
  private mutating func uncount(_ key: RegistrationKey) {
    guard let instance = instance(key), var aggregate = aggregates.removeValue(forKey: key.service) else { return }
    aggregate.remove(instance)
    if aggregate.count > 0 { aggregates[key.service] = aggregate }
  }
}

/// The watch events that arrive while a full read is in flight: the read may be older than some of
/// them, so they are applied again on top of the mirror it builds.
public struct ChangeLog: Sendable {
  private var recording = false
  private var changes: [RegistrationMirror.Change] = []

  /// Creates an idle log.
  public init() {}

  /// Starts recording, forgetting what was recorded before: call it just before a full read is sent.
  public mutating func start() {
    recording = true
    changes = []
  }

  /// Records `changes` when a read is in flight.
  public mutating func record(_ new: some Sequence<RegistrationMirror.Change>) {
    if recording { changes.append(contentsOf: new) }
  }

  /// Stops recording and returns what was recorded.
  public mutating func finish() -> [RegistrationMirror.Change] {
    defer {
      recording = false
      changes = []
    }
    return changes
  }
}

extension ServiceSettings {
  /// Whether `other` sets the same as these, whatever their revisions.
  func sameSettings(as other: ServiceSettings) -> Bool {
    var copy = other
    copy.modRevision = modRevision
    return copy == self
  }
}
