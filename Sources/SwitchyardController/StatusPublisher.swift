import AddressText
import Logging
import SwitchyardModel
import SwitchyardReconcile
import Synchronization

/// Publishes what the node knows to `/state` and the metrics: the servers HAProxy runs, the entries
/// skipped as invalid, and check-path conflicts, each logged once while it lasts.
final class StatusPublisher: Sendable {
  private struct Logged {
    var invalid: Set<String> = []
    var conflicts: Set<String> = []
  }

  private let status: ControllerStatus
  private let metrics: ControllerMetrics
  private let logger: Logger
  private let logged = Mutex(Logged())

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
        let health = server.isUp ? "up" : "down"
        let state = server.adminState == .ready ? health : server.adminState.rawValue
        counts[backend.service.rawValue, default: [:]][state, default: 0] += 1
        return ControllerStatus.Server(
          name: server.name,
          address: server.address.map { HostPortText.format(host: $0, port: server.port ?? 0) } ?? "-",
          weight: server.weight,
          adminState: server.adminState.rawValue,
          health: health,
          registered: registered.contains(server.name)
        )
      }
      return ControllerStatus.Service(
        name: backend.service.rawValue,
        backend: backend.name,
        checkPath: backend.checkPath,
        servers: servers
      )
    }
    status.update { state in
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

  /// Publishes the entries skipped as invalid, and logs those not logged before.
  func report(invalid: [RegistrationError]) {
    metrics.invalidEntries.set(to: Double(invalid.count))
    let entries = invalid.map { ControllerStatus.InvalidEntry(key: $0.escapedKey ?? "?", reason: $0.description) }
    let fresh = logged.withLock { logged in
      let descriptions = Set(invalid.map(\.description))
      let fresh = invalid.filter { !logged.invalid.contains($0.description) }
      logged.invalid = descriptions
      return fresh
    }
    for error in fresh {
      logger.warning(
        "Skipping an invalid registration", metadata: ["key": "\(error.escapedKey ?? "?")", "error": "\(error)"])
    }
    status.update { $0.invalidEntries = entries }
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

  /// Records how reading etcd went: `nil` for success, else the error.
  func etcdRead(failed error: (any Error)?) {
    status.update {
      $0.etcdConnected = error == nil
      $0.etcdError = error.map { "\($0)" }
    }
    metrics.etcdConnected.set(to: error == nil ? 1 : 0)
  }

  /// Records the revision HAProxy was brought in step with.
  func applied(revision: Int64, initialPass: Bool = false) {
    status.update {
      $0.appliedRevision = revision
      if initialPass { $0.initialPassDone = true }
    }
    metrics.appliedRevision.set(to: Double(revision))
  }
}
