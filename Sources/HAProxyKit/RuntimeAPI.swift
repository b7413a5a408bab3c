import Logging

/// The Runtime API on HAProxy's admin stats socket (`stats socket <dir>/admin.sock mode 600 level admin`).
///
/// Each command gets a connection of its own and the reply is everything HAProxy writes until it closes
/// the connection; within ``withSession(_:)`` commands share one connection in interactive mode instead. Commands are checked before anything is sent: a newline, a carriage return or a `;` would
/// let a caller's value start a second command, so they are refused, as is any non-printable character.
///
/// The typed helpers check every reply against the ones HAProxy 2.6 and 3.0 give on success and throw
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
    try await expect(
      try .addServer(backend: backend, server: server, address: address, port: port, options: options))
  }

  /// Starts the health checks of a server that was added with `check` (`enable health`).
  ///
  /// Fails for a server without `check` (`Health check was not configured on this server, cannot enable.`).
  public func enableHealth(backend: String, server: String) async throws {
    try await expect(try .enableHealth(backend: backend, server: server))
  }

  /// Sets a server's administrative state (`set server <backend>/<server> state ready|drain|maint`).
  public func setServerState(backend: String, server: String, state: ServerAdminState) async throws {
    try await expect(try .setServerState(backend: backend, server: server, state: state))
  }

  /// Changes a server's address and port (`set server … addr … port …`).
  ///
  /// HAProxy answers with what changed (`IP changed from '…' to '…', port changed from '…' to '…'`; 3.0
  /// names only what changed) or that nothing did (`no need to change the addr…`, 3.0: `nothing
  /// changed`); all count as success.
  public func setServerAddress(backend: String, server: String, address: String, port: Int) async throws {
    try await expect(try .setServerAddress(backend: backend, server: server, address: address, port: port))
  }

  /// Sets a server's weight, 0 to 256 (`set weight`). A backend with a static algorithm only takes 0 or the
  /// initial weight.
  public func setWeight(backend: String, server: String, weight: Int) async throws {
    try await expect(try .setWeight(backend: backend, server: server, weight: weight))
  }

  /// Deletes a dynamic or configured server (`del server`).
  ///
  /// HAProxy only deletes a server in maintenance that has no connections, idle connections or queue:
  /// drain it, put it in maintenance, wait until ``serverConnections(backend:)`` shows it idle (or call
  /// ``shutdownSessions(backend:server:)``), then delete it.
  public func deleteServer(backend: String, server: String) async throws {
    try await expect(try .deleteServer(backend: backend, server: server))
  }

  /// Closes every session on a server at once (`shutdown sessions server`).
  public func shutdownSessions(backend: String, server: String) async throws {
    try await expect(try .shutdownSessions(backend: backend, server: server))
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

  /// The release of the worker that answers (`show info`, its `Version:` line). After a reload this is
  /// the new worker's: a master re-executes its binary on reload, so an upgraded package takes effect then.
  ///
  /// - Throws: ``HAProxyError/Code/unexpectedReply`` when the reply holds no version.
  public func version() async throws -> HAProxyVersion {
    let command = "show info"
    let reply = try await send(command)
    let line = reply.split(whereSeparator: \.isNewline).first { $0.hasPrefix("Version:") }
    guard let line, let version = HAProxyVersion(parsing: String(line)) else {
      throw HAProxyError(.unexpectedReply, "show info holds no version", command: command, reply: reply)
    }
    return version
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

  // MARK: Batches

  /// One change for ``run(_:)``: a checked command line and the reply that confirms it.
  ///
  /// Changes to a server take an optional `id`: the server is then named `backend/#id`. HAProxy 2.6 finds it
  /// by walking the backend's servers, as it does for a name; only `add server … id n` saves HAProxy work.
  public struct Change: Sendable, CustomStringConvertible {
    /// The command line.
    public let command: String
    let isSuccess: @Sendable (String) -> Bool

    init(_ command: String, _ isSuccess: @escaping @Sendable (String) -> Bool = { $0.isEmpty }) {
      self.command = command
      self.isSuccess = isSuccess
    }

    /// The command line.
    public var description: String { command }

    /// `add server`, as ``RuntimeAPI/addServer(backend:server:address:port:options:)`` sends it. With `id`,
    /// the server gets that numeric id (`id <n>`) instead of the lowest free one, which HAProxy 2.6 finds
    /// by walking every id in use; later changes can then name it `backend/#id`.
    public static func addServer(
      backend: String, server: String, address: String, port: Int, options: [String] = [], id: Int? = nil
    ) throws -> Change {
      try CommandValidation.checkName(backend, "backend")
      try CommandValidation.checkName(server, "server")
      let endpoint = try CommandValidation.endpoint(address: address, port: port)
      for option in options { try CommandValidation.checkOption(option) }
      if let id { try CommandValidation.checkServerID(id) }
      let idOption = id.map { ["id", "\($0)"] } ?? []
      let command = (["add server \(backend)/\(server) \(endpoint)"] + options + idOption).joined(separator: " ")
      return Change(command) { $0 == "New server registered." }
    }

    /// `enable health`, as ``RuntimeAPI/enableHealth(backend:server:)`` sends it.
    public static func enableHealth(backend: String, server: String, id: Int? = nil) throws -> Change {
      Change("enable health \(try CommandValidation.serverPath(backend, server, id: id))")
    }

    /// `set server … state`, as ``RuntimeAPI/setServerState(backend:server:state:)`` sends it.
    public static func setServerState(
      backend: String, server: String, state: ServerAdminState, id: Int? = nil
    ) throws -> Change {
      Change("set server \(try CommandValidation.serverPath(backend, server, id: id)) state \(state.rawValue)")
    }

    /// `set server … addr … port …`, as ``RuntimeAPI/setServerAddress(backend:server:address:port:)`` sends it.
    public static func setServerAddress(
      backend: String, server: String, address: String, port: Int, id: Int? = nil
    ) throws -> Change {
      let path = try CommandValidation.serverPath(backend, server, id: id)
      try CommandValidation.checkAddress(address)
      try CommandValidation.checkPort(port)
      // 2.6 names the address in every reply; 3.0 names only what changed (`port changed from …`) and
      // answers `nothing changed` where 2.6 said `no need to change the addr…`.
      return Change("set server \(path) addr \(address) port \(port)") {
        $0.hasPrefix("IP changed from ") || $0.hasPrefix("port changed from ")
          || $0.hasPrefix("no need to change the addr") || $0 == "nothing changed"
      }
    }

    /// `set weight`, as ``RuntimeAPI/setWeight(backend:server:weight:)`` sends it.
    public static func setWeight(backend: String, server: String, weight: Int, id: Int? = nil) throws -> Change {
      let path = try CommandValidation.serverPath(backend, server, id: id)
      guard (0...256).contains(weight) else {
        throw HAProxyError(.invalidCommand, "weight \(weight) is outside 0...256")
      }
      return Change("set weight \(path) \(weight)")
    }

    /// `del server`, as ``RuntimeAPI/deleteServer(backend:server:)`` sends it.
    public static func deleteServer(backend: String, server: String, id: Int? = nil) throws -> Change {
      Change("del server \(try CommandValidation.serverPath(backend, server, id: id))") { $0 == "Server deleted." }
    }

    /// `shutdown sessions server`, as ``RuntimeAPI/shutdownSessions(backend:server:)`` sends it.
    public static func shutdownSessions(backend: String, server: String, id: Int? = nil) throws -> Change {
      Change("shutdown sessions server \(try CommandValidation.serverPath(backend, server, id: id))")
    }
  }

  /// How many commands of a batch go out in one write.
  static let batchSize = 200

  /// Runs `changes` in order and returns, for each, `nil` when HAProxy confirmed it or the
  /// ``HAProxyError/Code/unexpectedReply`` error that says why not. Every change runs, whatever the
  /// replies before it: a change that depends on a refused one is refused in turn.
  ///
  /// Within ``withSession(_:)`` the commands go out in batches, each in one write, and their replies come
  /// back in order (one round trip per batch, not per command); otherwise each gets its own connection.
  ///
  /// - Throws: ``HAProxyError/Code/connectionFailed`` or ``HAProxyError/Code/timedOut`` when replies are
  ///   missing: which of the commands HAProxy ran is then unknown.
  public func run(_ changes: [Change]) async throws -> [HAProxyError?] {
    for change in changes { try CommandValidation.checkCommand(change.command) }
    var replies: [String] = []
    replies.reserveCapacity(changes.count)
    if let session {
      var start = 0
      while start < changes.count {
        let batch = changes[start..<min(start + Self.batchSize, changes.count)].map(\.command)
        logger.debug("Runtime API commands", metadata: ["haproxy.commands": "\(batch.count)"])
        replies += try await session.sendAll(batch)
        start += batch.count
      }
    } else {
      for change in changes { replies.append(try await send(change.command)) }
    }
    return zip(changes, replies).map { change, reply in check(reply, of: change) }
  }

  // MARK: Reply checks

  /// Sends `change` and throws unless its reply confirms it.
  private func expect(_ change: Change) async throws {
    if let error = check(try await send(change.command), of: change) { throw error }
  }

  /// `nil` when `reply`, without its trailing newlines, confirms `change`; else the error to report.
  private func check(_ reply: String, of change: Change) -> HAProxyError? {
    guard !change.isSuccess(reply.trimmingTrailingNewlines()) else { return nil }
    logger.info(
      "Runtime API command failed",
      metadata: ["haproxy.command": "\(change.command)", "haproxy.reply": "\(reply.trimmingTrailingNewlines())"]
    )
    return HAProxyError(.unexpectedReply, "HAProxy did not confirm the command", command: change.command, reply: reply)
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
