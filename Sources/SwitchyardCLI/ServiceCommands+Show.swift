import ArgumentParser
import EtcdClient
import Foundation
import SwitchyardModel
import SwitchyardReconcile

/// `switchyard service show NAME [--json]`.
struct ServiceShowCommand: OperatorCommand {
  static let configuration = CommandConfiguration(
    commandName: "show",
    abstract: "Show a service's settings in etcd, the values in force with the defaults filled in, its instances."
  )

  @Argument(help: "The service.") var name: String
  @Flag(help: "Print JSON.") var json = false
  @OptionGroup var etcd: EtcdOptions

  func validate() throws { _ = try serviceName(name) }

  /// The report, as text lines or one JSON document.
  func execute(client: EtcdClient) async throws -> [String] {
    let service = try serviceName(name)
    let settings = try await client.get(.key(ServiceSettings.path(for: service)))
    let registrations = try await client.getPaginated(
      .prefix(RegistrationKey.prefix(for: service)), options: GetOptions(revision: settings.header.revision))
    let report = ServiceReport(
      service: service, revision: settings.header.revision, settingsEntry: settings.kvs.first,
      registrationEntries: registrations.kvs, node: try nodeDefaults())
    return json ? [try operatorJSON(report.document)] : report.lines
  }
}

/// `switchyard service rm NAME`.
struct ServiceRemoveCommand: OperatorCommand {
  static let configuration = CommandConfiguration(
    commandName: "rm",
    abstract: "Remove a service's settings: the node's defaults apply again.",
    aliases: ["remove"]
  )

  @Argument(help: "The service.") var name: String
  @OptionGroup var etcd: EtcdOptions

  func validate() throws { _ = try serviceName(name) }

  /// Deletes the settings and says whether there were any.
  func execute(client: EtcdClient) async throws -> [String] {
    let service = try serviceName(name)
    let deleted = try await client.delete(.key(ServiceSettings.path(for: service)), prevKV: true)
    guard let previous = deleted.prevKVs.first else {
      return ["service \(service): had no settings; the node defaults apply (etcd revision \(deleted.header.revision))"]
    }
    return [
      "service \(service): settings removed at etcd revision \(deleted.header.revision); the node defaults apply",
      "  was \(settingsText(previous))",
    ]
  }
}

/// `switchyard service ls [--json]`.
struct ServiceListCommand: OperatorCommand {
  static let configuration = CommandConfiguration(
    commandName: "ls",
    abstract: "List the services with registrations or settings: instances, mode, port, balance.",
    aliases: ["list"]
  )

  @Flag(help: "Print JSON.") var json = false
  @OptionGroup var etcd: EtcdOptions

  /// The listing, as text lines or one JSON document.
  func execute(client: EtcdClient) async throws -> [String] {
    let registrations = try await client.getPaginated(.prefix(RegistrationKey.root))
    let settings = try await client.getPaginated(
      .prefix(ServiceSettings.root), options: GetOptions(revision: registrations.header.revision))
    let listing = ServiceListing(
      revision: registrations.header.revision, registrationEntries: registrations.kvs,
      settingsEntries: settings.kvs, node: try nodeDefaults())
    return json ? [try operatorJSON(listing.document)] : listing.lines
  }
}

/// A settings entry for a line of output: the settings as the model writes them, or why they are invalid
/// (never the raw value).
func settingsText(_ entry: KeyValue) -> String {
  do {
    return String(decoding: try ServiceSettings.parse(key: entry.key, value: entry.value).encoded(), as: UTF8.self)
  } catch {
    return "invalid (\(error.withoutKey))"
  }
}

/// `text` as a service name; errors name the argument.
func serviceName(_ text: String) throws -> ServiceName {
  do { return try ServiceName(validating: text) } catch { throw ValidationError("NAME: \(error.reason)") }
}

/// The settings of a node whose controller runs without --check-*, --server-timeout or --retries flags:
/// the defaults a service without settings gets. The addresses are placeholders; only the defaults are used.
func nodeDefaults() throws -> NodeSettings {
  do {
    return try NodeSettings(
      nodeID: "defaults", listen: HostPort(parsing: "127.0.0.1:8001"), stats: HostPort(parsing: "127.0.0.1:8401"),
      adminSocketPath: "/run/switchyard/admin.sock")
  } catch {
    throw OperatorError("the node defaults cannot be built: \(error)")
  }
}

/// One service as `service show` reports it: its settings in etcd, the values a node runs it with, its
/// instances. Pure once read.
struct ServiceReport: Sendable {
  /// What `service show --json` prints.
  struct Document: Sendable, Codable {
    /// The service.
    var service: String
    /// The etcd revision of the read.
    var revision: Int64
    /// Valid registrations.
    var instances: Int
    /// Entries under the service's prefix that are not valid registrations.
    var invalidRegistrations: Int
    /// The settings in etcd (compact JSON), when there are valid ones.
    var settings: String?
    /// Why the settings in etcd are invalid, when they are.
    var invalidSettings: String?
    /// Each setting's value in force, by id (`checkInterval`; durations as `2s`, `400ms`).
    var effective: [String: String]
    /// Where each value comes from: `etcd`, `default` or `registrations`.
    var sources: [String: String]
  }

  /// The service.
  let service: ServiceName
  /// The etcd revision of the read.
  let revision: Int64
  /// The settings entry as stored, if there is one.
  let entry: KeyValue?
  /// The settings, when the entry is valid.
  let settings: ServiceSettings?
  /// Why the entry is not valid settings.
  let problem: RegistrationError?
  /// The registrations.
  let registrations: RegistrationCounts
  /// The values in force, in the order a table shows them.
  let values: [Value]

  /// One setting in force.
  struct Value: Sendable, Hashable {
    /// Its key in `--json` (`checkInterval`).
    var id: String
    /// Its name in the table (`check interval`).
    var label: String
    /// `2s`, `leastconn`, `none`.
    var value: String
    /// `etcd`, `default` or `registrations`.
    var source: String
    /// More about the source, for the table: `the check timeout`.
    var note: String?
  }

  /// Builds the report from the settings entry and the entries under `/services/<service>/`.
  init(
    service: ServiceName, revision: Int64, settingsEntry: KeyValue?, registrationEntries: [KeyValue],
    node: NodeSettings
  ) {
    self.service = service
    self.revision = revision
    entry = settingsEntry
    var settings: ServiceSettings?
    var problem: RegistrationError?
    if let settingsEntry {
      do { settings = try ServiceSettings.parse(key: settingsEntry.key, value: settingsEntry.value) } catch {
        problem = error
      }
    }
    self.settings = settings
    self.problem = problem
    registrations = RegistrationCounts(registrationEntries)
    values = Self.values(
      service: service, settings: settings, instances: registrations.instances, revision: revision, node: node)
  }

  /// The values a node runs the service with, and where each comes from: the policy a controller builds
  /// (``BackendPolicy``) and the check path and balance its desired state picks (``DesiredState``).
  static func values(
    service: ServiceName, settings: ServiceSettings?, instances: [ServiceInstance], revision: Int64,
    node: NodeSettings
  ) -> [Value] {
    let policy = BackendPolicy(settings: settings, node: node)
    let desired = DesiredState(
      revision: revision, services: [service], instances: instances,
      settings: settings.map { [service: $0] } ?? [:]
    ).backend(for: service)
    let check = settings?.check
    func row(_ id: String, _ label: String, _ value: String, _ isSet: Bool, note: String? = nil) -> Value {
      Value(id: id, label: label, value: value, source: isSet ? "etcd" : "default", note: note)
    }
    func time(_ value: Duration) -> String { ServiceSettings.durationText(value) }
    var rows = [row("mode", "mode", policy.mode.rawValue, settings?.mode == .tcp)]
    if let port = policy.port { rows.append(row("port", "port", String(port), true)) }
    let balance = desired?.balance ?? policy.balance
    rows.append(
      row(
        "balance", "balance", balance.rawValue, settings?.balance != nil,
        note: balance == policy.balance
          ? nil : "roundrobin, run as random above a weight sum of \(BackendPolicy.roundRobinWeightLimit)"))
    rows.append(row("check", "check", policy.checkKind.rawValue, check != nil))
    if policy.checkKind == .http {
      var path = row("checkPath", "check path", desired?.checkPath ?? DesiredState.defaultCheckPath, check?.path != nil)
      if check?.path == nil && instances.contains(where: { $0.registration.checkPath != nil }) {
        path.source = "registrations"
      }
      rows.append(path)
    }
    rows += [
      row("checkInterval", "check interval", time(policy.healthCheck.interval), check?.interval != nil),
      row("checkTimeout", "check timeout", time(policy.healthCheck.timeout), check?.timeout != nil),
      row("rise", "rise", String(policy.healthCheck.rise), check?.rise != nil),
      row("fall", "fall", String(policy.healthCheck.fall), check?.fall != nil),
      row(
        "timeoutConnect", "timeout connect", time(policy.connectTimeout), settings?.timeoutConnect != nil,
        note: settings?.timeoutConnect == nil ? "the check timeout" : nil),
      row("timeoutServer", "timeout server", time(policy.serverTimeout), settings?.timeoutServer != nil),
      row("retries", "retries", String(policy.retries), settings?.retries != nil),
      row("maxconn", "maxconn", policy.maxconn.map(String.init) ?? "none", settings?.maxconn != nil),
    ]
    return rows
  }

  /// The report as `service show` prints it.
  var lines: [String] {
    let count = registrations.instances.count
    var lines = ["service \(service): \(count) instance\(count == 1 ? "" : "s") registered (etcd revision \(revision))"]
    let tls = registrations.instances.filter(\.registration.tls)
    if !tls.isEmpty {
      let names =
        tls.prefix(20).map { "\($0.key.instance)" + ($0.registration.tlsServerName.map { " (\($0))" } ?? "") }
        + (tls.count > 20 ? ["…"] : [])
      lines.append(
        "tls: \(tls.count) reached over TLS, verified against each node's --backend-ca: \(names.joined(separator: ", "))"
      )
    }
    let key = ServiceSettings.path(for: service)
    if let entry, let settings {
      lines.append(
        "settings: \(key) \(String(decoding: settings.encoded(), as: UTF8.self)) (revision \(entry.modRevision))")
    } else if let problem {
      lines.append(
        "settings: \(key) is invalid: \(problem.withoutKey); each node keeps the last valid settings it read "
          + "(the defaults if none); below are the defaults")
    } else {
      lines.append("settings: none; the node defaults apply")
    }
    lines.append("In force (defaults as a controller started without --check-*, --server-timeout, --retries):")
    let rows = values.map { [$0.label, $0.value, $0.source + ($0.note.map { " (\($0))" } ?? "")] }
    lines += alignedColumns([["SETTING", "VALUE", "FROM"]] + rows, indent: "  ")
    if !registrations.invalid.isEmpty {
      lines.append(
        "note: \(registrations.invalid.count) invalid entries under \(RegistrationKey.prefix(for: service)) are not counted:"
      )
      lines += registrations.invalid.prefix(20).map { "  \($0)" }
    }
    return lines
  }

  /// The report as `service show --json` prints it.
  var document: Document {
    Document(
      service: service.rawValue, revision: revision, instances: registrations.instances.count,
      invalidRegistrations: registrations.invalid.count,
      settings: settings.map { String(decoding: $0.encoded(), as: UTF8.self) },
      invalidSettings: problem?.withoutKey,
      effective: Dictionary(values.map { ($0.id, $0.value) }, uniquingKeysWith: { first, _ in first }),
      sources: Dictionary(values.map { ($0.id, $0.source) }, uniquingKeysWith: { first, _ in first }))
  }
}
