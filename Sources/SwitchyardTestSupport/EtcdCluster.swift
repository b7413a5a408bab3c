import Foundation
import Synchronization

/// Real etcd members on free loopback ports, for integration tests and benchmarks.
///
/// Members are numbered from 0. Each has its own client and peer port and data directory under
/// one temporary directory; ``shutdown()`` (or leaving ``with(members:options:_:)``) stops them all
/// and deletes the directory.
public final class EtcdCluster: Sendable {
  /// How to start the cluster.
  public struct Options: Sendable {
    /// When set, members serve clients over TLS and require client certificates.
    public var tls: TLSFiles?
    /// Extra command-line flags for every member (for example `--auto-compaction-retention`).
    public var extraArguments: [String]

    /// Creates options.
    public init(tls: TLSFiles? = nil, extraArguments: [String] = []) {
      self.tls = tls
      self.extraArguments = extraArguments
    }
  }

  /// One member's fixed identity.
  public struct Member: Sendable {
    /// `etcd1`, `etcd2`, …
    public var name: String
    /// Client port on 127.0.0.1.
    public var clientPort: Int
    /// Peer port on 127.0.0.1.
    public var peerPort: Int
    /// Data directory.
    public var dataDirectory: String
  }

  /// The members, in order.
  public let members: [Member]
  /// Options the cluster was started with.
  public let options: Options
  private let directory: TemporaryDirectory
  private let processes: Mutex<[ManagedProcess?]>
  private let token: String

  private init(count: Int, options: Options) throws {
    let directory = try TemporaryDirectory(prefix: "etcd")
    self.directory = directory
    self.options = options
    token = "switchyard-\(UUID().uuidString.prefix(8))"
    members = try (0..<count).map { index in
      Member(
        name: "etcd\(index + 1)",
        clientPort: try FreePort.allocate(),
        peerPort: try FreePort.allocate(),
        dataDirectory: "\(directory.path)/etcd\(index + 1).data"
      )
    }
    processes = Mutex(Array(repeating: nil, count: count))
  }

  /// Starts `members` members and waits until all are healthy.
  public static func start(members count: Int = 1, options: Options = Options()) async throws -> EtcdCluster {
    let cluster = try EtcdCluster(count: count, options: options)
    do {
      for index in 0..<count { try cluster.launch(index) }
      for index in 0..<count { try await cluster.waitHealthy(member: index) }
    } catch {
      await cluster.shutdown()
      throw error
    }
    return cluster
  }

  /// Starts a cluster, runs `body`, and always shuts the cluster down afterwards.
  public static func with<T: Sendable>(
    members count: Int = 1,
    options: Options = Options(),
    _ body: (EtcdCluster) async throws -> T
  ) async throws -> T {
    let cluster = try await start(members: count, options: options)
    do {
      let result = try await body(cluster)
      await cluster.shutdown()
      return result
    } catch {
      await cluster.shutdown()
      throw error
    }
  }

  /// `127.0.0.1:PORT` for every member.
  public var endpoints: [String] { members.map { "127.0.0.1:\($0.clientPort)" } }

  /// `127.0.0.1:PORT` of one member.
  public func endpoint(of member: Int) -> String { endpoints[member] }

  /// The member's client URL (`http://` or `https://`).
  public func clientURL(of member: Int) -> String {
    "\(options.tls == nil ? "http" : "https")://127.0.0.1:\(members[member].clientPort)"
  }

  /// The PID of a running member.
  public func pid(of member: Int) -> Int32? {
    processes.withLock { $0[member]?.pid }
  }

  private func launch(_ index: Int) throws {
    let member = members[index]
    let initialCluster = members.map { "\($0.name)=http://127.0.0.1:\($0.peerPort)" }.joined(separator: ",")
    var arguments = [
      "--name", member.name,
      "--data-dir", member.dataDirectory,
      "--listen-client-urls", clientURL(of: index),
      "--advertise-client-urls", clientURL(of: index),
      "--listen-peer-urls", "http://127.0.0.1:\(member.peerPort)",
      "--initial-advertise-peer-urls", "http://127.0.0.1:\(member.peerPort)",
      "--initial-cluster", initialCluster,
      "--initial-cluster-state", "new",
      "--initial-cluster-token", token,
      // Loopback latency is tiny: short raft timers make elections and restarts quick.
      "--heartbeat-interval", "50",
      "--election-timeout", "500",
      "--log-level", "warn",
    ]
    if let tls = options.tls {
      arguments += [
        "--cert-file", tls.serverCertificate,
        "--key-file", tls.serverKey,
        "--trusted-ca-file", tls.caCertificate,
        "--client-cert-auth",
      ]
    }
    arguments += options.extraArguments
    let process = try ManagedProcess(
      "etcd",
      arguments: arguments,
      logPath: "\(directory.path)/\(member.name).log"
    )
    processes.withLock { $0[index] = process }
  }

  /// Waits until `etcdctl endpoint health` passes for the member (at most `timeout`).
  public func waitHealthy(member index: Int, timeout: Duration = .seconds(20)) async throws {
    let clock = ContinuousClock()
    let deadline = clock.now.advanced(by: timeout)
    var lastError = ""
    while clock.now < deadline {
      guard let process = processes.withLock({ $0[index] }), process.isRunning else {
        throw TestSupportError("\(members[index].name) exited:\n\(logTail(member: index))")
      }
      if FreePort.isListening(members[index].clientPort) {
        do {
          _ = try await etcdctl(["endpoint", "health", "--command-timeout=2s"], endpoints: [endpoint(of: index)])
          return
        } catch {
          lastError = "\(error)"
        }
      }
      try await Task.sleep(for: .milliseconds(100))
    }
    throw TestSupportError(
      "\(members[index].name) not healthy after \(timeout): \(lastError)\n\(logTail(member: index))"
    )
  }

  /// Stops a member gracefully (SIGTERM) and waits for it to exit.
  public func stop(member index: Int) async throws {
    let process = processes.withLock { processes -> ManagedProcess? in
      defer { processes[index] = nil }
      return processes[index]
    }
    await process?.terminate(timeout: .seconds(10))
  }

  /// Kills a member (SIGKILL).
  public func kill(member index: Int) {
    let process = processes.withLock { processes -> ManagedProcess? in
      defer { processes[index] = nil }
      return processes[index]
    }
    process?.kill()
  }

  /// Starts a stopped member again with its data directory, and waits until it is healthy.
  public func start(member index: Int) async throws {
    let running = processes.withLock { $0[index]?.isRunning ?? false }
    guard !running else { return }
    try launch(index)
    try await waitHealthy(member: index)
  }

  /// The end of a member's log.
  public func logTail(member index: Int) -> String {
    let path = "\(directory.path)/\(members[index].name).log"
    guard let data = FileManager.default.contents(atPath: path) else { return "" }
    return String(decoding: data.suffix(3000), as: UTF8.self)
  }

  /// Runs etcdctl against the cluster (all members unless `endpoints` is given) and returns its
  /// standard output; throws with its standard error when it fails.
  @discardableResult
  public func etcdctl(_ arguments: [String], endpoints: [String]? = nil, user: String? = nil) async throws -> String {
    var full = ["--endpoints", (endpoints ?? self.endpoints).joined(separator: ",")]
    if let tls = options.tls {
      full += ["--cacert", tls.caCertificate, "--cert", tls.clientCertificate, "--key", tls.clientKey]
    }
    if let user { full += ["--user", user] }
    full += arguments
    return try await runTool("etcdctl", full, environment: ["ETCDCTL_API": "3"])
  }

  /// Creates the root user with `rootPassword`, gives it the root role, and enables auth.
  public func enableAuth(rootPassword: String) async throws {
    try await etcdctl(["user", "add", "root", "--new-user-password=\(rootPassword)"])
    try await etcdctl(["user", "grant-role", "root", "root"])
    try await etcdctl(["auth", "enable"])
  }

  /// Adds a user with a password and roles (auth may be enabled already: pass the root user).
  public func addUser(_ name: String, password: String, roles: [String] = [], as admin: String? = nil) async throws {
    try await etcdctl(["user", "add", name, "--new-user-password=\(password)"], user: admin)
    for role in roles { try await etcdctl(["user", "grant-role", name, role], user: admin) }
  }

  /// Stops every member and deletes the data.
  public func shutdown() async {
    let all = processes.withLock { processes -> [ManagedProcess] in
      defer { processes = Array(repeating: nil, count: processes.count) }
      return processes.compactMap { $0 }
    }
    for process in all { await process.terminate(timeout: .seconds(5)) }
    directory.remove()
  }
}

/// Runs a command to completion and returns its standard output; throws with its standard error
/// when it exits non-zero.
@discardableResult
public func runTool(_ tool: String, _ arguments: [String], environment: [String: String] = [:]) async throws -> String {
  let directory = try TemporaryDirectory(prefix: "tool")
  defer { directory.remove() }
  var merged = ProcessInfo.processInfo.environment
  merged.merge(environment) { _, new in new }
  let outPath = "\(directory.path)/out"
  let process = try ManagedProcess(tool, arguments: arguments, environment: merged, logPath: outPath)
  guard let status = await process.waitForExit(timeout: .seconds(30)) else {
    process.kill()
    throw TestSupportError("\(tool) \(arguments.joined(separator: " ")) timed out")
  }
  let output = process.logTail(bytes: 1 << 20)
  guard status == 0 else {
    throw TestSupportError("\(tool) \(arguments.joined(separator: " ")) exited \(status): \(output)")
  }
  return output
}
