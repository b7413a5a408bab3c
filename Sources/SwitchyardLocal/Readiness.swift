import Foundation

/// Waiting on the parts of a local cluster: until they are healthy, listen, or route to every backend, or
/// until their ports are free. Each wait prints progress and fails after `timeout`.
struct Readiness: Sendable {
  /// How long a wait may take before it fails.
  let timeout: Duration
  /// Where progress goes.
  let say: @Sendable (String) -> Void
  /// How a part is asked whether it is healthy and what it routes to.
  let probe: PartProbe

  /// Waits until each record's part is healthy; throws at once when one of their processes exits.
  func waitHealthy(_ records: [PartRecord]) async throws {
    try await waitUntil(records, are: "healthy") { await probe.isHealthy($0.spec) }
  }

  /// Waits until each record's process runs and listens on its first port (an etcd member's client port).
  func waitListening(_ records: [PartRecord]) async throws {
    try await waitUntil(records, are: "listening") { record in
      guard let port = record.spec.ports.first else { return false }
      return LoopbackPorts.isInUse(port)
    }
  }

  /// Polls until `ready` holds for every record; throws at once when one of their processes exits.
  private func waitUntil(
    _ records: [PartRecord],
    are what: String,
    _ ready: (PartRecord) async -> Bool
  ) async throws {
    var waiting = records
    try await poll("\(records.count) part(s) to be \(what)") {
      var still: [PartRecord] = []
      for record in waiting {
        guard record.isRunning else {
          throw LocalClusterError(
            "\(record.spec.name) exited; its log (\(record.logPath)) ends:\n\(tail(record.logPath))"
          )
        }
        if await ready(record) {
          say("  \(record.spec.name) is \(what)")
        } else {
          still.append(record)
        }
      }
      waiting = still
      return waiting.isEmpty ? nil : "waiting for \(waiting.map(\.spec.name).joined(separator: ", "))"
    }
  }

  /// Waits until every LB node routes to exactly the running backends, and throws naming each node that does
  /// not follow.
  ///
  /// A node whose controller is not running (it crashed, or died while waiting) cannot follow, even while its
  /// HAProxy serves on: the other nodes are still waited for, then the error names it. A node stopped with
  /// `switchyard stop` (no controller, no HAProxy) serves nothing and is skipped; its name is returned.
  @discardableResult
  func waitRouting(_ state: ClusterState) async throws -> [String] {
    let expected = Set(state.parts(.backend).filter(\.isRunning).map(\.spec.name))
    let nodes = state.parts(.lb)
    let stopped = nodes.filter { $0.pid == nil && OrphanedHAProxies.runningPID(of: $0.spec) == nil }.map(\.spec.name)
    var following = nodes.filter { !stopped.contains($0.spec.name) }
    var notFollowing: [PartRecord] = []
    say(
      "Waiting until \(following.map(\.spec.name).joined(separator: " and ")) route to \(expected.count) backend(s)…"
    )
    if !stopped.isEmpty { say("  Not waiting for \(stopped.joined(separator: ", ")): stopped.") }
    try await poll("every LB node to route to every backend") {
      notFollowing += following.filter { !$0.isRunning }
      following.removeAll { !$0.isRunning }
      var lagging: [String] = []
      for node in following {
        let seen = await probe.backendsSeen(through: node.spec, tries: expected.count * 3 + 3)
        if seen != expected {
          lagging.append("\(node.spec.name) routes to [\(seen.sorted().joined(separator: ", "))]")
        }
      }
      return lagging.isEmpty ? nil : lagging.joined(separator: "; ")
    }
    guard notFollowing.isEmpty else {
      var problems: [String] = []
      for node in notFollowing {
        let pid = node.pid.map { " (pid \($0))" } ?? ""
        var problem = "\(node.spec.name) does not follow: its controller\(pid) is not running"
        if let haproxy = OrphanedHAProxies.runningPID(of: node.spec) {
          let seen = await probe.backendsSeen(through: node.spec, tries: expected.count * 3 + 3)
          problem += "; its HAProxy (pid \(haproxy)) still routes to [\(seen.sorted().joined(separator: ", "))]"
        } else {
          problem += ", nor is its HAProxy"
        }
        problems.append(problem + ". `switchyard start \(node.spec.name)` starts a controller that catches up")
      }
      if !following.isEmpty {
        let verb = following.count == 1 ? "routes" : "route"
        say("  \(following.map(\.spec.name).joined(separator: " and ")) \(verb) to \(expected.count) backend(s).")
      }
      throw LocalClusterError(problems.joined(separator: "\n"))
    }
    return stopped
  }

  /// Waits until every running LB node routes ``ClusterLayout/webPath`` (the route `web`) and the host
  /// ``ClusterLayout/webHost`` (the route `web-host`) to exactly the running instances of `web`, and its
  /// `/state` lists them (it may lag the traffic by a second after the reload that made `web`'s backend),
  /// so that the table `up` prints shows what the nodes serve.
  func waitWebRoutes(_ state: ClusterState) async throws {
    let expected = Set(state.parts(.web).filter(\.isRunning).map(\.spec.name))
    let nodes = state.parts(.lb).filter(\.isRunning)
    guard !expected.isEmpty, !nodes.isEmpty else { return }
    let routes: [(path: String, host: String?, what: String)] = [
      (ClusterLayout.webPath, nil, ClusterLayout.webPath),
      ("/", ClusterLayout.webHost, "Host \(ClusterLayout.webHost)"),
    ]
    let names = nodes.map(\.spec.name).joined(separator: " and ")
    say("Waiting until \(names) route \(routes.map(\.what).joined(separator: " and ")) to \(ClusterLayout.webService)…")
    try await poll("every LB node to route to \(expected.sorted().joined(separator: ", "))") {
      var lagging: [String] = []
      for node in nodes {
        for route in routes {
          let seen = await probe.backendsSeen(
            through: node.spec, path: route.path, host: route.host, tries: expected.count * 3 + 1)
          if seen != expected {
            lagging.append("\(node.spec.name) routes \(route.what) to [\(seen.sorted().joined(separator: ", "))]")
          }
        }
        let services = await probe.controllerSnapshot(node.spec)?.services ?? []
        let listed = services.filter { $0.name == ClusterLayout.webService }.flatMap(\.servers).filter(\.registered)
        if Set(listed.map(\.name)) != expected {
          lagging.append("\(node.spec.name)'s /state lists [\(listed.map(\.name).sorted().joined(separator: ", "))]")
        }
      }
      return lagging.isEmpty ? nil : lagging.joined(separator: "; ")
    }
  }

  /// Ports of `state` still in use after up to 10 s, with their owners where known; HAProxy of an LB node
  /// still running counts too.
  func portsStillInUse(_ state: ClusterState) async -> [String] {
    let ports = state.parts.flatMap(\.spec.ports)
    let deadline = ContinuousClock.now.advanced(by: .seconds(10))
    while true {
      let busy = ports.filter(LoopbackPorts.isInUse)
      if busy.isEmpty || ContinuousClock.now >= deadline {
        return busy.map { port in "port \(port)" + (LoopbackPorts.owner(of: port).map { " (\($0))" } ?? "") }
      }
      try? await Task.sleep(for: .milliseconds(200))
    }
  }

  /// Runs `check` until it returns `nil` (done), printing what it still waits for every 5 s; fails after `timeout`.
  private func poll(_ what: String, _ check: () async throws -> String?) async throws {
    let deadline = ContinuousClock.now.advanced(by: timeout)
    var lastReport = ContinuousClock.now
    while true {
      guard let pending = try await check() else { return }
      let now = ContinuousClock.now
      if now >= deadline { throw LocalClusterError("timed out after \(timeout) waiting for \(what): \(pending)") }
      if lastReport.duration(to: now) >= .seconds(5) {
        say("  … \(pending)")
        lastReport = now
      }
      try await Task.sleep(for: .milliseconds(250))
    }
  }

  /// The last `bytes` of a log file.
  private func tail(_ path: String, bytes: Int = 2_000) -> String {
    guard let data = FileManager.default.contents(atPath: path) else { return "(no log)" }
    return String(decoding: data.suffix(bytes), as: UTF8.self)
  }
}
