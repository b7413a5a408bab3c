import EtcdClient
import Foundation
import HAProxyKit
import Logging
import SwitchyardAgent
import SwitchyardModel

#if canImport(Glibc)
  import Glibc
#endif

/// The whole system on one machine, as real processes: etcd members, LB nodes (controller + HAProxy) and
/// backends, recorded in a state directory so that later commands find them.
public struct LocalCluster: Sendable {
  /// The state directory (`.switchyard/`, or `$SWITCHYARD_HOME`).
  public let home: String
  /// Where progress goes.
  public let say: @Sendable (String) -> Void
  /// How long `up`, `scale` and `start` wait for parts to become healthy.
  public var timeout: Duration = .seconds(90)

  /// Creates a handle on the cluster in `home`; nothing starts.
  public init(home: String, say: @escaping @Sendable (String) -> Void) {
    self.home = home
    self.say = say
  }

  /// The state directory from the environment: `$SWITCHYARD_HOME`, else `.switchyard` under the current
  /// directory; always absolute.
  public static func defaultHome(environment: [String: String] = ProcessInfo.processInfo.environment) -> String {
    let path = environment["SWITCHYARD_HOME"].flatMap { $0.isEmpty ? nil : $0 } ?? ".switchyard"
    return URL(fileURLWithPath: path).standardizedFileURL.path
  }

  // MARK: - up

  /// Starts the cluster and waits until every part is healthy and every LB node routes to every backend.
  /// Returns `false` (and starts nothing) when a cluster already runs in `home`; with `secure`, its
  /// certificates that expire within 7 days are renewed then.
  ///
  /// With `secure`, a new local CA issues the etcd members' certificate and one client certificate per
  /// user; etcd requires TLS with client certificates on client and peer ports, authentication is on, and
  /// each LB node and backend connects as its own user (role `controller` or `registrar`, see
  /// ``AccessPolicy``). `certificateDays` is the validity of the certificates (not the CA's).
  public func up(
    backends: Int,
    lbNodes: Int,
    etcdMembers: Int,
    ports: ClusterPorts?,
    switchyard: String,
    etcd: String = "etcd",
    secure: Bool = false,
    certificateDays: Int = 365
  ) async throws -> Bool {
    guard certificateDays >= 1 else { throw LocalClusterError("certificate validity must be at least 1 day") }
    guard (1...ClusterPorts.maxEtcdMembers).contains(etcdMembers) else {
      throw LocalClusterError("--etcd-members must be from 1 to \(ClusterPorts.maxEtcdMembers)")
    }
    guard (1...ClusterPorts.maxLBNodes).contains(lbNodes) else {
      throw LocalClusterError("--lb-nodes must be from 1 to \(ClusterPorts.maxLBNodes)")
    }
    guard (0...50).contains(backends) else { throw LocalClusterError("--backends must be from 0 to 50") }
    let ports = ports ?? ClusterPorts.defaults(members: etcdMembers, nodes: lbNodes)
    if let problem = ports.problem(members: etcdMembers, nodes: lbNodes) { throw LocalClusterError(problem) }

    try createHome()
    let lock = try ClusterLock(home: home)
    defer { withExtendedLifetime(lock) {} }
    if let existing = try ClusterState.load(home: home) {
      let running = existing.parts.filter(\.isRunning)
      if !running.isEmpty {
        say("A cluster is already up in \(home) (\(running.count) of \(existing.parts.count) parts running).")
        if secure && !existing.isSecure {
          say("It was started without --secure; `switchyard down`, then `switchyard up --secure`.")
        } else if existing.isSecure {
          var security = LocalSecurity(home: home)
          security.certificateDays = certificateDays
          let renewed = try security.renewExpiring()
          say(
            renewed.isEmpty
              ? "No certificate expires within 7 days."
              : "Renewed the certificates of \(renewed.joined(separator: ", ")). etcd serves its new one to new "
                + "connections at once, and LB nodes and backends use theirs for new connections within two "
                + "minutes; nothing restarts.")
        }
        say("See `switchyard status`; `switchyard down` stops it.")
        return false
      }
      say("Found a stopped cluster in \(home); starting a new one.")
    }
    try checkExecutable(etcd, package: "etcd-server")
    try checkExecutable("haproxy", package: "haproxy")
    for port in ports.all where LoopbackPorts.isInUse(port) {
      let owner = LoopbackPorts.owner(of: port).map { " by \($0)" } ?? ""
      throw LocalClusterError("port \(port) is in use\(owner); stop it, or choose other ports")
    }
    // A new cluster: etcd members start from empty data directories.
    for member in 1...ClusterPorts.maxEtcdMembers {
      try? FileManager.default.removeItem(atPath: "\(home)/etcd\(member)")
    }

    let layout = ClusterLayout(home: home, switchyard: switchyard, etcd: etcd, ports: ports, secure: secure)
    var state = ClusterState(ports: ports, switchyard: switchyard, etcd: etcd, parts: [], secure: secure)
    let backendSpecs = try (0..<backends).map { try layout.backend($0 + 1, port: LoopbackPorts.freePort()) }
    let users = (layout.lbNodes() + backendSpecs).compactMap(ClusterLayout.etcdUser(of:))
    if secure {
      var security = layout.security
      security.certificateDays = certificateDays
      try security.create(users: [AccessPolicy.root, AccessPolicy.statusUser] + users.map(\.name))
      say("Made a local CA, certificates and passwords in \(security.pkiDirectory) and \(security.secretsDirectory).")
    }
    do {
      say("Starting \(etcdMembers) etcd member(s)\(secure ? " with TLS" : "")…")
      for spec in layout.etcdMembers() { try launch(spec, into: &state) }
      try await waitHealthy(state.parts(.etcd))
      if secure {
        try await withEtcd(layout, as: AccessPolicy.root, withPassword: false) { etcd in
          try await layout.security.configureAuth(etcd, users: users)
        }
        say(
          "Authentication on: roles \(AccessPolicy.registrarRole) and \(AccessPolicy.controllerRole), one user per part."
        )
      }
      say("Starting \(lbNodes) LB node(s)…")
      for spec in layout.lbNodes() { try launch(spec, into: &state) }
      try await waitHealthy(state.parts(.lb))
      if backends > 0 {
        say("Starting \(backends) backend(s)…")
        for spec in backendSpecs { try launch(spec, into: &state) }
        try await waitHealthy(state.parts(.backend))
      }
      try await waitRouting(state)
    } catch {
      say("Start-up failed: \(error)")
      say("Stopping what was started; the logs stay in \(home)/logs.")
      _ = try? await stopAll(&state)
      try? FileManager.default.removeItem(atPath: ClusterState.path(home: home))
      throw error
    }
    return true
  }

  // MARK: - scale

  /// Starts or gracefully stops backends until `count` run, then waits until every LB node routes to exactly them.
  public func scale(backends count: Int) async throws {
    guard (0...50).contains(count) else { throw LocalClusterError("backend count must be from 0 to 50") }
    let lock = try ClusterLock(home: home)
    defer { withExtendedLifetime(lock) {} }
    var state = try requireState()
    let layout = state.layout(home: home)
    state.parts.removeAll { $0.spec.kind == .backend && !$0.isRunning }
    let running = state.parts(.backend)
    if count > running.count {
      let used = Set(running.map(\.spec.index))
      let indices = (1...).lazy.filter { !used.contains($0) }.prefix(count - running.count)
      say("Starting \(count - running.count) backend(s)…")
      let specs = try indices.map { try layout.backend($0, port: LoopbackPorts.freePort()) }
      if layout.secure { try await addUsers(for: specs, layout: layout) }
      for spec in specs { try launch(spec, into: &state) }
      try await waitHealthy(state.parts(.backend))
    } else if count < running.count {
      let leaving = running.suffix(running.count - count)
      say("Stopping \(leaving.map(\.spec.name).joined(separator: ", ")) (drain, deregister, exit)…")
      await withTaskGroup(of: Void.self) { group in
        for record in leaving { group.addTask { await terminate(record) } }
      }
      let names = Set(leaving.map(\.spec.name))
      state.parts.removeAll { names.contains($0.spec.name) }
    }
    try state.save(home: home)
    let stopped = try await waitRouting(state)
    say(
      "\(count) backend(s) running; every LB node routes to them"
        + (stopped.isEmpty ? "." : " (\(stopped.joined(separator: ", ")) stopped).")
    )
  }

  // MARK: - stop, start, down

  /// Stops one part gracefully (SIGTERM; SIGKILL after 30 s).
  public func stop(_ name: String) async throws {
    let lock = try ClusterLock(home: home)
    defer { withExtendedLifetime(lock) {} }
    var state = try requireState()
    guard let index = state.parts.firstIndex(where: { $0.spec.name == name }) else {
      throw LocalClusterError("no part called \(name); parts: \(state.parts.map(\.spec.name).joined(separator: ", "))")
    }
    let record = state.parts[index]
    guard record.isRunning || runningHAProxy(of: record.spec) != nil else {
      say("\(name) is not running.")
      return
    }
    await terminate(record)
    // An LB node's HAProxy goes with it, also when its controller crashed and left HAProxy serving.
    if let directory = haproxyDirectory(of: record.spec), let problem = await stopHAProxy(in: directory, of: name) {
      throw LocalClusterError(problem)
    }
    state.parts[index].pid = nil
    try state.save(home: home)
    say("\(name) stopped.")
  }

  /// Starts stopped parts again, with the arguments they were first started with, and waits until they are
  /// healthy.
  ///
  /// An etcd member cannot become healthy while fewer than a quorum of its cluster's members run: for members
  /// started into such a cluster, waiting ends once they listen, and the output says how many more etcd needs
  /// (start them one by one, or several at once: `start etcd1 etcd2`). An LB node whose controller crashed
  /// and left its HAProxy serving gets a controller that adopts that HAProxy.
  public func start(_ names: [String]) async throws {
    let lock = try ClusterLock(home: home)
    defer { withExtendedLifetime(lock) {} }
    var state = try requireState()
    let unknown = names.filter { state.part($0) == nil }
    guard unknown.isEmpty else {
      throw LocalClusterError(
        "no part called \(unknown.joined(separator: ", ")); parts: "
          + state.parts.map(\.spec.name).joined(separator: ", "))
    }
    var starting: [(spec: PartSpec, haproxy: Int32?)] = []
    for name in names where !starting.contains(where: { $0.spec.name == name }) {
      guard let record = state.part(name) else { continue }
      if record.isRunning {
        say("\(name) is already running (pid \(record.pid ?? 0)).")
        continue
      }
      starting.append((record.spec, try checkPortsFree(for: record.spec)))
    }
    guard !starting.isEmpty else { return }
    for (spec, haproxy) in starting {
      if let haproxy { say("\(spec.name)'s HAProxy (pid \(haproxy)) still runs; its controller adopts it.") }
      try launch(spec, into: &state)
    }
    let started = starting.compactMap { state.part($0.spec.name) }

    let members = state.parts(.etcd)
    let running = members.filter(\.isRunning)
    let quorum = members.count / 2 + 1
    let lacksQuorum = running.count < quorum
    let startedMembers = started.filter { $0.spec.kind == .etcd }
    if lacksQuorum && !startedMembers.isEmpty {
      try await waitListening(startedMembers)
      try await waitHealthy(started.filter { $0.spec.kind != .etcd })
    } else {
      try await waitHealthy(started)
    }
    for (spec, haproxy) in starting {
      guard let haproxy else { continue }
      let adopted = await controllerSnapshot(spec).map { $0.haproxyAdopted && $0.haproxyPID == haproxy }
      guard adopted != false else {
        throw LocalClusterError("\(spec.name) started, but its controller did not adopt HAProxy \(haproxy)")
      }
      say("\(spec.name) adopted HAProxy (pid \(haproxy)).")
    }
    say("\(started.map(\.spec.name).joined(separator: ", ")) started.")
    if lacksQuorum && !startedMembers.isEmpty {
      let stopped = members.filter { !$0.isRunning }.map(\.spec.name)
      say(
        "etcd has no quorum yet: \(running.count) of \(members.count) members run and \(quorum) are needed. "
          + "Start \(quorum - running.count) more of \(stopped.joined(separator: ", ")) "
          + "(`switchyard start \(stopped.prefix(quorum - running.count).joined(separator: " "))`)."
      )
    }
  }

  /// Throws when a port of `spec` is taken by anything but the part's own HAProxy. Returns that HAProxy's
  /// PID when it runs: an LB node whose controller died leaves it serving, and a new controller adopts it.
  private func checkPortsFree(for spec: PartSpec) throws -> Int32? {
    let directory = haproxyDirectory(of: spec)
    let haproxy = runningHAProxy(of: spec)
    for port in spec.ports where LoopbackPorts.isInUse(port) {
      let owners = LoopbackPorts.owners(of: port)
      if let directory, haproxy != nil, !owners.isEmpty,
        owners.allSatisfy({ HAProxyProcess.isProcess($0, of: directory) })
      {
        continue
      }
      let owner = owners.first.map { " by \(LoopbackPorts.describe($0))" } ?? ""
      throw LocalClusterError("port \(port) of \(spec.name) is in use\(owner)")
    }
    return haproxy
  }

  /// The HAProxy state directory of an LB node, when it exists.
  private func haproxyDirectory(of spec: PartSpec) -> StateDirectory? {
    guard let path = spec.haproxyStateDirectory, FileManager.default.fileExists(atPath: path) else { return nil }
    return try? StateDirectory(path: path)
  }

  /// An LB node's `/state`, when its controller answers.
  private func controllerSnapshot(_ spec: PartSpec) async -> NodeSnapshot? {
    guard let admin = spec.adminURL, let (status, body) = try? await PlainHTTP.get("\(admin)/state"), status == 200
    else { return nil }
    return try? JSONDecoder().decode(NodeSnapshot.self, from: Data(body.utf8))
  }

  /// Stops everything in order (backends, then LB nodes with their HAProxy, then etcd) and checks that every
  /// port is free. With `purge`, removes the state directory too.
  public func down(purge: Bool) async throws {
    guard FileManager.default.fileExists(atPath: home) else {
      say("Nothing to stop: \(home) does not exist.")
      return
    }
    var leftovers: [String] = []
    do {
      let lock = try ClusterLock(home: home)
      defer { withExtendedLifetime(lock) {} }
      if var state = try ClusterState.load(home: home) {
        leftovers = try await stopAll(&state)
        leftovers += await portsStillInUse(state)
        if leftovers.isEmpty { try? FileManager.default.removeItem(atPath: ClusterState.path(home: home)) }
      } else {
        say("No cluster is recorded in \(home).")
        leftovers = await stopOrphanedHAProxies()
      }
    }
    // Nothing is removed while something of the cluster may still run: its PID files and logs are in `home`.
    if !leftovers.isEmpty {
      throw LocalClusterError(
        "still in use after stopping: \(leftovers.joined(separator: ", "))"
          + (purge ? "; \(home) is kept" : ""))
    }
    if purge {
      try FileManager.default.removeItem(atPath: home)
      say("Removed \(home).")
    }
    say("Everything stopped; every port is free.")
  }

  // MARK: - status and logs

  /// Each part with its PID, address and health; each LB node's applied revision and servers; the
  /// registrations in etcd.
  public func status() async throws -> ClusterReport {
    let state = try requireState()
    var report = ClusterReport(home: home, parts: [], nodes: [], registrations: [], etcdRevision: nil)
    for record in state.parts {
      let running = record.isRunning
      let healthy = running ? await isHealthy(record.spec) : false
      var health = running ? (healthy ? "healthy" : "unhealthy") : "stopped"
      // A node whose controller is gone may still serve: its HAProxy keeps the last state it was given.
      if record.spec.kind == .lb, !running, let haproxy = runningHAProxy(of: record.spec) {
        health = "controller stopped; HAProxy \(haproxy) serves its last state"
      }
      report.parts.append(
        .init(
          name: record.spec.name,
          kind: record.spec.kind.rawValue,
          pid: running ? record.pid : nil,
          address: record.spec.address,
          health: health
        )
      )
      if record.spec.kind == .lb, running, let snapshot = await controllerSnapshot(record.spec) {
        report.nodes.append(.init(name: record.spec.name, state: snapshot))
      }
    }
    let layout = state.layout(home: home)
    if layout.secure {
      report.certificates = (try? layout.security.certificateSummary()) ?? "cannot read \(layout.security.pkiDirectory)"
    }
    var configuration =
      layout.secure
      ? try layout.security.configuration(for: AccessPolicy.statusUser, endpoints: layout.etcdEndpoints)
      : try EtcdConfiguration(endpoints: layout.etcdEndpoints)
    configuration.dialTimeout = .seconds(1)
    configuration.requestTimeout = .seconds(3)
    var logger = Logger(label: "switchyard.status")
    logger.logLevel = .critical
    if let read = try? await withEtcdClient(
      configuration: configuration, logger: logger,
      { etcd in
        try await etcd.get(.prefix("/services/"))
      })
    {
      report.etcdRevision = read.header.revision
      report.registrations = read.kvs.map {
        .init(key: String(decoding: $0.key, as: UTF8.self), value: String(decoding: $0.value, as: UTF8.self))
      }
    }
    return report
  }

  /// The log files of `name`, or of every part.
  public func logFiles(_ name: String?) throws -> [(name: String, path: String)] {
    let state = try requireState()
    let records =
      try name.map { name in
        guard let record = state.part(name) else {
          throw LocalClusterError(
            "no part called \(name); parts: \(state.parts.map(\.spec.name).joined(separator: ", "))")
        }
        return [record]
      } ?? state.parts
    return records.map { ($0.spec.name, $0.logPath) }
  }

  // MARK: - Parts

  private func createHome() throws {
    try FileManager.default.createDirectory(atPath: "\(home)/logs", withIntermediateDirectories: true)
    chmod(home, 0o700)
  }

  private func requireState() throws -> ClusterState {
    guard let state = try ClusterState.load(home: home) else {
      throw LocalClusterError("no cluster is up in \(home); start one with `switchyard up`")
    }
    return state
  }

  private func checkExecutable(_ name: String, package: String) throws {
    let path = ProcessInfo.processInfo.environment["PATH"] ?? "/usr/bin:/bin"
    let candidates = name.contains("/") ? [name] : path.split(separator: ":").map { "\($0)/\(name)" }
    guard candidates.contains(where: { FileManager.default.isExecutableFile(atPath: $0) }) else {
      throw LocalClusterError("\(name) is not installed; `make up` installs it (apt-get install \(package))")
    }
  }

  private func launch(_ spec: PartSpec, into state: inout ClusterState) throws {
    let logPath = "\(home)/logs/\(spec.name).log"
    let pid = try DetachedProcess.spawn(spec.executable, arguments: spec.arguments, logPath: logPath)
    // Reaped while this command runs; once it exits, init adopts what is left.
    DetachedProcess.reapInBackground(pid)
    let record = PartRecord(spec: spec, pid: pid, logPath: logPath)
    if let index = state.parts.firstIndex(where: { $0.spec.name == spec.name }) {
      state.parts[index] = record
    } else {
      state.parts.append(record)
    }
    try state.save(home: home)
    say("  \(spec.name): pid \(pid), \(spec.address)")
  }

  private func isHealthy(_ spec: PartSpec) async -> Bool {
    if spec.kind == .etcd, spec.healthURL.hasPrefix("https:") { return await isSecureMemberHealthy(spec) }
    guard let (status, _) = try? await PlainHTTP.get(spec.healthURL) else { return false }
    return status == 200
  }

  /// A member that serves TLS only is asked for its status (which etcd answers without authentication),
  /// over TLS with the status user's certificate: healthy when it knows a leader and reports no error.
  private func isSecureMemberHealthy(_ spec: PartSpec) async -> Bool {
    let security = LocalSecurity(home: home)
    guard
      var configuration = try? security.configuration(
        for: AccessPolicy.statusUser, endpoints: "https://\(spec.address)", withPassword: false)
    else { return false }
    configuration.dialTimeout = .seconds(1)
    configuration.requestTimeout = .seconds(2)
    var logger = Logger(label: "switchyard.health")
    logger.logLevel = .critical
    let status = try? await withEtcdClient(configuration: configuration, logger: logger) { try await $0.status() }
    return status.map { $0.leader != 0 && $0.errors.isEmpty } ?? false
  }

  /// Runs `body` with a client of the cluster's etcd that connects as `user`.
  private func withEtcd<Result: Sendable>(
    _ layout: ClusterLayout,
    as user: String,
    withPassword: Bool = true,
    _ body: (EtcdClient) async throws -> Result
  ) async throws -> Result {
    var logger = Logger(label: "switchyard.setup")
    logger.logLevel = .critical
    let configuration = try layout.security.configuration(
      for: user, endpoints: layout.etcdEndpoints, withPassword: withPassword)
    return try await withEtcdClient(configuration: configuration, logger: logger, body)
  }

  /// Makes certificates, passwords and etcd users (as root) for parts about to start in a secure cluster.
  private func addUsers(for specs: [PartSpec], layout: ClusterLayout) async throws {
    let users = specs.compactMap(ClusterLayout.etcdUser(of:))
    for user in users { try layout.security.addUser(user.name) }
    try await withEtcd(layout, as: AccessPolicy.root) { etcd in
      for user in users { try await layout.security.addUser(user.name, role: user.role, to: etcd) }
    }
  }

  private func waitHealthy(_ records: [PartRecord]) async throws {
    try await waitUntil(records, are: "healthy") { await self.isHealthy($0.spec) }
  }

  /// Waits until each record's process runs and listens on its first port (an etcd member's client port).
  private func waitListening(_ records: [PartRecord]) async throws {
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
  private func waitRouting(_ state: ClusterState) async throws -> [String] {
    let expected = Set(state.parts(.backend).filter(\.isRunning).map(\.spec.name))
    let nodes = state.parts(.lb)
    let stopped = nodes.filter { $0.pid == nil && runningHAProxy(of: $0.spec) == nil }.map(\.spec.name)
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
        let seen = await backendsSeen(through: node.spec, tries: expected.count * 3 + 3)
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
        if let haproxy = runningHAProxy(of: node.spec) {
          let seen = await backendsSeen(through: node.spec, tries: expected.count * 3 + 3)
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

  /// The PID of an LB node's HAProxy master while it runs.
  private func runningHAProxy(of spec: PartSpec) -> Int32? {
    haproxyDirectory(of: spec).flatMap { HAProxyProcess.runningMasterPID(stateDirectory: $0) }
  }

  /// Which backends answer through an LB node (`Hello from <name>`); `503` answers count as none.
  private func backendsSeen(through node: PartSpec, tries: Int) async -> Set<String> {
    var seen: Set<String> = []
    for _ in 0..<tries {
      guard let (status, body) = try? await PlainHTTP.get(node.address + "/"), status == 200 else { continue }
      seen.insert(
        body.replacingOccurrences(of: "Hello from ", with: "").trimmingCharacters(in: .whitespacesAndNewlines))
    }
    return seen
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

  /// SIGTERM, then SIGKILL after 30 s; returns once the process is gone.
  private func terminate(_ record: PartRecord) async {
    guard let pid = record.pid, record.isRunning else { return }
    kill(pid, SIGTERM)
    let deadline = ContinuousClock.now.advanced(by: .seconds(30))
    while record.isRunning {
      if ContinuousClock.now >= deadline {
        say("  \(record.spec.name) did not stop within 30 s; killing it")
        kill(pid, SIGKILL)
      }
      try? await Task.sleep(for: .milliseconds(50))
    }
  }

  /// Stops every part, kind by kind, and every LB node's HAProxy with its node (also one whose controller
  /// crashed); returns what could not be stopped.
  @discardableResult
  private func stopAll(_ state: inout ClusterState) async throws -> [String] {
    var problems: [String] = []
    for kind in [PartKind.backend, .lb, .etcd] {
      let records = state.parts(kind).filter(\.isRunning)
      if !records.isEmpty {
        say("Stopping \(records.map(\.spec.name).joined(separator: ", "))…")
        await withTaskGroup(of: Void.self) { group in
          for record in records { group.addTask { await terminate(record) } }
        }
      }
      if kind == .lb { problems += await stopOrphanedHAProxies() }
      for index in state.parts.indices where state.parts[index].spec.kind == kind {
        state.parts[index].pid = nil
      }
      try state.save(home: home)
    }
    return problems
  }

  /// Stops every HAProxy that runs from a state directory in `home` (an LB node's, found by its PID file and
  /// master socket) although its controller is gone; returns what could not be stopped.
  private func stopOrphanedHAProxies() async -> [String] {
    let entries = (try? FileManager.default.contentsOfDirectory(atPath: home)) ?? []
    var problems: [String] = []
    for entry in entries.sorted() where FileManager.default.fileExists(atPath: "\(home)/\(entry)/haproxy.pid") {
      guard let directory = try? StateDirectory(path: "\(home)/\(entry)") else { continue }
      if let problem = await stopHAProxy(in: directory, of: entry) { problems.append(problem) }
    }
    return problems
  }

  /// Stops the HAProxy serving from `directory`, if one runs: a soft stop, then SIGTERM and SIGKILL, as its
  /// controller would have. Returns why it could not, or `nil`.
  private func stopHAProxy(in directory: StateDirectory, of name: String) async -> String? {
    guard let pid = HAProxyProcess.runningMasterPID(stateDirectory: directory) else { return nil }
    say("  \(name)'s HAProxy (pid \(pid)) runs without its controller; stopping it")
    var logger = Logger(label: "switchyard.local")
    logger.logLevel = .critical
    do {
      try await HAProxyProcess.adopt(stateDirectory: directory, logger: logger)?.stop(timeout: .seconds(10))
      return nil
    } catch {
      return "HAProxy \(pid) of \(name) (\(error))"
    }
  }

  /// Ports of `state` still in use after up to 10 s, with their owners where known; HAProxy of an LB node
  /// still running counts too.
  private func portsStillInUse(_ state: ClusterState) async -> [String] {
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

  private func tail(_ path: String, bytes: Int = 2_000) -> String {
    guard let data = FileManager.default.contents(atPath: path) else { return "(no log)" }
    return String(decoding: data.suffix(bytes), as: UTF8.self)
  }
}

/// What `switchyard status` shows.
public struct ClusterReport: Sendable, Codable {
  /// One part.
  public struct Part: Sendable, Codable {
    /// `etcd1`, `lb1`, `backend-1`.
    public var name: String
    /// `etcd`, `lb` or `backend`.
    public var kind: String
    /// Its PID while it runs.
    public var pid: Int32?
    /// Where it is reached.
    public var address: String
    /// `healthy`, `unhealthy` or `stopped`.
    public var health: String
  }

  /// One LB node as its controller reports it.
  public struct Node: Sendable, Codable {
    /// `lb1`.
    public var name: String
    /// The controller's `/state`.
    public var state: NodeSnapshot
  }

  /// One registration in etcd.
  public struct Registration: Sendable, Codable {
    /// The key.
    public var key: String
    /// The value, as stored.
    public var value: String
  }

  /// The state directory.
  public var home: String
  /// Every part.
  public var parts: [Part]
  /// Every running LB node.
  public var nodes: [Node]
  /// The registrations under `/services/`.
  public var registrations: [Registration]
  /// etcd's revision when the registrations were read; `nil` when etcd did not answer.
  /// In a secure cluster (`up --secure`): when its certificates expire, and which need renewing.
  public var certificates: String?
  public var etcdRevision: Int64?
}
