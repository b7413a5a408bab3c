import Logging

/// The Runtime API on HAProxy's admin stats socket (`stats socket <dir>/admin.sock mode 600 level admin`).
///
/// Each command gets a connection of its own and the reply is everything HAProxy writes until it closes
/// the connection; within ``withSession(_:)`` commands share one connection in interactive mode instead. Commands are checked before anything is sent: a newline, a carriage return or a `;` would
/// let a caller's value start a second command, so they are refused, as is any non-printable character.
///
/// The typed helpers check every reply against the one HAProxy 2.6 gives on success and throw
/// ``HAProxyError/Code/unexpectedReply`` with the command and reply otherwise. Many successful commands
/// answer with an empty line; many errors are plain sentences without a prefix (`No such server.`).
///
/// Changes made here live only in the running worker: servers added at runtime disappear on reload, so the
/// configuration file must describe the same state before the next reload.
public struct RuntimeAPI: Sendable {
  /// The admin socket.
  public let socketPath: String
  /// How long a command may take, from connecting until HAProxy closes the connection.
  public let timeout: Duration
  private let logger: Logger
  private let session: UnixSocketSession?

  /// Creates a client for the socket at `socketPath`; nothing is connected until a command is sent.
  public init(socketPath: String, timeout: Duration = .seconds(5), logger: Logger) {
    self.init(socketPath: socketPath, timeout: timeout, logger: logger, session: nil)
  }

  private init(socketPath: String, timeout: Duration, logger: Logger, session: UnixSocketSession?) {
    self.socketPath = socketPath
    self.timeout = timeout
    self.logger = logger
    self.session = session
  }

  /// Runs `body` with a client whose commands all go over one connection in HAProxy's interactive mode
  /// (`prompt`), which saves a connection per command; the connection is closed when `body` returns.
  ///
  /// The connection belongs to the worker that accepted it: after a reload, commands on it still reach
  /// the old worker, so end the session before reloading. If the connection fails, every later command
  /// of the session fails with ``HAProxyError/Code/connectionFailed``.
  public func withSession<Result: Sendable>(_ body: (RuntimeAPI) async throws -> Result) async throws -> Result {
    let session = try await UnixSocketSession.open(socketPath: socketPath, timeout: timeout)
    defer { session.close() }
    return try await body(RuntimeAPI(socketPath: socketPath, timeout: timeout, logger: logger, session: session))
  }

  /// Creates a client for the admin socket of `stateDirectory`.
  public init(stateDirectory: StateDirectory, timeout: Duration = .seconds(5), logger: Logger) {
    self.init(socketPath: stateDirectory.adminSocketPath, timeout: timeout, logger: logger)
  }

  /// Sends one command and returns HAProxy's whole reply, unchecked.
  ///
  /// - Throws: ``HAProxyError/Code/invalidCommand`` before connecting if the command is empty or contains
  ///   `\n`, `\r`, `;` or another non-printable or non-ASCII character; ``HAProxyError/Code/connectionFailed``
  ///   or ``HAProxyError/Code/timedOut`` if there is no complete reply.
  public func send(_ command: String) async throws -> String {
    try CommandValidation.checkCommand(command)
    logger.debug("Runtime API command", metadata: ["haproxy.command": "\(command)"])
    if let session { return try await session.send(command) }
    return try await UnixSocketClient.request(command, socketPath: socketPath, timeout: timeout)
  }

  // MARK: Servers

  /// Adds a server to `backend` at runtime (`add server`).
  ///
  /// The new server starts in maintenance: ``setServerState(backend:server:state:)`` with `.ready` lets it
  /// take traffic, ``enableHealth(backend:server:)`` starts its checks. `default-server` lines do not apply
  /// to dynamic servers, so pass `check`, `inter`, `weight` and the like in `options`. The backend must use
  /// a dynamic algorithm (`roundrobin`, `leastconn`, `random`, `first`, or consistent hashing).
  ///
  /// - Parameters:
  ///   - address: An IPv4 or IPv6 literal. Host names are refused: HAProxy accepts them for a dynamic
  ///     server but never resolves them (it stays without address).
  ///   - port: 1 to 65535.
  ///   - options: Further keywords, appended verbatim, such as `["weight", "100", "check", "inter", "2s"]`.
  ///     Each must be printable ASCII without spaces, `;` or `#`.
  public func addServer(
    backend: String,
    server: String,
    address: String,
    port: Int,
    options: [String] = []
  ) async throws {
    try CommandValidation.checkName(backend, "backend")
    try CommandValidation.checkName(server, "server")
    let endpoint = try CommandValidation.endpoint(address: address, port: port)
    for option in options { try CommandValidation.checkOption(option) }
    let command = (["add server \(backend)/\(server) \(endpoint)"] + options).joined(separator: " ")
    try await expect(command) { $0 == "New server registered." }
  }

  /// Starts the health checks of a server that was added with `check` (`enable health`).
  ///
  /// Fails for a server without `check` (`Health check was not configured on this server, cannot enable.`).
  public func enableHealth(backend: String, server: String) async throws {
    try await expectEmpty("enable health \(try CommandValidation.serverPath(backend, server))")
  }

  /// Sets a server's administrative state (`set server <backend>/<server> state ready|drain|maint`).
  public func setServerState(backend: String, server: String, state: ServerAdminState) async throws {
    try await expectEmpty("set server \(try CommandValidation.serverPath(backend, server)) state \(state.rawValue)")
  }

  /// Changes a server's address and port (`set server … addr … port …`).
  ///
  /// HAProxy answers with what changed (`IP changed from '…' to '…', port changed from '…' to '…'`) or with
  /// `no need to change the addr…`; both count as success.
  public func setServerAddress(backend: String, server: String, address: String, port: Int) async throws {
    let path = try CommandValidation.serverPath(backend, server)
    try CommandValidation.checkAddress(address)
    try CommandValidation.checkPort(port)
    try await expect("set server \(path) addr \(address) port \(port)") {
      $0.hasPrefix("IP changed from ") || $0.hasPrefix("no need to change the addr")
    }
  }

  /// Sets a server's weight, 0 to 256 (`set weight`). A backend with a static algorithm only takes 0 or the
  /// initial weight.
  public func setWeight(backend: String, server: String, weight: Int) async throws {
    let path = try CommandValidation.serverPath(backend, server)
    guard (0...256).contains(weight) else {
      throw HAProxyError(.invalidCommand, "weight \(weight) is outside 0...256")
    }
    try await expectEmpty("set weight \(path) \(weight)")
  }

  /// Deletes a dynamic or configured server (`del server`).
  ///
  /// HAProxy only deletes a server in maintenance that has no connections, idle connections or queue:
  /// drain it, put it in maintenance, wait until ``serverConnections(backend:)`` shows it idle (or call
  /// ``shutdownSessions(backend:server:)``), then delete it.
  public func deleteServer(backend: String, server: String) async throws {
    try await expect("del server \(try CommandValidation.serverPath(backend, server))") { $0 == "Server deleted." }
  }

  /// Closes every session on a server at once (`shutdown sessions server`).
  public func shutdownSessions(backend: String, server: String) async throws {
    try await expectEmpty("shutdown sessions server \(try CommandValidation.serverPath(backend, server))")
  }

  // MARK: State and statistics

  /// The servers' state (`show servers state [backend]`), of every backend or of one.
  public func serversState(backend: String? = nil) async throws -> [ServerState] {
    var command = "show servers state"
    if let backend {
      try CommandValidation.checkName(backend, "backend")
      command += " \(backend)"
    }
    let reply = try await send(command)
    do {
      return try ServerState.parse(reply)
    } catch let error as HAProxyError {
      throw HAProxyError(error.code, error.message, command: command, reply: reply)
    }
  }

  /// Every proxy's and server's statistics (`show stat`).
  public func stats() async throws -> [StatRow] {
    let command = "show stat"
    let reply = try await send(command)
    do {
      return try StatRow.parse(reply)
    } catch let error as HAProxyError {
      throw HAProxyError(error.code, error.message, command: command, reply: reply)
    }
  }

  /// Current connections of each server of `backend` (`show servers conn <backend>`), to tell when a
  /// drained server is idle and can be deleted.
  public func serverConnections(backend: String) async throws -> [ServerConnections] {
    try CommandValidation.checkName(backend, "backend")
    let command = "show servers conn \(backend)"
    let reply = try await send(command)
    do {
      return try ServerConnections.parse(reply)
    } catch let error as HAProxyError {
      throw HAProxyError(error.code, error.message, command: command, reply: reply)
    }
  }

  // MARK: Reply checks

  private func expectEmpty(_ command: String) async throws {
    try await expect(command) { $0.isEmpty }
  }

  /// Sends `command` and throws unless `isSuccess` accepts the reply without its trailing newlines.
  private func expect(_ command: String, _ isSuccess: (String) -> Bool) async throws {
    let reply = try await send(command)
    guard isSuccess(reply.trimmingTrailingNewlines()) else {
      logger.info(
        "Runtime API command failed",
        metadata: ["haproxy.command": "\(command)", "haproxy.reply": "\(reply.trimmingTrailingNewlines())"]
      )
      throw HAProxyError(.unexpectedReply, "HAProxy did not confirm the command", command: command, reply: reply)
    }
  }
}

/// The administrative states that `set server … state` sets.
public enum ServerAdminState: String, Sendable, Hashable, CaseIterable {
  /// Takes traffic (leaves drain and maintenance).
  case ready
  /// Takes no new connections except persistent ones; existing connections continue.
  case drain
  /// Takes no traffic at all; the state in which a server can be deleted.
  case maint
}
