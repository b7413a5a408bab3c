import Logging

/// The master CLI of a master-worker HAProxy (the `-S` socket): process list and reloads.
///
/// Commands are checked as for ``RuntimeAPI/send(_:)`` and each gets a connection of its own.
public struct MasterCLI: Sendable {
  /// The master socket.
  public let socketPath: String
  /// How long one command may take.
  public let timeout: Duration
  private let logger: Logger

  /// Creates a client for the master socket at `socketPath`.
  public init(socketPath: String, timeout: Duration = .seconds(5), logger: Logger) {
    self.socketPath = socketPath
    self.timeout = timeout
    self.logger = logger
  }

  /// Creates a client for the master socket of `stateDirectory`.
  public init(stateDirectory: StateDirectory, timeout: Duration = .seconds(5), logger: Logger) {
    self.init(socketPath: stateDirectory.masterSocketPath, timeout: timeout, logger: logger)
  }

  /// Sends one command to the master and returns its reply, unchecked. Prefix a command with `@1` (the
  /// current worker) or `@!<pid>` to have the master pass it on to a worker.
  public func send(_ command: String) async throws -> String {
    try CommandValidation.checkCommand(command)
    return try await UnixSocketClient.request(command, socketPath: socketPath, timeout: timeout)
  }

  /// The master, its workers and old workers (`show proc`).
  public func showProc() async throws -> ProcessList {
    let command = "show proc"
    let reply = try await send(command)
    do {
      return try ProcessList.parse(reply)
    } catch let error as HAProxyError {
      throw HAProxyError(error.code, error.message, command: command, reply: reply)
    }
  }

  /// Reloads HAProxy with the configuration file it was started with, and returns the process list once
  /// the reload is confirmed.
  ///
  /// The reply to `reload` is not what tells: 2.6 answers with nothing and drops the connection while the
  /// master re-executes itself; 3.0 holds the connection until the new configuration is loaded and then
  /// reports, but a 3.0 master that re-executes an older binary (a downgrade) never answers it. So the
  /// command is sent beside a poll of `show proc`, which decides: the reload counter goes up, and the
  /// reload failed if the failed counter went up too (the old workers keep serving the old
  /// configuration), and succeeded once a new worker is listed. Old workers keep finishing their
  /// connections in the background.
  ///
  /// - Parameter timeout: How long the whole reload may take.
  /// - Throws: ``HAProxyError/Code/reloadFailed`` if HAProxy refused the configuration,
  ///   ``HAProxyError/Code/timedOut`` if the reload was not confirmed in time.
  public func reload(timeout reloadTimeout: Duration = .seconds(15)) async throws -> ProcessList {
    let before = try await showProc()
    let deadline = ContinuousClock.now.advanced(by: reloadTimeout)
    logger.info("Reloading HAProxy", metadata: ["haproxy.reloads": "\(before.reloads)"])
    let socketPath = socketPath
    let sendTimeout = reloadTimeout
    return try await withThrowingTaskGroup(of: ProcessList?.self) { group in
      group.addTask {
        do {
          _ = try await UnixSocketClient.request("reload", socketPath: socketPath, timeout: sendTimeout)
        } catch let error as HAProxyError where error.code == .connectionFailed || error.code == .timedOut {
          // The master dropped the connection while it re-executed itself, or never answered: the
          // process list tells.
        }
        return nil
      }
      group.addTask { try await confirmReload(after: before, deadline: deadline, timeout: reloadTimeout) }
      while let result = try await group.next() {
        if let list = result {
          group.cancelAll()
          return list
        }
      }
      throw HAProxyError(.timedOut, "reload not confirmed within \(reloadTimeout)", command: "reload")
    }
  }

  /// Polls `show proc` until the reload counter went up past `before`'s and a new worker is listed.
  private func confirmReload(
    after before: ProcessList, deadline: ContinuousClock.Instant, timeout reloadTimeout: Duration
  ) async throws -> ProcessList {
    var lastProblem = "no process list yet"
    let oldWorkers = Set(before.workers.map(\.pid))
    while ContinuousClock.now < deadline {
      try await Task.sleep(for: .milliseconds(20))
      let after: ProcessList
      do {
        after = try await showProc()
      } catch let error as HAProxyError {
        lastProblem = error.message  // The master is between exec and serving its CLI again.
        continue
      }
      guard after.reloads > before.reloads else {
        lastProblem = "reload counter still \(after.reloads)"
        continue
      }
      // A successful reload resets the failed counter to 0, a failed one increments it.
      if after.failedReloads > before.failedReloads {
        logger.info("HAProxy reload failed", metadata: ["haproxy.failedReloads": "\(after.failedReloads)"])
        throw HAProxyError(
          .reloadFailed,
          "HAProxy refused the new configuration (failed reloads: \(after.failedReloads)); the old workers keep"
            + " serving; see its log for the ALERT lines",
          command: "reload")
      }
      guard after.workers.contains(where: { !oldWorkers.contains($0.pid) }) else {
        lastProblem = "no new worker yet"
        continue
      }
      logger.info(
        "HAProxy reloaded",
        metadata: ["haproxy.reloads": "\(after.reloads)", "haproxy.workers": "\(after.workers.map(\.pid))"])
      return after
    }
    throw HAProxyError(.timedOut, "reload not confirmed within \(reloadTimeout): \(lastProblem)", command: "reload")
  }
}
