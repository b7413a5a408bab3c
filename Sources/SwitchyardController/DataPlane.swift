import Foundation
import HAProxyKit
import Logging
import SwitchyardReconcile
import Synchronization

/// The controller's HAProxy: its state directory, config file, process, Runtime API and master CLI.
final class DataPlane: Sendable {
  let directory: StateDirectory
  private let installer: ConfigInstaller
  private let runtime: RuntimeAPI
  private let executable: String
  private let logger: Logger
  private let process = Mutex<HAProxyProcess?>(nil)

  /// Where the structure of the installed config is kept (next to it), for a start without etcd.
  private var installedStructurePath: String { directory.path("haproxy.cfg.structure") }
  /// Where the structure of the config HAProxy runs is kept, for a controller that adopts it.
  private var runningStructurePath: String { directory.path("running.structure") }

  init(configuration: ControllerConfiguration, logger: Logger) throws {
    directory = try StateDirectory(path: configuration.stateDirectory)
    installer = ConfigInstaller(stateDirectory: directory, executable: configuration.haproxyExecutable, logger: logger)
    runtime = RuntimeAPI(stateDirectory: directory, logger: logger)
    executable = configuration.haproxyExecutable
    self.logger = logger
  }

  var pid: Int32? { process.withLock { $0?.pid } }
  var isRunning: Bool { process.withLock { $0?.isRunning ?? false } }
  var exitDescription: String? { process.withLock { $0?.exitStatus?.description } }
  func logTail() -> String { directory.logTail(bytes: 1_000) }

  /// Adopts an HAProxy a previous controller left running. Returns its PID, or `nil` when there is none.
  func adopt() async throws -> Int32? {
    guard let adopted = try await HAProxyProcess.adopt(stateDirectory: directory, logger: logger) else { return nil }
    process.withLock { $0 = adopted }
    return adopted.pid
  }

  /// Starts HAProxy from the installed config. Returns its PID.
  func start() async throws -> Int32 {
    let started = try await HAProxyProcess.start(stateDirectory: directory, executable: executable, logger: logger)
    process.withLock { $0 = started }
    return started.pid
  }

  /// Validates `text` (unless told not to) and installs it as the config file.
  func install(_ text: String, validate: Bool = true) async throws {
    try await installer.install(text, at: directory.configPath, validate: validate)
  }

  func recordInstalledStructure(_ structure: String) {
    write(structure, to: installedStructurePath)
  }

  /// The structure of the installed config, when the config file and its structure are both there.
  func lastGoodStructure() -> String? {
    guard FileManager.default.fileExists(atPath: directory.configPath) else { return nil }
    return try? String(contentsOfFile: installedStructurePath, encoding: .utf8)
  }

  func readRunningStructure() -> String? {
    try? String(contentsOfFile: runningStructurePath, encoding: .utf8)
  }

  func writeRunningStructure(_ structure: String) {
    write(structure, to: runningStructurePath)
  }

  /// A seamless reload through the master: the new worker takes over the listening sockets.
  func reload() async throws {
    guard let cli = process.withLock({ $0?.masterCLI() }) else {
      throw HAProxyError(.invalidState, "HAProxy is not running")
    }
    _ = try await cli.reload()
  }

  /// The Runtime API session of the task, when it runs inside ``withRuntimeSession(_:)``.
  @TaskLocal private static var session: RuntimeAPI?

  /// Runs `body` with every ``observe(backends:each:)`` and ``execute(_:)`` it makes on one Runtime API
  /// connection. End it before a reload: the connection belongs to the worker that the reload retires.
  func withRuntimeSession<Result: Sendable>(_ body: () async throws -> Result) async throws -> Result {
    try await runtime.withSession { session in
      try await Self.$session.withValue(session) { try await body() }
    }
  }

  /// The servers of `backends`, without their connections (``addConnections(to:backends:)`` adds them
  /// where removals need them). With `each`, HAProxy is asked backend by backend instead of once for
  /// all: cheaper when a few backends of many are wanted.
  func observe(backends: [String], each: Bool = false) async throws -> ObservedState {
    let runtime = Self.session ?? self.runtime
    var states: [ServerState] = []
    if each {
      for backend in backends { states += try await runtime.serversState(backend: backend) }
    } else {
      states = try await runtime.serversState()
    }
    var observed = ObservedState()
    let wanted = Set(backends)
    for state in states where wanted.contains(state.backend) {
      // Only the states the Runtime API sets count: `disabled` in the config leaves CMAINT behind after
      // `state ready`, and an unresolved host name sets RMAINT, neither of which `set server` changes.
      let admin: SwitchyardReconcile.ServerAdminState =
        state.adminFlags.contains(.forcedMaint) ? .maint : state.adminFlags.contains(.forcedDrain) ? .drain : .ready
      observed.backends[state.backend, default: []].append(
        ObservedServer(
          name: state.server,
          address: state.address,
          port: state.port,
          weight: state.userWeight,
          adminState: admin,
          isUp: state.operationalState == .running,
          isCheckEnabled: state.isCheckEnabled,
          id: state.id
        )
      )
    }
    return observed
  }

  /// Fills in the connections of the servers of `backends` in `observed` (`show servers conn`): only
  /// removals need them, so a pass asks for them only where servers are leaving.
  func addConnections(to observed: inout ObservedState, backends: [String]) async throws {
    let runtime = Self.session ?? self.runtime
    for backend in backends where observed.backends[backend]?.isEmpty == false {
      var connections: [String: ServerConnections] = [:]
      for entry in try await runtime.serverConnections(backend: backend) { connections[entry.server] = entry }
      observed.backends[backend] = observed.backends[backend]?.map { server in
        var server = server
        server.activeConnections = connections[server.name]?.used ?? 0
        server.idleConnections = connections[server.name]?.idle ?? 0
        server.connectionsObserved = true
        return server
      }
    }
  }

  /// Sends planned commands in order, in batches within a session, and returns for each `nil` when
  /// HAProxy confirmed it, else the error. Connection failures and timeouts throw. A server to add with an
  /// id in `newServerIDs` gets that id.
  func execute(_ commands: [RuntimeCommand], newServerIDs: [ServerRef: Int] = [:]) async throws -> [HAProxyError?] {
    let runtime = Self.session ?? self.runtime
    return try await runtime.run(commands.map { try Self.change(for: $0, newServerID: newServerIDs[$0.server]) })
  }

  /// The Runtime API change for a planned command, validated; an added server gets `newServerID` when
  /// there is one (see ``Plan/newServerIDs``).
  ///
  /// Other commands name servers by name, not `backend/#id`: HAProxy 2.6 finds a server either way by
  /// walking every server of its backend (a profile showed the same cost), and a name cannot point at
  /// another server than the one observed.
  static func change(for command: RuntimeCommand, newServerID: Int? = nil) throws -> RuntimeAPI.Change {
    let ref = command.server
    switch command {
    case .addServer(_, let address, let port, let options):
      return try .addServer(
        backend: ref.backend, server: ref.server, address: address.text, port: port, options: options,
        id: newServerID)
    case .enableHealth:
      return try .enableHealth(backend: ref.backend, server: ref.server)
    case .setState(_, let state):
      let target = HAProxyKit.ServerAdminState(rawValue: state.rawValue) ?? .maint
      return try .setServerState(backend: ref.backend, server: ref.server, state: target)
    case .setAddress(_, let address, let port):
      return try .setServerAddress(backend: ref.backend, server: ref.server, address: address.text, port: port)
    case .setWeight(_, let weight):
      return try .setWeight(backend: ref.backend, server: ref.server, weight: weight)
    case .shutdownSessions:
      return try .shutdownSessions(backend: ref.backend, server: ref.server)
    case .deleteServer:
      return try .deleteServer(backend: ref.backend, server: ref.server)
    }
  }

  /// Stops HAProxy gracefully (its workers finish their connections), forcing it after `timeout`.
  func stop(timeout: Duration) async {
    guard let running = process.withLock({ $0 }) else { return }
    do {
      try await running.stop(timeout: timeout)
    } catch {
      logger.error("Stopping HAProxy failed", metadata: ["error": "\(error)"])
    }
  }

  private func write(_ text: String, to path: String) {
    do {
      try Data(text.utf8).write(to: URL(fileURLWithPath: path), options: .atomic)
      _ = chmod(path, 0o600)
    } catch {
      logger.warning("Could not write \(path)", metadata: ["error": "\(error)"])
    }
  }
}
