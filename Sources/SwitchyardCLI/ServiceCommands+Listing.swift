import EtcdClient
import SwitchyardModel
import SwitchyardReconcile

/// The services as `switchyard service ls` shows them: every service with registrations or settings, its
/// instance count and how it is served, and the entries that are not valid. Pure once read.
struct ServiceListing: Sendable {
  /// One service, as `service ls --json` prints it.
  struct Item: Sendable, Hashable, Codable {
    /// The service.
    var name: String
    /// Valid registrations.
    var instances: Int
    /// How many of them load balancers reach over TLS; absent when none.
    var tlsInstances: Int?
    /// `http` or `tcp`.
    var mode: String
    /// The port of a tcp service.
    var port: Int?
    /// The algorithm a node runs it with.
    var balance: String
    /// `etcd` (valid settings), `defaults` (none) or `invalid`.
    var settings: String
  }

  /// An entry that is not valid.
  typealias Invalid = NodeSnapshot.InvalidEntry

  /// What `service ls --json` prints.
  struct Document: Sendable, Codable {
    /// The etcd revision of the read.
    var revision: Int64
    /// The services, by name.
    var services: [Item]
    /// Entries under `/switchyard/services/` that are not valid settings.
    var invalidSettings: [Invalid]
    /// Entries under `/services/` that are not valid registrations.
    var invalidRegistrations: [Invalid]
  }

  /// At most this many invalid entries of each kind are printed as text.
  static let maxInvalidListed = 20

  /// The etcd revision of the read.
  let revision: Int64
  /// The services, by name.
  let items: [Item]
  /// Entries that are not valid settings.
  let invalidSettings: [RegistrationError]
  /// Entries that are not valid registrations.
  let invalidRegistrations: [RegistrationError]

  /// Builds the listing from the entries under `/services/` and `/switchyard/services/`.
  init(revision: Int64, registrationEntries: [KeyValue], settingsEntries: [KeyValue], node: NodeSettings) {
    let registrations = RegistrationCounts(registrationEntries)
    var settings: [ServiceName: ServiceSettings] = [:]
    var invalid: [RegistrationError] = []
    var invalidServices: Set<ServiceName> = []
    for entry in settingsEntries {
      do {
        let parsed = try ServiceSettings.parse(key: entry.key, value: entry.value)
        settings[parsed.service] = parsed
      } catch {
        invalid.append(error)
        // A valid key with an invalid value still names its service.
        let segment = String(decoding: entry.key.dropFirst(ServiceSettings.root.utf8.count), as: UTF8.self)
        if entry.key.starts(with: ServiceSettings.root.utf8), let service = try? ServiceName(validating: segment) {
          invalidServices.insert(service)
        }
      }
    }
    let services = Set(registrations.byService.keys).union(settings.keys).union(invalidServices).sorted()
    let desired = DesiredState(
      revision: revision, services: services, instances: registrations.instances, settings: settings)
    var tlsCounts: [ServiceName: Int] = [:]
    for instance in registrations.instances where instance.registration.tls {
      tlsCounts[instance.key.service, default: 0] += 1
    }
    items = services.map { service in
      let policy = BackendPolicy(settings: settings[service], node: node)
      return Item(
        name: service.rawValue, instances: registrations.byService[service] ?? 0, tlsInstances: tlsCounts[service],
        mode: policy.mode.rawValue,
        port: policy.port, balance: (desired.backend(for: service)?.balance ?? policy.balance).rawValue,
        settings: settings[service] != nil ? "etcd" : invalidServices.contains(service) ? "invalid" : "defaults")
    }
    self.revision = revision
    invalidSettings = invalid.sorted { ($0.key ?? "") < ($1.key ?? "") }
    invalidRegistrations = registrations.invalid
  }

  /// The listing as `service ls --json` prints it.
  var document: Document {
    func listed(_ errors: [RegistrationError]) -> [Invalid] {
      errors.map { Invalid(key: $0.escapedKey ?? "", reason: $0.withoutKey) }
    }
    return Document(
      revision: revision, services: items, invalidSettings: listed(invalidSettings),
      invalidRegistrations: listed(invalidRegistrations))
  }

  /// The listing as `service ls` prints it: a table by name, then the invalid entries (escaped).
  var lines: [String] {
    var lines: [String] = []
    if items.isEmpty {
      lines.append("No services in etcd (revision \(revision)): nothing is registered and nothing is configured.")
    } else {
      lines.append("Services in etcd (revision \(revision)):")
      var rows = [["SERVICE", "INSTANCES", "MODE", "PORT", "BALANCE", "SETTINGS"]]
      for item in items {
        rows.append([
          item.name, String(item.instances) + (item.tlsInstances.map { " (\($0) tls)" } ?? ""), item.mode,
          item.port.map(String.init) ?? "-", item.balance,
          item.settings,
        ])
      }
      lines += alignedColumns(rows)
    }
    for (title, errors) in [
      ("Invalid settings (each node keeps the last valid settings it read)", invalidSettings),
      ("Invalid registrations (skipped by the controllers)", invalidRegistrations),
    ] where !errors.isEmpty {
      lines.append("")
      lines.append("\(title): \(errors.count)")
      lines += errors.prefix(Self.maxInvalidListed).map { "  \($0.escapedKey ?? "?"): \($0.withoutKey)" }
      if errors.count > Self.maxInvalidListed { lines.append("  … and \(errors.count - Self.maxInvalidListed) more") }
    }
    return lines
  }
}
