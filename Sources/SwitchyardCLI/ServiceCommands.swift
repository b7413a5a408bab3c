import ArgumentParser
import EtcdClient
import Foundation
import SwitchyardModel
import SwitchyardReconcile

/// `switchyard service …`: how each service is served, `/switchyard/services/<service>`.
struct ServiceCommand: AsyncParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "service",
    abstract: "Show and change per-service settings in etcd (/switchyard/services/<service>).",
    discussion: """
      Balance algorithm, health check, timeouts, retries, maxconn, and mode: http behind the routes, or tcp \
      on a port of its own at every node. A setting left out is the node's default, which is how services \
      were served before settings existed. Plain etcdctl works too: the value is JSON, \
      {"balance":"leastconn","check":{"interval":"2s","type":"tcp"},"mode":"tcp","port":6379}.
      """,
    subcommands: [
      ServiceSetCommand.self, ServiceShowCommand.self, ServiceRemoveCommand.self, ServiceListCommand.self,
    ]
  )
}

/// `switchyard service set NAME [--balance ALGO] [--check-path PATH | --check-tcp] …`.
struct ServiceSetCommand: OperatorCommand {
  static let configuration = CommandConfiguration(
    commandName: "set",
    abstract: "Change some settings of a service; the others stay as they are.",
    discussion: """
      Reads the settings in etcd, changes what the flags give, validates the result and writes it only if \
      nobody changed the key in between (otherwise nothing is written: run it again). Durations are \
      written 250ms, 2s or 1m (a bare number is seconds). --reset starts from the defaults instead.
      """
  )

  /// A setting `--unset` can remove, so that the node's default applies again.
  enum Setting: String, CaseIterable {
    case balance, check
    case checkPath = "check-path"
    case checkInterval = "check-interval"
    case checkTimeout = "check-timeout"
    case rise, fall
    case timeoutConnect = "timeout-connect"
    case timeoutServer = "timeout-server"
    case retries, maxconn
  }

  @Argument(help: "The service: letters, digits, -, _ and . (its key is /switchyard/services/<service>).")
  var name: String
  @Option(help: "roundrobin, leastconn, random or source.") var balance: String?
  @Option(name: .customLong("check-path"), help: "An HTTP health check of this path (GET, 2xx or 3xx is up).")
  var checkPath: String?
  @Flag(name: .customLong("check-tcp"), help: "A TCP health check: the server is up when it accepts a connection.")
  var checkTCP = false
  @Option(name: .customLong("check-interval"), help: "Time between two checks of a server (e.g. 2s).")
  var checkInterval: String?
  @Option(name: .customLong("check-timeout"), help: "How long a check may take; at most the interval.")
  var checkTimeout: String?
  @Option(help: "Good checks in a row that bring a server up (1–100).") var rise: Int?
  @Option(help: "Failed checks in a row that take a server down (1–100).") var fall: Int?
  @Option(name: .customLong("timeout-connect"), help: "How long a connection to a server may take to open.")
  var timeoutConnect: String?
  @Option(name: .customLong("timeout-server"), help: "How long a server may stay silent while it answers.")
  var timeoutServer: String?
  @Option(help: "How often a failed connection is tried again (0–10).") var retries: Int?
  @Option(help: "Most concurrent connections per server (1–100000); more wait in HAProxy's queue.") var maxconn: Int?
  @Option(help: "http (behind the routes) or tcp (on --port at every node).") var mode: String?
  @Option(help: "The port a tcp service listens on at every node.") var port: Int?
  @Option(
    name: .customLong("unset"),
    help: ArgumentHelp(
      "Remove a setting so that the node's default applies; repeat for more.",
      discussion: "One of \(Setting.allCases.map(\.rawValue).joined(separator: ", ")).",
      valueName: "setting"))
  var unset: [String] = []
  @Flag(help: "Start from the defaults instead of the settings in etcd (also replaces invalid settings).")
  var reset = false
  @OptionGroup var etcd: EtcdOptions

  func validate() throws {
    _ = try serviceName()
    // The flags on their own: every check that does not depend on the settings in etcd.
    _ = try merged(into: nil, lenient: !reset)
  }

  /// The service, validated.
  func serviceName() throws -> ServiceName {
    do { return try ServiceName(validating: name) } catch { throw ValidationError("NAME: \(error.reason)") }
  }

  /// `text` as a duration: `250ms`, `2s`, `1m`, or a bare number of seconds.
  static func duration(_ text: String?, flag: String) throws -> Duration? {
    guard let text else { return nil }
    if let duration = ServiceSettings.parseDuration(text) ?? ServiceSettings.parseDuration(text + "s") {
      return duration
    }
    throw ValidationError(
      "\(flag): \"\(RegistrationError.escape(text, limit: 32))\" is not a duration like 250ms, 2s or 1m")
  }

  /// `text` as one of `Choice`'s raw values.
  static func choice<Choice: RawRepresentable & CaseIterable>(
    _ text: String?, flag: String
  ) throws -> Choice? where Choice.RawValue == String {
    guard let text else { return nil }
    guard let choice = Choice(rawValue: text) else {
      let list = Choice.allCases.map(\.rawValue).joined(separator: ", ")
      throw ValidationError("\(flag): \"\(RegistrationError.escape(text, limit: 32))\" is not one of \(list)")
    }
    return choice
  }

  /// The flag that sets a field of ``ServiceSettings`` as its errors name it (`check.interval`).
  static func flag(of field: String?) -> String {
    switch field {
    case "port": "--port"
    case "mode": "--mode"
    case "balance": "--balance"
    case "check.path": "--check-path"
    case "check.interval": "--check-interval"
    case "check.timeout": "--check-timeout"
    case "check.rise": "--rise"
    case "check.fall": "--fall"
    case "timeout_connect": "--timeout-connect"
    case "timeout_server": "--timeout-server"
    case "retries": "--retries"
    case "maxconn": "--maxconn"
    default: field ?? "the settings"
    }
  }

  /// Whether the flag of `field` was given.
  private func gave(_ field: String?) -> Bool {
    switch field {
    case "port": port != nil
    case "mode": mode != nil
    case "balance": balance != nil
    case "check.path": checkPath != nil
    case "check.interval": checkInterval != nil
    case "check.timeout": checkTimeout != nil
    case "check.rise": rise != nil
    case "check.fall": fall != nil
    case "timeout_connect": timeoutConnect != nil
    case "timeout_server": timeoutServer != nil
    case "retries": retries != nil
    case "maxconn": maxconn != nil
    default: false
    }
  }

  /// The settings to write: `current` (or the defaults, with `--reset` or when there are none) with the
  /// flags applied, validated by the model. Errors name the flag.
  ///
  /// `lenient` checks the flags alone, before the settings in etcd are known: a port or a tcp mode that
  /// the settings in etcd may complete is not refused.
  func merged(into current: ServiceSettings?, lenient: Bool = false) throws -> ServiceSettings {
    let service = try serviceName()
    let balance: ServiceSettings.Balance? = try Self.choice(balance, flag: "--balance")
    let mode: ServiceSettings.Mode? = try Self.choice(mode, flag: "--mode")
    let unset = try Set(unset.compactMap { text -> Setting? in try Self.choice(text, flag: "--unset") })
    let checkInterval = try Self.duration(checkInterval, flag: "--check-interval")
    let checkTimeout = try Self.duration(checkTimeout, flag: "--check-timeout")
    let timeoutConnect = try Self.duration(timeoutConnect, flag: "--timeout-connect")
    let timeoutServer = try Self.duration(timeoutServer, flag: "--timeout-server")
    try checkCombinations(unset: unset, mode: mode)

    var settings: ServiceSettings
    if let current, !reset {
      settings = current
    } else {
      // No field is set, so the defaults are always valid.
      do { settings = try ServiceSettings(service: service) } catch { throw ValidationError("NAME: \(error.reason)") }
    }
    for setting in unset { Self.remove(setting, from: &settings) }
    if let balance { settings.balance = balance }
    if let mode {
      settings.mode = mode
      if mode == .http { settings.port = nil }
    }
    if let port {
      guard settings.mode == .tcp || lenient else {
        throw ValidationError("--port: only a tcp service has a port of its own; give --mode tcp too")
      }
      settings.mode = .tcp
      settings.port = port
    }
    if settings.mode == .tcp && settings.port == nil {
      guard lenient else { throw ValidationError("--mode tcp: a tcp service needs a port; give --port PORT") }
      settings.port = ServiceSettings.portRange.lowerBound
    }
    if checkTCP || checkPath != nil || checkInterval != nil || checkTimeout != nil || rise != nil || fall != nil {
      var check = settings.check ?? ServiceSettings.Check()
      if checkTCP {
        check.kind = .tcp
        check.path = nil
      }
      if let checkPath {
        check.kind = .http
        check.path = checkPath
      }
      check.interval = checkInterval ?? check.interval
      check.timeout = checkTimeout ?? check.timeout
      check.rise = rise ?? check.rise
      check.fall = fall ?? check.fall
      settings.check = check
    }
    settings.timeoutConnect = timeoutConnect ?? settings.timeoutConnect
    settings.timeoutServer = timeoutServer ?? settings.timeoutServer
    settings.retries = retries ?? settings.retries
    settings.maxconn = maxconn ?? settings.maxconn
    if settings.check == ServiceSettings.Check() { settings.check = nil }
    do { try settings.validate() } catch {
      let flag = Self.flag(of: error.field)
      let origin = gave(error.field) ? "" : " (the value in etcd; change it with \(flag) or --unset)"
      throw ValidationError("\(flag): \(error.reason)\(origin)")
    }
    return settings
  }

  /// Refuses flags that contradict each other, and a command that changes nothing.
  private func checkCombinations(unset: Set<Setting>, mode: ServiceSettings.Mode?) throws {
    if checkTCP && checkPath != nil { throw ValidationError("--check-path and --check-tcp exclude each other") }
    if mode == .http && port != nil {
      throw ValidationError("--port: only a tcp service has a port of its own; HTTP services share the node's")
    }
    let given: [(Setting, Bool)] = [
      (.balance, balance != nil), (.checkPath, checkPath != nil), (.checkInterval, checkInterval != nil),
      (.checkTimeout, checkTimeout != nil), (.rise, rise != nil), (.fall, fall != nil),
      (.timeoutConnect, timeoutConnect != nil), (.timeoutServer, timeoutServer != nil),
      (.retries, retries != nil), (.maxconn, maxconn != nil),
    ]
    for (setting, isGiven) in given where isGiven && unset.contains(setting) {
      throw ValidationError("--unset \(setting.rawValue) and --\(setting.rawValue) exclude each other")
    }
    let checkFlags: Set<Setting> = [.checkPath, .checkInterval, .checkTimeout, .rise, .fall]
    let givesCheck = checkTCP || given.contains { checkFlags.contains($0.0) && $0.1 }
    if unset.contains(.check) && givesCheck {
      throw ValidationError("--unset check and the --check-*, --rise and --fall flags exclude each other")
    }
    if !reset && unset.isEmpty && mode == nil && port == nil && !checkTCP && !given.contains(where: \.1) {
      throw ValidationError("nothing to change: give a setting such as --balance leastconn (see --help), or --reset")
    }
  }

  private static func remove(_ setting: Setting, from settings: inout ServiceSettings) {
    switch setting {
    case .balance: settings.balance = nil
    case .check: settings.check = nil
    case .checkPath: settings.check?.path = nil
    case .checkInterval: settings.check?.interval = nil
    case .checkTimeout: settings.check?.timeout = nil
    case .rise: settings.check?.rise = nil
    case .fall: settings.check?.fall = nil
    case .timeoutConnect: settings.timeoutConnect = nil
    case .timeoutServer: settings.timeoutServer = nil
    case .retries: settings.retries = nil
    case .maxconn: settings.maxconn = nil
    }
  }

  /// Reads the settings, merges the flags, and writes the result in a transaction that holds only while
  /// the key is as read.
  func execute(client: EtcdClient) async throws -> [String] {
    try await execute(client: client, beforeWrite: nil)
  }

  /// ``execute(client:)``, with `beforeWrite` run between the read and the write (tests use it to race a
  /// writer).
  func execute(client: EtcdClient, beforeWrite: (@Sendable () async throws -> Void)?) async throws -> [String] {
    let service = try serviceName()
    let key = ServiceSettings.path(for: service)
    let existing = try await client.get(.key(key)).kvs.first
    var current: ServiceSettings?
    if let existing, !reset {
      do { current = try ServiceSettings.parse(key: existing.key, value: existing.value) } catch {
        throw OperatorError(
          "the settings of \(service) in etcd are invalid (\(error.withoutKey)); nothing was written. "
            + "Give --reset to replace them with the flags alone, or `switchyard service rm \(service)`.")
      }
    }
    let updated = try merged(into: current)
    let value = updated.encoded()
    if let existing, existing.value == value {
      return [
        "service \(service): settings unchanged (etcd revision \(existing.modRevision))", "  \(key) \(text(value))",
      ]
    }
    if let beforeWrite { try await beforeWrite() }
    let unchanged: Compare =
      existing.map { .modRevision(key, .equal, $0.modRevision) } ?? .createRevision(key, .equal, 0)
    let result = try await client.txn(Txn(compare: [unchanged], success: [.put(key, value)]))
    guard result.succeeded else {
      throw OperatorError(
        "the settings of \(service) changed in etcd after this command read them (etcd revision now "
          + "\(result.header.revision)); nothing was written. Run it again to apply the flags to the new settings.")
    }
    var lines = [
      "service \(service): settings written at etcd revision \(result.header.revision)",
      "  \(key) \(text(value))",
    ]
    if let existing { lines.append("  was \(settingsText(existing))") }
    let instances = try await client.get(
      .prefix(RegistrationKey.prefix(for: service)), options: GetOptions(countOnly: true))
    if instances.count == 0 {
      lines.append("note: \(service) has no registered instance; the settings apply when one registers")
    }
    if let port = updated.port {
      let others = try await client.getPaginated(.prefix(ServiceSettings.root)).kvs.compactMap { entry in
        try? ServiceSettings.parse(key: entry.key, value: entry.value)
      }
      for other in others where other.service != service && other.port == port {
        lines.append(
          "note: service \(other.service) has port \(port) too; the nodes report the clash (switchyard status) "
            + "and serve the port for one of them")
      }
    }
    return lines
  }

  private func text(_ value: [UInt8]) -> String { String(decoding: value, as: UTF8.self) }
}
