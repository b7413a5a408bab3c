import Foundation
import SwitchyardProcess
import Synchronization

/// Real etcd members on free loopback ports, for integration tests and benchmarks, which are always
/// stopped and cleaned up.
///
/// Members are addressed by index from 0, in the order of ``members`` and ``endpoints``; member `i` is named
/// `etcd<i+1>`. Each has its own client and peer port from ``FreePort`` and its own data directory, all under
/// one temporary ``directory``. Prefer ``with(members:options:_:)``, which shuts the cluster down however the
/// body ends; ``shutdown()`` stops every member and deletes the directory. If a test loses the cluster
/// without shutting it down, `deinit` kills the members, and if the test process exits or crashes first, the
/// process registry behind ``ManagedProcess`` does.
///
/// Calls for one member (stop, kill, start) must not overlap; calls for different members may.
public final class EtcdCluster: Sendable {
  /// The members, by index.
  public let members: [Member]
  /// The options the cluster was started with.
  public let options: Options
  /// Holds every member's data directory and log; deleted by ``shutdown()``.
  public let directory: TemporaryDirectory
  private let token: String
  let environment: [String: String]
  let state: Mutex<State>

  struct State {
    /// The member processes by index; nil for a member that was stopped or killed.
    var processes: [ManagedProcess?]
    /// Set by ``enableAuth(rootPassword:)``, so that health checks keep working with auth enabled.
    var rootCredentials: Credentials?
    var isShutDown = false
  }

  private init(memberCount: Int, options: Options) throws {
    guard memberCount >= 1 else {
      throw ProcessError(.invalidState, "a cluster needs at least one member, not \(memberCount)")
    }
    let directory = try TemporaryDirectory(prefix: "switchyard-etcd")
    let ports: [Int]
    do {
      ports = try FreePort.allocate(2 * memberCount)
    } catch {
      directory.remove()
      throw error
    }
    members = (0..<memberCount).map { index in
      let name = "etcd\(index + 1)"
      return Member(
        name: name,
        clientPort: ports[2 * index],
        peerPort: ports[2 * index + 1],
        dataDirectory: directory.path("\(name).data"),
        logPath: directory.path("\(name).log")
      )
    }
    self.options = options
    self.directory = directory
    // A cluster ID derives from the token and the peer URLs: a unique token keeps clusters apart even if a
    // stray member from another test reaches one of our ports.
    token = directory.url.lastPathComponent
    environment = Self.childEnvironment()
    state = Mutex(State(processes: Array(repeating: nil, count: memberCount)))
  }

  deinit {
    for process in state.withLock({ $0.processes }) { process?.kill() }
    directory.remove()
  }

  /// Starts a new cluster of `members` members and returns once every member is healthy.
  ///
  /// One or three members take about 0.2 to 0.5 s on loopback. If a member exits or is not healthy within
  /// ``Options/startupTimeout``, everything started is stopped and the error holds the member's log tail.
  public static func start(members count: Int = 1, options: Options = Options()) async throws -> EtcdCluster {
    let cluster = try EtcdCluster(memberCount: count, options: options)
    do {
      for index in cluster.members.indices {
        try cluster.launch(index)
        if index < count - 1 { try await cluster.waitServingPeers(member: index) }
      }
      for index in cluster.members.indices { try await cluster.waitHealthy(member: index) }
      return cluster
    } catch {
      await cluster.shutdown()
      throw error
    }
  }

  /// Starts a cluster, runs `body` with it, and shuts the cluster down however `body` ends: with a result,
  /// an error, or cancellation.
  public nonisolated(nonsending) static func with<Result>(
    members count: Int = 1,
    options: Options = Options(),
    _ body: (EtcdCluster) async throws -> Result
  ) async throws -> Result {
    let cluster = try await start(members: count, options: options)
    let result: Result
    do {
      result = try await body(cluster)
    } catch {
      await cluster.shutdown()
      throw error
    }
    await cluster.shutdown()
    return result
  }

  /// Every member's client address as `127.0.0.1:PORT`, by index, whether the member runs or not.
  public var endpoints: [String] { members.indices.map(endpoint(of:)) }

  /// A member's client address as `127.0.0.1:PORT`.
  public func endpoint(of member: Int) -> String {
    "127.0.0.1:\(members[member].clientPort)"
  }

  /// A member's client URL: `https://` when the cluster uses TLS, `http://` otherwise.
  public func clientURL(of member: Int) -> String {
    "\(options.tls == nil ? "http" : "https")://\(endpoint(of: member))"
  }

  /// The PID of a running member, for tests that check that it is gone after a stop.
  public func pid(of member: Int) -> Int32? {
    state.withLock { $0.processes[member] }?.pid
  }

  /// Whether a member's process runs (it may still be starting up).
  public func isRunning(member: Int) -> Bool {
    state.withLock { $0.processes[member] }?.isRunning ?? false
  }

  /// A member's whole log, across restarts.
  public func logContents(of member: Int) -> String {
    guard let data = FileManager.default.contents(atPath: members[member].logPath) else { return "" }
    return String(decoding: data, as: UTF8.self)
  }

  /// The last `bytes` bytes of a member's log, for failure messages.
  public func logTail(of member: Int, bytes: Int = 4_000) -> String {
    guard let data = FileManager.default.contents(atPath: members[member].logPath) else { return "" }
    return String(decoding: data.suffix(bytes), as: UTF8.self)
  }

  /// Stops a member gracefully (SIGTERM, then SIGKILL after `timeout`), as an orderly restart or a rolling
  /// upgrade would; a leader hands leadership over first. Its data directory stays, for ``start(member:)``.
  ///
  /// Throws ``ProcessError/Code/invalidState`` if the member is not running, with its exit status and
  /// log tail if it had exited by itself, which is worth knowing.
  public func stop(member index: Int, timeout: Duration = .seconds(10)) async throws {
    let process = try takeRunningProcess(index)
    await process.terminate(timeout: timeout)
  }

  /// Kills a member (SIGKILL), as a crash or power loss would; returns once it is gone. Its data directory
  /// stays, for ``start(member:)``.
  ///
  /// If it was the leader, a write that another member forwards to it before noticing (within about one
  /// election timeout) is lost inside etcd 3.4 and fails only at the client's deadline. Unless the test is
  /// about that, call ``waitHealthy(member:timeout:)`` on a surviving member first: it returns once there is a
  /// new leader. Throws ``ProcessError/Code/invalidState`` if the member is not running.
  public func kill(member index: Int) throws {
    try takeRunningProcess(index).kill()
  }

  /// Freezes a member with SIGSTOP, as a hung process, a stalled disk or a paused VM would: its sockets stay
  /// open and the kernel still accepts connections and data for it, but it answers nothing and its peers
  /// soon elect another leader. ``resume(member:)`` thaws it; ``shutdown()`` kills it frozen or not.
  public func pause(member index: Int) throws {
    try runningProcess(index).signal(SIGSTOP)
  }

  /// Freezes a member (``pause(member:)``), runs `body`, and thaws the member however `body` ends.
  public nonisolated(nonsending) func whilePaused<Result>(
    member index: Int,
    _ body: () async throws -> Result
  ) async throws -> Result {
    try pause(member: index)
    let result: Result
    do {
      result = try await body()
    } catch {
      try? resume(member: index)
      throw error
    }
    try resume(member: index)
    return result
  }

  /// Thaws a member frozen by ``pause(member:)`` (SIGCONT).
  public func resume(member index: Int) throws {
    try runningProcess(index).signal(SIGCONT)
  }

  private func runningProcess(_ index: Int) throws -> ManagedProcess {
    guard let process = state.withLock({ $0.processes[index] }), process.isRunning else {
      throw ProcessError(.invalidState, "\(members[index].name) is not running")
    }
    return process
  }

  /// Starts a stopped or killed member again with its data directory and the same flags, and returns once
  /// it has rejoined and is healthy.
  public func start(member index: Int) async throws {
    let running = state.withLock { $0.processes[index] }?.isRunning ?? false
    guard !running else {
      throw ProcessError(.invalidState, "\(members[index].name) is already running")
    }
    try launch(index)
    do {
      try await waitHealthy(member: index)
    } catch {
      // A member that did not come up must not stay half-started: a retry would find it "running".
      state.withLock { $0.processes[index] }?.kill()
      throw error
    }
  }

  /// Waits until a member answers `etcdctl endpoint health`: it knows a leader and serves a linearizable
  /// read. Fails early if the member exits.
  ///
  /// - Parameter timeout: At most this long; ``Options/startupTimeout`` if nil.
  public func waitHealthy(member index: Int, timeout: Duration? = nil) async throws {
    let member = members[index]
    let timeout = timeout ?? options.startupTimeout
    let deadline = ContinuousClock.now.advanced(by: timeout)
    var problem = "its client port does not accept connections"
    while true {
      guard let process = state.withLock({ $0.processes[index] }) else {
        throw ProcessError(.invalidState, "\(member.name) is not running; start(member:) starts it")
      }
      if let status = process.exitStatus { throw endedWhileStarting(index, status) }
      // etcdctl against a closed port waits out its dial timeout; a refused connect costs nothing.
      if Loopback.isAcceptingConnections(on: member.clientPort) {
        do {
          try await runEtcdctl(
            ["endpoint", "health", "--dial-timeout=1s", "--command-timeout=2s"],
            members: [index],
            user: state.withLock { $0.rootCredentials },
            timeout: .seconds(10)
          )
          return
        } catch let error as ProcessError {
          problem = error.message
        }
      }
      guard ContinuousClock.now < deadline else { break }
      try await Task.sleep(for: .milliseconds(50))
    }
    throw ProcessError(
      .notHealthy,
      """
      \(member.name) at \(clientURL(of: index)) is not healthy after \(timeout): \(problem)
      Its log ends:
      \(logTail(of: index))
      """
    )
  }

  /// Stops every member and deletes ``directory``; safe to call more than once.
  ///
  /// Members get SIGKILL: their data is deleted right after, so a graceful stop would only cost time (a
  /// terminated leader of a cluster that is going down waits seconds to hand leadership to a follower that
  /// is going down too).
  public func shutdown() async {
    let processes = state.withLock { state in
      state.isShutDown = true
      defer { state.processes = state.processes.map { _ in nil } }
      return state.processes
    }
    for process in processes { process?.kill() }
    directory.remove()
  }

  private func launch(_ index: Int) throws {
    let process = try ManagedProcess(
      options.etcdExecutable,
      arguments: arguments(of: index),
      environment: environment,
      logPath: members[index].logPath
    )
    let isShutDown = state.withLock { state in
      if !state.isShutDown { state.processes[index] = process }
      return state.isShutDown
    }
    if isShutDown {
      process.kill()
      throw ProcessError(.invalidState, "the cluster has been shut down")
    }
  }

  /// Waits until a new member serves its peer port.
  ///
  /// Before it bootstraps, a member of a new etcd 3.4 cluster asks every other member whether it has
  /// bootstrapped already (`GET /members` on the peer port), waiting up to a second for each one that
  /// accepts connections but does not serve yet, which is what members started together do: a new 3-member
  /// cluster took over 2 s to start. A member whose peers refuse connections or answer goes on at once, so
  /// the next member starts only when this one serves; the whole cluster then starts in about 0.3 s.
  private func waitServingPeers(member index: Int) async throws {
    let member = members[index]
    let deadline = ContinuousClock.now.advanced(by: options.startupTimeout)
    while !(await Loopback.answersHTTP(on: member.peerPort, path: "/version", timeout: .milliseconds(200))) {
      if let status = state.withLock({ $0.processes[index] })?.exitStatus {
        throw endedWhileStarting(index, status)
      }
      guard ContinuousClock.now < deadline else {
        throw ProcessError(
          .notHealthy,
          "\(member.name) does not serve its peer port \(member.peerPort) after \(options.startupTimeout); "
            + "its log ends:\n\(logTail(of: index))"
        )
      }
      try await Task.sleep(for: .milliseconds(10))
    }
  }

  private func endedWhileStarting(_ index: Int, _ status: ExitStatus) -> ProcessError {
    ProcessError(
      .notHealthy,
      "\(members[index].name) ended with \(status) while starting; its log ends:\n"
        + logTail(of: index)
    )
  }

  private func takeRunningProcess(_ index: Int) throws -> ManagedProcess {
    let process = state.withLock { state in
      defer { state.processes[index] = nil }
      return state.processes[index]
    }
    guard let process else {
      throw ProcessError(.invalidState, "\(members[index].name) is not running")
    }
    if let status = process.exitStatus {
      throw ProcessError(
        .invalidState,
        "\(members[index].name) had already ended with \(status); its log ends:\n"
          + logTail(of: index)
      )
    }
    return process
  }

  private func arguments(of index: Int) -> [String] {
    let member = members[index]
    let initialCluster = members.map { "\($0.name)=\($0.peerURL)" }.joined(separator: ",")
    var arguments = [
      "--name=\(member.name)",
      "--data-dir=\(member.dataDirectory)",
      "--listen-client-urls=\(clientURL(of: index))",
      "--advertise-client-urls=\(clientURL(of: index))",
      "--listen-peer-urls=\(member.peerURL)",
      "--initial-advertise-peer-urls=\(member.peerURL)",
      "--initial-cluster=\(initialCluster)",
      // etcd ignores the initial-cluster flags once the data directory holds a member ("server has been
      // already initialized"), so a restart with these same flags rejoins. `existing` is only for a new
      // member that `member add` announced to a running cluster.
      "--initial-cluster-state=new",
      "--initial-cluster-token=\(token)",
      "--heartbeat-interval=\(Self.milliseconds(options.heartbeatInterval))",
      "--election-timeout=\(Self.milliseconds(options.electionTimeout))",
      // zap (JSON lines) is the logger that stays in etcd 3.5; `stderr` keeps the log out of journald when
      // tests run under systemd.
      "--logger=zap",
      "--log-outputs=stderr",
      "--log-level=\(options.logLevel.rawValue)",
    ]
    if let tls = options.tls {
      arguments += [
        "--cert-file=\(tls.serverCertificate)",
        "--key-file=\(tls.serverKey)",
        "--trusted-ca-file=\(tls.caCertificate)",
        "--client-cert-auth",
      ]
    }
    return arguments + options.extraArguments
  }

  /// This process's environment without `ETCD_*` and `ETCDCTL_*` variables: etcd and etcdctl refuse to start
  /// when a variable and a flag set the same option, and a developer's shell often has `ETCDCTL_ENDPOINTS`.
  private static func childEnvironment() -> [String: String] {
    var environment = ProcessInfo.processInfo.environment.filter { name, _ in
      !(name.hasPrefix("ETCD_") || name.hasPrefix("ETCDCTL_")) || name == "ETCD_UNSUPPORTED_ARCH"
    }
    #if arch(arm64)
      // etcd 3.4 refuses to start on arm64 without this.
      if environment["ETCD_UNSUPPORTED_ARCH"] == nil { environment["ETCD_UNSUPPORTED_ARCH"] = "arm64" }
    #endif
    environment["ETCDCTL_API"] = "3"
    return environment
  }

  private static func milliseconds(_ duration: Duration) -> Int64 {
    let (seconds, attoseconds) = duration.components
    return seconds * 1_000 + attoseconds / 1_000_000_000_000_000
  }
}
