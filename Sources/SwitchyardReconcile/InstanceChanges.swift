import SwitchyardModel

/// Which instances of each service changed since a pass last took them: what lets a pass over a service
/// of 10,000 instances rebuild, plan and publish the one that changed instead of all of them.
///
/// A registration or an override names its instance; anything else that changes a service (its settings)
/// marks the service as changed as a whole, and a pass builds its backend again from every instance.
public struct InstanceChanges: Sendable, Hashable {
  /// What changed in one service.
  public enum Scope: Sendable, Hashable {
    /// These instances (registrations or their overrides) changed; nothing else did.
    case instances(Set<InstanceID>)
    /// Something every instance depends on changed (the service's settings): build it again whole.
    case whole
  }

  private var byService: [ServiceName: Scope] = [:]

  /// Creates an empty set of changes.
  public init() {}

  /// The services with changes.
  public var services: Set<ServiceName> { Set(byService.keys) }

  /// Whether nothing changed.
  public var isEmpty: Bool { byService.isEmpty }

  /// What changed in `service`, if anything.
  public subscript(service: ServiceName) -> Scope? { byService[service] }

  /// The registration or the override of `key` changed.
  public mutating func record(_ key: RegistrationKey) {
    switch byService[key.service] {
    case .whole: break
    case .instances(var ids):
      byService[key.service] = nil
      ids.insert(key.instance)
      byService[key.service] = .instances(ids)
    case nil: byService[key.service] = .instances([key.instance])
    }
  }

  /// Something every instance of `service` depends on changed.
  public mutating func recordWhole(_ service: ServiceName) {
    byService[service] = .whole
  }

  /// Adds the changes of `other`.
  public mutating func formUnion(_ other: InstanceChanges) {
    for (service, scope) in other.byService {
      switch scope {
      case .whole: recordWhole(service)
      case .instances(let ids):
        for id in ids { record(RegistrationKey(service: service, instance: id)) }
      }
    }
  }

  /// Takes the changes of `services` out: a pass handles them, and what changes after this is left for
  /// the next. A service with no change recorded is absent from the result.
  public mutating func take(_ services: some Sequence<ServiceName>) -> [ServiceName: Scope] {
    var taken: [ServiceName: Scope] = [:]
    for service in services {
      if let scope = byService.removeValue(forKey: service) { taken[service] = scope }
    }
    return taken
  }

  /// Forgets everything: a full read covers it.
  public mutating func removeAll() {
    byService.removeAll()
  }
}

/// What a service's backend depends on beyond its servers, summed over its served instances (each in the
/// stricter of its registered state and its override's), so that a change of one instance updates it
/// without a look at the others: how many instances there are, the weight of those that are up (which
/// chooses between round robin and `random`), and how many name each health-check path.
public struct ServiceAggregate: Sendable, Hashable {
  /// Valid instances.
  public var count = 0
  /// The sum of the weights of the instances whose state is `up`.
  public var upWeight = 0
  /// How many instances name each check path; instances that name none are not counted.
  public var checkPaths: [String: Int] = [:]

  /// An empty aggregate.
  public init() {}

  /// The aggregate of `instances`.
  public init(_ instances: some Sequence<ServiceInstance>) {
    for instance in instances { add(instance) }
  }

  /// Counts `instance` in.
  public mutating func add(_ instance: ServiceInstance) {
    count += 1
    if instance.registration.state == .up { upWeight += instance.registration.weight }
    if let path = instance.registration.checkPath { checkPaths[path, default: 0] += 1 }
  }

  /// Counts `instance` out (it was counted in before).
  public mutating func remove(_ instance: ServiceInstance) {
    count -= 1
    if instance.registration.state == .up { upWeight -= instance.registration.weight }
    if let path = instance.registration.checkPath {
      let left = (checkPaths[path] ?? 0) - 1
      checkPaths[path] = left > 0 ? left : nil
    }
  }
}
