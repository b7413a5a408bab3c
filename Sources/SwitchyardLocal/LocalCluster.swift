import Foundation
import SwitchyardProcess

#if canImport(Glibc)
  import Glibc
#endif

/// The whole system on one machine, as real processes: etcd members, LB nodes (controller + HAProxy) and
/// backends, recorded in a state directory so that later commands find them.
///
/// The commands are here and in `LocalCluster+StopStart.swift`; small parts do the work:
/// ``PartLauncher`` starts and stops processes, ``Readiness`` waits for them, ``PartProbe`` asks them how
/// they are, ``OrphanedHAProxies`` stops an LB node's HAProxy left without its controller, and
/// ``ClusterReport`` is what `status` shows.
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

  /// Starts and stops the parts' processes.
  var launcher: PartLauncher { PartLauncher(home: home, say: say) }
  /// Asks parts how they are.
  var probe: PartProbe { PartProbe(home: home) }
  /// Waits for parts, within `timeout`.
  var readiness: Readiness { Readiness(timeout: timeout, say: say, probe: probe) }
  /// Stops an LB node's HAProxy that runs without its controller.
  var orphans: OrphanedHAProxies { OrphanedHAProxies(home: home, say: say) }

  // MARK: - up

  /// Starts the cluster and waits until every part is healthy and every LB node routes to every backend.
  /// Returns `false` (and starts nothing) when a cluster already runs in `home`; with `secure`, its
  /// certificates that expire within 7 days are renewed then.
  ///
  /// Besides the `backends` instances of the service `backend`, one instance of a second sample service,
  /// `web` (part `web-1`), starts, and two routes to it are written to etcd before the LB nodes start (see
  /// ``ClusterLayout/webRoutes()``): `/web/` and the host `web.localhost` reach it, every other request
  /// goes to `backend`. `up` waits until every LB node routes `/web/` to it too.
  ///
  /// With `secure`, a new local CA issues the etcd members' certificate and one client certificate per
  /// user; etcd requires TLS with client certificates on client and peer ports, authentication is on, and
  /// each LB node and backend connects as its own user (role `controller` or `registrar`, see
  /// ``AccessPolicy``); the routes are written as the user `operator`. `certificateDays` is the validity of
  /// the certificates (not the CA's).
  ///
  /// With `https` (implied by `secure`), the LB nodes also serve HTTPS (``ClusterLayout/httpsPorts``) with a
  /// certificate from the local CA kept in etcd (see ``LocalSecurity/prepareHTTPS()``); `up` waits until each
  /// answers over HTTPS verified by that CA.
  public func up(
    backends: Int,
    lbNodes: Int,
    etcdMembers: Int,
    ports: ClusterPorts?,
    switchyard: String,
    etcd: String = "etcd",
    secure: Bool = false,
    https: Bool = false,
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
    var ports = ports ?? ClusterPorts.defaults(members: etcdMembers, nodes: lbNodes)
    ports.https = https || secure ? ports.https ?? ClusterPorts.defaultHTTPSPorts(nodes: lbNodes) : nil
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
        } else if https && !existing.servesHTTPS {
          say("It was started without --https; `switchyard down`, then `switchyard up --https`.")
        } else if existing.servesHTTPS && !existing.isSecure {
          try await renewEdgeCertificate(existing, days: certificateDays)
        } else if existing.isSecure {
          var security = LocalSecurity(home: home)
          security.certificateDays = certificateDays
          let renewed = try security.renewExpiring()
          if LocalSecurity.includesEdgeCertificate(renewed) {
            try await existing.layout(home: home).storeEdgeCertificate()
          }
          say(
            renewed.isEmpty
              ? "No certificate expires within 7 days."
              : "Renewed the certificates of \(renewed.joined(separator: ", ")). etcd serves its new one to new "
                + "connections at once, the controllers' admin endpoints within seconds, and LB nodes and "
                + "backends use theirs for new connections within two minutes; nothing restarts.")
        }
        say("See `switchyard status`; `switchyard down` stops it.")
        return false
      }
      say("Found a stopped cluster in \(home); starting a new one.")
    }
    try PartLauncher.checkExecutable(etcd, package: "etcd-server")
    try PartLauncher.checkExecutable("haproxy", package: "haproxy")
    for port in ports.all where LoopbackPorts.isInUse(port) {
      let owner = LoopbackPorts.owner(of: port).map { " by \($0)" } ?? ""
      throw LocalClusterError("port \(port) is in use\(owner); stop it, or choose other ports")
    }
    // A new cluster: etcd members start from empty data directories.
    for member in 1...ClusterPorts.maxEtcdMembers {
      try? FileManager.default.removeItem(atPath: "\(home)/etcd\(member)")
    }

    let layout = ClusterLayout(
      home: home, switchyard: switchyard, etcd: etcd, ports: ports, secure: secure, https: https)
    var state = ClusterState(
      ports: ports, switchyard: switchyard, etcd: etcd, parts: [], secure: secure, https: https ? true : nil)
    let backendSpecs = try (0..<backends).map { try layout.backend($0 + 1, port: FreePort.allocate()) }
    let webSpecs = [layout.web(1, port: try FreePort.allocate())]
    let users = (layout.lbNodes() + backendSpecs + webSpecs).compactMap(ClusterLayout.etcdUser(of:))
    if secure {
      var security = layout.security
      security.certificateDays = certificateDays
      try security.create(users: AccessPolicy.clusterUsers + users.map(\.name))
      try security.addAdminCertificates(for: layout.lbNodes().map(\.name))
      say("Made a local CA, certificates and passwords in \(security.pkiDirectory) and \(security.secretsDirectory).")
    }
    if layout.servesHTTPS {
      var security = layout.security
      security.certificateDays = certificateDays
      try security.prepareHTTPS()
      say(
        "HTTPS: the local CA \(security.caCertificate) issued \(security.edgePair.certificate) (localhost, 127.0.0.1, "
          + "::1); its key is sealed with the cluster key \(security.clusterKeyFile).")
    }
    do {
      say("Starting \(etcdMembers) etcd member(s)\(secure ? " with TLS" : "")…")
      for spec in layout.etcdMembers() { try launcher.launch(spec, into: &state) }
      try await readiness.waitHealthy(state.parts(.etcd))
      if secure {
        try await layout.withEtcd(as: AccessPolicy.root, withPassword: false) { etcd in
          try await layout.security.configureAuth(etcd, users: users)
        }
        say(
          "Authentication on: roles \(AccessPolicy.registrarRole), \(AccessPolicy.controllerRole) and "
            + "\(AccessPolicy.operatorRole), one user per part."
        )
      }
      let routes = try ClusterLayout.webRoutes()
      let revision = try await layout.writeWebRoutes()
      say(
        "Wrote the routes \(routes.map { "\($0.name)" }.joined(separator: " and ")) to \(ClusterLayout.webService) "
          + "(etcd revision \(revision)\(secure ? ", as user \(AccessPolicy.operatorUser)" : ""))."
      )
      if layout.servesHTTPS {
        let stored = try await layout.storeEdgeCertificate()
        say("Stored the certificate \(LocalSecurity.edgeCertificateName) in etcd (revision \(stored)).")
      }
      say("Starting \(lbNodes) LB node(s)…")
      for spec in layout.lbNodes() { try launcher.launch(spec, into: &state) }
      try await readiness.waitHealthy(state.parts(.lb))
      if backends > 0 {
        say("Starting \(backends) backend(s)…")
        for spec in backendSpecs { try launcher.launch(spec, into: &state) }
        try await readiness.waitHealthy(state.parts(.backend))
      }
      say("Starting \(ClusterLayout.webService), the second sample service…")
      for spec in webSpecs { try launcher.launch(spec, into: &state) }
      try await readiness.waitHealthy(state.parts(.web))
      try await readiness.waitRouting(state)
      try await readiness.waitWebRoutes(state)
      if layout.servesHTTPS { try await waitHTTPS(state) }
    } catch {
      say("Start-up failed: \(error)")
      say("Stopping what was started; the logs stay in \(home)/logs.")
      _ = try? await stopAll(&state)
      try? FileManager.default.removeItem(atPath: ClusterState.path(home: home))
      throw error
    }
    say("\(ClusterLayout.webService) (\(webSpecs.map(\.name).joined(separator: ", "))) is reached through its routes:")
    for example in layout.webExamples { say("  \(example)") }
    if layout.servesHTTPS {
      say("Every LB node serves HTTPS with a certificate from the local CA:")
      for example in layout.httpsExamples { say("  \(example)") }
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
      let specs = try indices.map { try layout.backend($0, port: FreePort.allocate()) }
      if layout.secure { try await layout.addUsers(for: specs) }
      for spec in specs { try launcher.launch(spec, into: &state) }
      try await readiness.waitHealthy(state.parts(.backend))
    } else if count < running.count {
      let leaving = running.suffix(running.count - count)
      say("Stopping \(leaving.map(\.spec.name).joined(separator: ", ")) (drain, deregister, exit)…")
      await withTaskGroup(of: Void.self) { group in
        for record in leaving { group.addTask { await launcher.terminate(record) } }
      }
      let names = Set(leaving.map(\.spec.name))
      state.parts.removeAll { names.contains($0.spec.name) }
    }
    try state.save(home: home)
    let stopped = try await readiness.waitRouting(state)
    say(
      "\(count) backend(s) running; every LB node routes to them"
        + (stopped.isEmpty ? "." : " (\(stopped.joined(separator: ", ")) stopped).")
    )
  }

  // MARK: - status and logs

  /// Each part with its PID, address and health; each LB node's applied revision and servers; the
  /// registrations in etcd.
  public func status() async throws -> ClusterReport {
    try await ClusterReport.read(requireState(), home: home, probe: probe)
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

  // MARK: - State

  /// Creates `home` and its `logs/`, readable by this user only.
  private func createHome() throws {
    try FileManager.default.createDirectory(atPath: "\(home)/logs", withIntermediateDirectories: true)
    chmod(home, 0o700)
  }

  /// The recorded state of the cluster; throws when none is up in `home`.
  func requireState() throws -> ClusterState {
    guard let state = try ClusterState.load(home: home) else {
      throw LocalClusterError("no cluster is up in \(home); start one with `switchyard up`")
    }
    return state
  }
}
