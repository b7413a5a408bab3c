import Foundation

#if canImport(Glibc)
  import Glibc
#elseif canImport(Darwin)
  import Darwin
#endif

/// A child process that is always stopped: explicitly, when the object goes away, or at the latest when this
/// process ends, even by a crash (see the process-wide registry).
///
/// This is the supervisor for the processes that tests and the bench start: etcd members, etcdctl,
/// controllers and any other tool. Only processes started here are ever signalled, and only by their own PID,
/// never by name. Standard output and standard error are appended to one log file, so that a failure can show
/// what the process said.
public final class ManagedProcess: Sendable {
  /// The absolute path of the executable that runs.
  public var executablePath: String { child.executablePath }
  /// The arguments it was started with.
  public var arguments: [String] { child.arguments }
  /// The file that standard output and standard error are appended to.
  public let logPath: String
  /// The process ID, which stays valid for signalling until the process has been reaped.
  public var pid: Int32 { child.pid }
  private let child: ChildProcess
  /// Whether the log is a file this object made, and so removes when it goes away.
  private let ownsLog: Bool

  /// Starts `executable` (an absolute path, or a name looked up in `PATH`).
  ///
  /// - Parameters:
  ///   - environment: The child's whole environment; `nil` passes on this process's environment.
  ///   - logPath: Where standard output and standard error are appended. If `nil`, a new file in the
  ///     temporary directory, removed when this object goes away; pass a path to keep the log.
  public convenience init(
    _ executable: String,
    arguments: [String] = [],
    environment: [String: String]? = nil,
    logPath: String? = nil
  ) throws {
    try self.init(executable, arguments: arguments, environment: environment, logPath: logPath, outputPath: nil)
  }

  /// Starts the process; `outputPath`, when set, takes standard output away from the log, for ``run``.
  init(
    _ executable: String,
    arguments: [String],
    environment: [String: String]?,
    logPath: String?,
    outputPath: String?
  ) throws {
    let executablePath = try ExecutablePath.resolve(
      executable, hint: "./scripts/install-deps.sh installs etcd and the tools tests use")
    let ownLogPath = FileManager.default.temporaryDirectory
      .appendingPathComponent("switchyard-\(URL(fileURLWithPath: executablePath).lastPathComponent)")
      .appendingPathExtension("\(UUID().uuidString.prefix(8)).log").path
    let logPath = logPath ?? ownLogPath
    self.child = try ChildProcess(
      executablePath,
      arguments: arguments,
      environment: environment,
      output: Spawn.Output(
        outputPath: outputPath ?? logPath, errorPath: outputPath == nil ? nil : logPath, mode: 0o644),
      newSession: false,
      endsWithThisProcess: true
    )
    self.logPath = logPath
    self.ownsLog = logPath == ownLogPath
  }

  deinit {
    if isRunning { kill() }
    if ownsLog { try? FileManager.default.removeItem(atPath: logPath) }
  }

  /// Whether the process has not been reaped yet.
  public var isRunning: Bool { child.isRunning }

  /// How the process ended, once it has been reaped.
  public var exitStatus: ExitStatus? { child.exitStatus }

  /// Asks the process to stop (SIGTERM), and kills it (SIGKILL) if it has not exited after `timeout`;
  /// returns once it has been reaped. Killing also happens at once when the calling task is cancelled, so
  /// that cleanup in a cancelled test cannot leave the process behind.
  public func terminate(timeout: Duration = .seconds(10)) async {
    await child.terminate(timeout: timeout)
  }

  /// Kills the process (SIGKILL) and returns once it has been reaped.
  ///
  /// Synchronous because `deinit` and exit paths need it; SIGKILL takes effect within milliseconds.
  public func kill() {
    child.kill()
  }

  /// Sends `signal` to the process unless it has been reaped: SIGTERM to test a graceful shutdown that the
  /// test then waits for, SIGHUP or SIGUSR2 to test a reload.
  public func signal(_ signal: Int32) {
    child.signal(signal)
  }

  /// Waits until the process exits and returns its status as a shell reports it (``ExitStatus/code``: 0 for
  /// success); nil if it still runs after `timeout`, when it is left running, or if the task is cancelled.
  /// ``exitStatus`` then tells an exit from a signal.
  @discardableResult
  public func waitForExit(timeout: Duration) async -> Int32? {
    await child.waitForExit(timeout: timeout)?.code
  }

  /// The exit status, or nil if the process still runs after `timeout` or the task is cancelled.
  func status(within timeout: Duration) async -> ExitStatus? {
    await child.waitForExit(timeout: timeout)
  }

  /// Everything the process wrote to standard output and standard error.
  public func logContents() -> String {
    guard let data = FileManager.default.contents(atPath: logPath) else { return "" }
    return String(decoding: data, as: UTF8.self)
  }

  /// The last `bytes` bytes of ``logContents()``, for failure messages.
  public func logTail(bytes: Int = 4_000) -> String {
    guard let data = FileManager.default.contents(atPath: logPath) else { return "" }
    return String(decoding: data.suffix(bytes), as: UTF8.self)
  }

  /// The user and system CPU time the process has used so far (`/proc/<pid>/stat`), or `nil` once it is
  /// gone.
  public var cpuTime: Duration? { ProcFS.cpuTime(of: pid) }
}
