import AddressText
import Logging
import SwitchyardModel
import SwitchyardReconcile
import Synchronization

/// Publishes what the node knows to `/state` and the metrics: the servers HAProxy runs, the entries
/// skipped as invalid, check-path conflicts and operators' overrides, each logged once while it lasts.
final class StatusPublisher: Sendable {
  private struct Logged {
    var invalid: Set<String> = []
    var conflicts: Set<String> = []
    var overrides: Set<NodeSnapshot.Override> = []
    var routeProblems: Set<String> = []
    var invalidEpisode = Episode<ContinuousClock.Instant>(summaryInterval: .seconds(30))
  }

  private let status: ControllerStatus
  private let metrics: ControllerMetrics
  private let logger: Logger
  private let logged = Mutex(Logged())
  /// Servers by service and state as last published (`switchyard_servers`), so that a pass that publishes
  /// a few servers of a large backend adjusts the counts instead of counting them all.
  private let serverCounts = Mutex<[String: [String: Int]]>([:])

  init(status: ControllerStatus, metrics: ControllerMetrics, logger: Logger) {
    self.status = status
    self.metrics = metrics
    self.logger = logger
  }

  /// Publishes what HAProxy runs in `/state` and the server metrics, for the backends in `scope` (or all).
  func publish(desired: DesiredState, observed: ObservedState, scope: Set<String>? = nil) {
    var counts: [String: [String: Int]] = [:]
    let published = desired.backends.filter { scope?.contains($0.name) ?? true }
    let services = published.map { backend in
      let registered = Set(backend.servers.map(\.name))
      let servers = (observed.backends[backend.name] ?? []).sorted { $0.name < $1.name }.map { server in
        let entry = Self.entry(server, registered: registered.contains(server.name))
        counts[backend.service.rawValue, default: [:]][Self.state(of: entry), default: 0] += 1
        return entry
      }
      return ControllerStatus.Service(
        name: backend.service.rawValue,
        backend: backend.name,
        checkPath: backend.checkPath,
        servers: servers,
        mode: backend.mode.rawValue,
        port: backend.settings?.port,
        balance: backend.balance.rawValue,
        lingering: backend.isLingering
      )
    }
    status.update { state in
      serverCounts.withLock { known in
        if scope == nil { known = [:] }
        for backend in published { known[backend.service.rawValue] = counts[backend.service.rawValue] ?? [:] }
      }
      guard scope != nil else {
        state.services = services
        return
      }
      var byBackend = Dictionary(state.services.map { ($0.backend, $0) }, uniquingKeysWith: { first, _ in first })
      for service in services { byBackend[service.backend] = service }
      state.services = desired.backends.compactMap { byBackend[$0.name] }
    }
    metrics.setServers(counts, services: published.map(\.service.rawValue))
  }

  /// Publishes the servers named in `names` of `backend` as the controller believes HAProxy runs them
  /// (`believed`; a name not there is gone), in place in `/state` and in the server counts: a pass that
  /// changed a few servers of a large backend publishes those, not the backend. A backend not published
  /// yet is left to the next full publication.
  func publish(servers names: Set<String>, believed: [ObservedServer], of backend: DesiredBackend) {
    let service = backend.service.rawValue
    let byName = Dictionary(believed.map { ($0.name, $0) }, uniquingKeysWith: { first, _ in first })
    let counts = status.state.withLock { state -> [String: Int]? in
      guard let index = state.services.firstIndex(where: { $0.backend == backend.name }) else { return nil }
      var delta: [String: Int] = [:]
      for name in names {
        let position = state.services[index].servers.insertionIndex(of: name, by: \.name)
        if position < state.services[index].servers.count, state.services[index].servers[position].name == name {
          delta[Self.state(of: state.services[index].servers.remove(at: position)), default: 0] -= 1
        }
        if let server = byName[name] {
          let entry = Self.entry(server, registered: backend.server(named: name) != nil)
          delta[Self.state(of: entry), default: 0] += 1
          state.services[index].servers.insert(entry, at: position)
        }
      }
      return serverCounts.withLock { known in
        for (serverState, change) in delta { known[service, default: [:]][serverState, default: 0] += change }
        return known[service] ?? [:]
      }
    }
    if let counts { metrics.setServers([service: counts], services: [service]) }
  }

  /// The `/state` entry of an observed server.
  private static func entry(_ server: ObservedServer, registered: Bool) -> ControllerStatus.Server {
    ControllerStatus.Server(
      name: server.name,
      address: server.address.map { HostPortText.format(host: $0, port: server.port ?? 0) } ?? "-",
      weight: server.weight,
      adminState: server.adminState.rawValue,
      health: server.isUp ? "up" : "down",
      registered: registered
    )
  }

  /// The state a server is counted in: its health when it is ready, else its admin state.
  private static func state(of entry: ControllerStatus.Server) -> String {
    entry.adminState == ServerAdminState.ready.rawValue ? entry.health : entry.adminState
  }

  /// Publishes the entries skipped as invalid (the first ``maxInvalidListed`` in `/state`, all of them
  /// counted), and logs them as one episode: a warning when the first appears, a summary at most every
  /// ``Episode/summaryInterval`` while more come, and a notice when none is left; never a line per entry.
  func report(invalid: [RegistrationError]) {
    metrics.invalidEntries.set(to: Double(invalid.count))
    let entries = invalid.prefix(Self.maxInvalidListed).map {
      ControllerStatus.InvalidEntry(key: $0.escapedKey ?? "?", reason: $0.description)
    }
    let (line, example) = logged.withLock { logged in
      let descriptions = invalid.map(\.description)
      let fresh = descriptions.indices.filter { !logged.invalid.contains(descriptions[$0]) }
      logged.invalid = Set(descriptions)
      return (
        logged.invalidEpisode.observe(count: invalid.count, added: fresh.count, now: .now),
        fresh.first.map { invalid[$0] }
      )
    }
    let sample: Logger.Metadata = example.map { ["example": "\($0)"] } ?? [:]
    switch line {
    case .started(let count):
      logger.warning("Skipping \(count) invalid entries; /state lists them", metadata: sample)
    case .changed(let count, let added):
      logger.warning("Skipping \(count) invalid entries, \(added) new since the last report", metadata: sample)
    case .ended(let lasted, let peak):
      logger.notice("No invalid entries left, after \(ControllerStatus.seconds(lasted)) s (at most \(peak) at once)")
    case nil:
      break
    }
    status.update {
      $0.invalidEntries = entries
      $0.invalidEntryCount = invalid.count
    }
  }

  /// At most this many invalid entries are listed in `/state`; the count covers all of them.
  static let maxInvalidListed = 100

  /// Publishes the operators' overrides in force, and logs each one once when it starts and once when
  /// it ends.
  func report(overrides: [InstanceOverride]) {
    let entries = overrides.map {
      NodeSnapshot.Override(
        service: $0.instance.service.rawValue, instance: $0.instance.instance.rawValue, state: $0.state.rawValue,
        reason: $0.reason)
    }
    let (started, ended) = logged.withLock { logged in
      let now = Set(entries)
      defer { logged.overrides = now }
      return (now.subtracting(logged.overrides), logged.overrides.subtracting(now))
    }
    for entry in started.sorted(by: { ($0.service, $0.instance) < ($1.service, $1.instance) }) {
      logger.notice(
        "Operator override: \(entry.service)/\(entry.instance) is \(entry.state)",
        metadata: ["reason": "\(RegistrationError.escape(entry.reason ?? "none given"))"])
    }
    for entry in ended.sorted(by: { ($0.service, $0.instance) < ($1.service, $1.instance) }) {
      logger.notice("Operator override of \(entry.service)/\(entry.instance) (\(entry.state)) ended")
    }
    status.update { $0.overrides = entries }
    metrics.overrides.set(to: Double(entries.count))
  }

  /// At most this many routes are listed in `/state`; the count covers all of them.
  static let maxRoutesListed = 1000

  /// Publishes the routes and what keeps some of them from being used (conflicts, tcp services, tcp
  /// ports taken twice), and logs each problem once while it lasts.
  func report(routes: [Route], table: RouteTable, listenerConflicts: [String]) {
    var targets: [RouteName: String] = [:]
    for entry in table.entries {
      targets[entry.route] = entry.backend == RouteTable.unavailableBackend ? "unavailable" : entry.backend
    }
    for rejected in table.rejected { targets[rejected.route] = "rejected" }
    let listed = routes.prefix(Self.maxRoutesListed).map { route in
      NodeSnapshot.Route(
        name: route.name.rawValue, service: route.service.rawValue, hosts: route.hosts.map(\.text),
        pathPrefix: route.pathPrefix, stripPrefix: route.stripPrefix, target: targets[route.name] ?? "shadowed")
    }
    let problems = table.conflicts.map(\.description) + table.rejected.map(\.description) + listenerConflicts
    let (started, ended) = logged.withLock { logged in
      let now = Set(problems)
      defer { logged.routeProblems = now }
      return (now.subtracting(logged.routeProblems), logged.routeProblems.subtracting(now))
    }
    for problem in started.sorted() { logger.warning("Route problem: \(problem)") }
    for problem in ended.sorted() { logger.notice("Route problem resolved: \(problem)") }
    status.update {
      $0.routes = listed
      $0.routeCount = routes.count
      $0.routeProblems = problems
    }
    metrics.routes.set(to: Double(routes.count))
    metrics.routeEntries.set(to: Double(table.entries.count))
    metrics.routeConflicts.set(to: Double(problems.count))
  }

  /// Logs check-path conflicts not logged before; with a `scope`, `conflicts` covers those backends only.
  func report(conflicts: [(backend: String, server: String, path: String)], scope: Set<String>?) {
    let lines = conflicts.map { "\($0.backend)/\($0.server) registered check path \($0.path)" }
    let fresh = logged.withLock { logged in
      let fresh = lines.filter { !logged.conflicts.contains($0) }
      let kept = logged.conflicts.filter { line in
        guard let scope else { return false }
        return !scope.contains(String(line.prefix { $0 != "/" }))
      }
      logged.conflicts = kept.union(lines)
      return fresh
    }
    for line in fresh {
      logger.warning("A backend checks all its servers on one path; this server's own path is not used: \(line)")
    }
  }

  /// Logs check-path conflicts not logged before, for the servers named in `servers` (`backend/server`)
  /// alone: `conflicts` covers those servers; what was logged about the others stays.
  func report(conflicts: [(backend: String, server: String, path: String)], servers: Set<String>) {
    let lines = conflicts.map { "\($0.backend)/\($0.server) registered check path \($0.path)" }
    let fresh = logged.withLock { logged in
      let fresh = lines.filter { !logged.conflicts.contains($0) }
      logged.conflicts = logged.conflicts.filter { !servers.contains(String($0.prefix { $0 != " " })) }.union(lines)
      return fresh
    }
    for line in fresh {
      logger.warning("A backend checks all its servers on one path; this server's own path is not used: \(line)")
    }
  }

  /// Records how reading etcd went: `nil` for success, else the error.
  func etcdRead(failed error: (any Error)?) {
    status.update {
      $0.etcdConnected = error == nil
      $0.etcdError = error.map { "\($0)" }
    }
    metrics.etcdConnected.set(to: error == nil ? 1 : 0)
  }

  /// Records the revision HAProxy was brought in step with, and the newest change to the served keys that
  /// it includes.
  func applied(revision: Int64, newestChange: Int64, initialPass: Bool = false) {
    let applied = status.state.withLock {
      // A full pass says what it read. An incremental pass never moves the revision back: a node's record
      // may have been recorded as applied (``appliedWithoutChange(revision:whenApplied:)``) while it ran on an
      // older view.
      $0.appliedRevision = initialPass ? revision : max($0.appliedRevision, revision)
      $0.newestChangeApplied = max($0.newestChangeApplied, newestChange)
      if initialPass { $0.initialPassDone = true }
      return $0.appliedRevision
    }
    status.recentChanges.applied(through: revision)
    metrics.appliedRevision.set(to: Double(applied))
  }

  /// Records `revision`, a write that changes nothing HAProxy runs (a load-balancer node's record), as
  /// applied when everything up to `previous` is; returns whether it did (if not, a pass must take it).
  func appliedWithoutChange(revision: Int64, whenApplied previous: Int64) -> Bool {
    let applied = status.state.withLock { state -> Int64? in
      guard state.initialPassDone, state.appliedRevision >= previous else { return nil }
      state.appliedRevision = max(state.appliedRevision, revision)
      return state.appliedRevision
    }
    guard let applied else { return false }
    metrics.appliedRevision.set(to: Double(applied))
    return true
  }
}
