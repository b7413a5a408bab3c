import Foundation
import Logging
import SwitchyardProcess
import Synchronization

#if canImport(Glibc)
  import Glibc
#elseif canImport(Darwin)
  import Darwin
#endif

/// A master-worker HAProxy that serves from one ``StateDirectory``: started here, or adopted from a
/// controller that died without stopping it.
///
/// HAProxy runs in the foreground master-worker mode (`-W`), in a session of its own so that a Ctrl-C to the
/// controller's terminal does not reach it, and without a parent-death signal: it keeps serving while the
/// controller restarts, and the next controller adopts it with ``adopt(stateDirectory:executable:logger:)``.
///
/// A process started here is reaped by a thread that waits for it, so it never lingers as a zombie and its
/// ``exitStatus`` is known. An adopted process is not our child: whether it runs is checked with `kill(pid, 0)`
/// and its `/proc/<pid>/cmdline`, and how it ended is unknown. Signals only ever go to ``pid`` while it still
/// is this HAProxy, never to a PID that the kernel may have reused.
public final class HAProxyProcess: Sendable {
  /// The master's PID.
  public let pid: Int32
  /// The directory it serves from.
  public let stateDirectory: StateDirectory
  /// Whether this process started HAProxy (true) or adopted a running one (false).
  public var wasStartedHere: Bool { child != nil }
  /// The master as our child, when it was started here.
  private let child: ChildProcess?
  /// Whether an adopted master is known to have ended.
  private let adoptedHasEnded = Atomic(false)
  private let logger: Logger

  private init(pid: Int32, stateDirectory: StateDirectory, child: ChildProcess?, logger: Logger) {
    self.pid = pid
    self.stateDirectory = stateDirectory
    self.child = child
    self.logger = logger
  }

  /// The master CLI on the state directory's master socket.
  public func masterCLI(timeout: Duration = .seconds(5)) -> MasterCLI {
    MasterCLI(stateDirectory: stateDirectory, timeout: timeout, logger: logger)
  }

  /// Whether HAProxy still runs: for a child, until it has been reaped; for an adopted process, while its
  /// PID is alive, not a zombie, and still HAProxy serving this state directory.
  public var isRunning: Bool {
    if let child { return child.isRunning }
    if adoptedHasEnded.load(ordering: .acquiring) { return false }
    if ProcessInspection.isHAProxy(pid: pid, masterSocket: stateDirectory.masterSocketPath) { return true }
    // A master that reloads executes itself again, and its command line reads empty for that moment
    // (measured: 1,278 of 473,743 reads over 30 reloads): that is no end.
    if ProcFS.isRunning(pid), ProcFS.commandLine(of: pid).isEmpty { return true }
    adoptedHasEnded.store(true, ordering: .releasing)
    return false
  }

  /// How the master ended, once it has; always nil for an adopted process, whose exit we cannot observe.
  public var exitStatus: ExitStatus? { child?.exitStatus }

  /// Waits until HAProxy has exited and returns how it ended (nil for an adopted process). Polls every
  /// 50 ms; throws `CancellationError` if the task is cancelled first.
  public func waitForExit() async throws -> ExitStatus? {
    while isRunning { try await Task.sleep(for: .milliseconds(50)) }
    return exitStatus
  }

  // MARK: Starting

  /// Starts `haproxy -W -S <master.sock>,mode,600 -f <config> -p <haproxy.pid>` and returns once the master
  /// lists a worker in `show proc`.
  ///
  /// Standard input is `/dev/null`; standard output and standard error are appended to
  /// ``StateDirectory/logPath``. The configuration must declare the admin socket itself
  /// (`stats socket <dir>/admin.sock mode 600 level admin`).
  ///
  /// - Parameters:
  ///   - configPath: The configuration; ``StateDirectory/configPath`` unless given.
  ///   - executable: An absolute path, or a name looked up in `PATH`.
  ///   - startupTimeout: How long HAProxy may take to list a worker.
  /// - Throws: ``HAProxyError/Code/invalidState`` if a HAProxy already runs for this state directory (adopt
  ///   it instead); ``HAProxyError/Code/processFailed`` with the log tail if HAProxy exits while starting;
  ///   ``HAProxyError/Code/timedOut`` with the log tail if it does not come up in time, after stopping it.
  public static func start(
    stateDirectory: StateDirectory,
    configPath: String? = nil,
    executable: String = "haproxy",
    startupTimeout: Duration = .seconds(10),
    logger: Logger
  ) async throws -> HAProxyProcess {
    if let running = ProcessInspection.pidFromFile(stateDirectory.pidFilePath),
      [.haproxy, .unknown].contains(
        ProcessInspection.identity(pid: running, masterSocket: stateDirectory.masterSocketPath))
    {
      throw HAProxyError(
        .invalidState, "HAProxy \(running) already runs for \(stateDirectory.path); adopt it instead of starting one")
    }
    if let master = await answeringMaster(stateDirectory: stateDirectory, logger: logger) {
      throw HAProxyError(
        .invalidState,
        "HAProxy \(master.masterPID) already answers on \(stateDirectory.masterSocketPath); adopt it instead of starting one"
      )
    }
    let configPath = URL(fileURLWithPath: configPath ?? stateDirectory.configPath).standardizedFileURL.path
    let arguments = [
      "-W", "-S", "\(stateDirectory.masterSocketPath),mode,600",
      "-f", configPath, "-p", stateDirectory.pidFilePath,
    ]
    let child = try ChildProcess.haproxy(
      executable, arguments: arguments, outputPath: stateDirectory.logPath, newSession: true)
    let pid = child.pid
    let process = HAProxyProcess(pid: pid, stateDirectory: stateDirectory, child: child, logger: logger)
    logger.info(
      "Started HAProxy",
      metadata: ["haproxy.pid": "\(pid)", "haproxy.config": "\(configPath)", "haproxy.dir": "\(stateDirectory.path)"])
    do {
      try await process.waitForWorker(timeout: startupTimeout)
    } catch {
      if process.isRunning { try? await process.stop(timeout: .seconds(2)) }
      throw error
    }
    return process
  }

  /// Polls `show proc` until the master lists a worker.
  private func waitForWorker(timeout: Duration) async throws {
    let deadline = ContinuousClock.now.advanced(by: timeout)
    let cli = masterCLI(timeout: .seconds(1))
    var problem = "the master socket does not answer"
    while ContinuousClock.now < deadline {
      if let status = exitStatus {
        throw HAProxyError(
          .processFailed, "HAProxy exited while starting (\(status))", details: logTailLines())
      }
      do {
        let list = try await cli.showProc()
        if !list.workers.isEmpty { return }
        problem = "the master lists no worker"
      } catch let error as HAProxyError {
        problem = error.message
      }
      try await Task.sleep(for: .milliseconds(20))
    }
    throw HAProxyError(.timedOut, "HAProxy did not come up within \(timeout): \(problem)", details: logTailLines())
  }

  private func logTailLines() -> [String] {
    ["haproxy.log ends:"] + stateDirectory.logTail(bytes: 3_000).split(separator: "\n").map(String.init)
  }

  // MARK: Adopting

  /// Adopts the HAProxy that a previous controller started for `stateDirectory` and left running.
  ///
  /// The master socket is asked first: a master that answers `show proc` on this directory's socket is this
  /// directory's HAProxy, whatever the PID file says (a PID file that is missing, unreadable or names another
  /// process is rewritten). Without an answer, the PID file decides: nil is returned, and the file removed,
  /// only when it names no process or one that is certainly not HAProxy (by `/proc/<pid>/exe` and its
  /// command line). A process that may be this HAProxy is never given up on: starting a second one would bind
  /// the same ports beside it.
  ///
  /// - Throws: ``HAProxyError/Code/invalidState`` if an HAProxy for this directory may run but its master
  ///   socket does not answer: it cannot be managed, and should not be killed blindly or run twice either.
  public static func adopt(
    stateDirectory: StateDirectory,
    logger: Logger
  ) async throws -> HAProxyProcess? {
    let pidFile = stateDirectory.pidFilePath
    let recorded = ProcessInspection.pidFromFile(pidFile)
    if let master = await answeringMaster(stateDirectory: stateDirectory, logger: logger) {
      if recorded != master.masterPID {
        logger.warning(
          "The PID file does not name the HAProxy master that answers on this directory's socket; adopting that one",
          metadata: ["haproxy.pidFile": "\(pidFile)", "haproxy.pid": "\(master.masterPID)"]
        )
        try? "\(master.masterPID)\n".write(toFile: pidFile, atomically: true, encoding: .utf8)
      }
      logger.info(
        "Adopted running HAProxy",
        metadata: ["haproxy.pid": "\(master.masterPID)", "haproxy.workers": "\(master.workers.map(\.pid))"])
      return HAProxyProcess(pid: master.masterPID, stateDirectory: stateDirectory, child: nil, logger: logger)
    }
    guard FileManager.default.fileExists(atPath: pidFile) else { return nil }
    if let pid = recorded {
      switch ProcessInspection.identity(pid: pid, masterSocket: stateDirectory.masterSocketPath) {
      case .gone, .notHAProxy:
        break
      case .haproxy, .unknown:
        throw HAProxyError(
          .invalidState,
          "HAProxy \(pid) may run for \(stateDirectory.path) but its master socket does not answer; "
            + "not starting a second one beside it")
      }
    }
    logger.info("Removing stale HAProxy PID file", metadata: ["haproxy.pidFile": "\(pidFile)"])
    unlink(pidFile)
    return nil
  }

  /// The process list of the master that answers on the directory's master socket, if one does and runs.
  static func answeringMaster(stateDirectory: StateDirectory, logger: Logger) async -> ProcessList? {
    guard FileManager.default.fileExists(atPath: stateDirectory.masterSocketPath) else { return nil }
    guard
      let list = try? await MasterCLI(stateDirectory: stateDirectory, timeout: .seconds(2), logger: logger).showProc(),
      ProcFS.isRunning(list.masterPID)
    else { return nil }
    return list
  }

  // MARK: Finding

  /// The PID of the master that the PID file of `stateDirectory` names, while that process runs and is this
  /// directory's HAProxy; nil otherwise.
  ///
  /// Only reads the PID file and `/proc`: nothing is adopted, signalled or removed. For a process that
  /// needs to know whether a node's HAProxy outlived its controller without taking charge of it.
  public static func runningMasterPID(stateDirectory: StateDirectory) -> Int32? {
    guard let pid = ProcessInspection.pidFromFile(stateDirectory.pidFilePath),
      ProcessInspection.isHAProxy(pid: pid, masterSocket: stateDirectory.masterSocketPath)
    else { return nil }
    return pid
  }

  /// Whether `pid` is a process of the HAProxy that serves `stateDirectory`: its master or one of its
  /// workers, which run with the master's command line and so name this directory's master socket.
  public static func isProcess(_ pid: Int32, of stateDirectory: StateDirectory) -> Bool {
    ProcessInspection.isHAProxy(pid: pid, masterSocket: stateDirectory.masterSocketPath)
  }

  // MARK: Stopping

  /// Stops HAProxy: a soft stop first (SIGUSR1 to the master; workers stop listening and finish their
  /// connections), SIGTERM if it still runs after `timeout`, SIGKILL two seconds later. Then removes the PID
  /// file and the sockets. Does nothing but the cleanup if it is not running.
  ///
  /// - Throws: ``HAProxyError/Code/timedOut`` if even SIGKILL did not end it within two seconds.
  public func stop(timeout: Duration = .seconds(10)) async throws {
    let steps: [(signal: Int32, name: String, wait: Duration)] = [
      (SIGUSR1, "SIGUSR1", timeout), (SIGTERM, "SIGTERM", .seconds(2)), (SIGKILL, "SIGKILL", .seconds(2)),
    ]
    for step in steps {
      guard isRunning else { break }
      logger.info("Stopping HAProxy", metadata: ["haproxy.pid": "\(pid)", "haproxy.signal": "\(step.name)"])
      signalIfOurs(step.signal)
      if await waitUntilEnded(timeout: step.wait) { break }
    }
    guard !isRunning else {
      throw HAProxyError(.timedOut, "HAProxy \(pid) still runs after SIGKILL")
    }
    removeRuntimeFiles()
    logger.info(
      "HAProxy stopped",
      metadata: ["haproxy.pid": "\(pid)", "haproxy.exit": "\(exitStatus.map { "\($0)" } ?? "unknown")"])
  }

  /// Sends `signal` to the master, only while it is still this HAProxy.
  private func signalIfOurs(_ signal: Int32) {
    if let child {
      child.signal(signal)
    } else if ProcessInspection.isHAProxy(pid: pid, masterSocket: stateDirectory.masterSocketPath) {
      kill(pid, signal)
    }
  }

  private func waitUntilEnded(timeout: Duration) async -> Bool {
    let deadline = ContinuousClock.now.advanced(by: timeout)
    while isRunning {
      guard ContinuousClock.now < deadline else { return false }
      try? await Task.sleep(for: .milliseconds(20))
    }
    return true
  }

  private func removeRuntimeFiles() {
    if ProcessInspection.pidFromFile(stateDirectory.pidFilePath) == pid { unlink(stateDirectory.pidFilePath) }
    unlink(stateDirectory.masterSocketPath)
    unlink(stateDirectory.adminSocketPath)
  }
}

extension ChildProcess {
  /// Starts `executable` (HAProxy) with its output appended to `outputPath`; a failure to start is an
  /// ``HAProxyError/Code/processFailed``.
  static func haproxy(
    _ executable: String,
    arguments: [String],
    outputPath: String,
    newSession: Bool
  ) throws -> ChildProcess {
    do {
      return try ChildProcess(executable, arguments: arguments, outputPath: outputPath, newSession: newSession)
    } catch let error as ProcessError {
      throw HAProxyError(.processFailed, error.message)
    }
  }
}

/// Whether a process is this state directory's HAProxy, from its PID file and what ``ProcFS`` reads.
enum ProcessInspection {
  /// The PID in a PID file; nil if there is none or it is not a positive number.
  static func pidFromFile(_ path: String) -> Int32? {
    guard let data = FileManager.default.contents(atPath: path),
      let pid = Int32(String(decoding: data, as: UTF8.self).trimmedWhitespace),
      pid > 0
    else { return nil }
    return pid
  }

  /// Whether `pid` is alive (not a zombie) and runs HAProxy with `masterSocket` as its master socket.
  /// What `/proc` says of `pid` as this directory's HAProxy.
  enum Identity: Equatable {
    /// No such process (or a zombie).
    case gone
    /// An HAProxy whose command line names this master socket.
    case haproxy
    /// Certainly another program, or an HAProxy of another directory.
    case notHAProxy
    /// It runs, but `/proc` could not be read: it may be ours.
    case unknown
  }

  /// Tells whether `pid` is the HAProxy master of `masterSocket` from `/proc/<pid>/exe` and its command
  /// line; a read that fails gives ``Identity/unknown``, never "not HAProxy".
  static func identity(pid: Int32, masterSocket: String) -> Identity {
    guard ProcFS.isRunning(pid) else { return .gone }
    let arguments = ProcFS.commandLine(of: pid)
    let executable = ProcFS.executablePath(of: pid)
    guard !arguments.isEmpty || executable != nil else { return .unknown }
    let names = [arguments.first, executable].compactMap { $0 }.map { ($0 as NSString).lastPathComponent }
    guard names.contains(where: { $0.hasPrefix("haproxy") }) else { return .notHAProxy }
    if arguments.isEmpty { return .unknown }
    return arguments.contains { $0 == masterSocket || $0.hasPrefix(masterSocket + ",") } ? .haproxy : .notHAProxy
  }

  static func isHAProxy(pid: Int32, masterSocket: String) -> Bool {
    guard ProcFS.isRunning(pid) else { return false }
    let arguments = ProcFS.commandLine(of: pid)
    guard let executable = arguments.first, (executable as NSString).lastPathComponent.hasPrefix("haproxy") else {
      return false
    }
    return arguments.contains { $0 == masterSocket || $0.hasPrefix(masterSocket + ",") }
  }
}
