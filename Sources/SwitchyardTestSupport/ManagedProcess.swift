import Foundation
import Synchronization

#if canImport(Glibc)
  import Glibc
#elseif canImport(Darwin)
  import Darwin
#endif

/// A child process that a test started and that is always stopped: explicitly, when the object goes away,
/// or at the latest when the test process ends, even by a crash (see the process-wide registry).
///
/// This is the project's one process supervisor: etcd members, etcdctl, openssl and any other tool a test
/// needs run through it. Only processes started here are ever signalled, and only by their own PID, never
/// by name. Standard output and standard error are appended to one log file, so that a failing test can
/// show what the process said.
public final class ManagedProcess: Sendable {
  /// How a process ended, which tells a clean shutdown from a crash or a kill.
  public enum ExitStatus: Sendable, Hashable, CustomStringConvertible {
    /// The process called `exit` with this status.
    case exited(Int32)
    /// A signal ended the process (SIGKILL is 9, SIGTERM 15).
    case signaled(Int32)

    /// Whether the process exited with status 0.
    public var isSuccess: Bool { self == .exited(0) }

    /// The status as a shell reports it in `$?`: the exit status, or 128 plus the signal number (143 for
    /// SIGTERM, 137 for SIGKILL).
    public var code: Int32 {
      switch self {
      case .exited(let status): status
      case .signaled(let signal): 128 + signal
      }
    }

    public var description: String {
      switch self {
      case .exited(let status): "exit status \(status)"
      case .signaled(let signal): "signal \(signal)"
      }
    }
  }

  /// The absolute path of the executable that runs.
  public let executablePath: String
  /// The arguments it was started with.
  public let arguments: [String]
  /// The file that standard output and standard error are appended to.
  public let logPath: String
  /// The process ID, which stays valid for signalling until the process has been reaped.
  public let pid: Int32
  private let termination: Termination
  /// Whether the log is a file this object made, and so removes when it goes away.
  private let ownsLog: Bool
  /// Kept so that Foundation keeps watching the child; never touched after launch.
  private let process: Mutex<Process>

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
    let executablePath = try Self.resolve(executable)
    let ownLogPath = FileManager.default.temporaryDirectory
      .appendingPathComponent("switchyard-\(URL(fileURLWithPath: executablePath).lastPathComponent)")
      .appendingPathExtension("\(UUID().uuidString.prefix(8)).log").path
    let ownsLog = logPath == nil
    let logPath = logPath ?? ownLogPath
    let log = try Self.openForAppending(logPath)
    let output = try outputPath.map(Self.openForAppending) ?? log
    let process = Process()
    // setpriv makes the kernel kill the child when the thread that spawned it dies, so not even a
    // SIGKILLed test run leaves etcd or HAProxy behind. That thread (SpawnThread) never exits.
    if let setpriv = Self.setpriv {
      process.executableURL = URL(fileURLWithPath: setpriv)
      process.arguments = ["--pdeathsig", "KILL", "--", executablePath] + arguments
    } else {
      process.executableURL = URL(fileURLWithPath: executablePath)
      process.arguments = arguments
    }
    if let environment { process.environment = environment }
    process.standardInput = FileHandle.nullDevice
    process.standardOutput = output
    process.standardError = log
    let termination = Termination()
    process.terminationHandler = { termination.record($0) }
    do {
      try SpawnThread.shared.run { try Self.withSignalsUnblocked { try process.run() } }
    } catch {
      throw TestSupportError(.launchFailed, "\(executablePath): \(error)")
    }
    // The child has its own copies; closing ours lets the files close when it exits.
    try? log.close()
    if outputPath != nil { try? output.close() }
    let pid = process.processIdentifier
    guard termination.registerUnlessExited(pid) else {
      _ = termination.signalIfRunning(SIGKILL)
      throw TestSupportError(.launchFailed, "more than \(ProcessRegistry.capacity) children at once")
    }
    self.executablePath = executablePath
    self.arguments = arguments
    self.logPath = logPath
    self.ownsLog = ownsLog
    self.pid = pid
    self.termination = termination
    self.process = Mutex(process)
  }

  private static let setpriv: String? = try? resolve("setpriv")

  deinit {
    if isRunning { kill() }
    if ownsLog { try? FileManager.default.removeItem(atPath: logPath) }
  }

  /// Whether the process has not been reaped yet.
  public var isRunning: Bool { termination.status == nil }

  /// How the process ended, once it has been reaped.
  public var exitStatus: ExitStatus? { termination.status }

  /// Asks the process to stop (SIGTERM), and kills it (SIGKILL) if it has not exited after `timeout`;
  /// returns once it has been reaped. Killing also happens at once when the calling task is cancelled, so
  /// that cleanup in a cancelled test cannot leave the process behind.
  public func terminate(timeout: Duration = .seconds(10)) async {
    guard termination.signalIfRunning(SIGTERM) else { return }
    if await status(within: timeout) == nil { kill() }
  }

  /// Kills the process (SIGKILL) and returns once it has been reaped.
  ///
  /// Synchronous because `deinit` and exit paths need it; SIGKILL takes effect within milliseconds.
  public func kill() {
    guard termination.signalIfRunning(SIGKILL) else { return }
    let deadline = ContinuousClock.now.advanced(by: .seconds(10))
    while isRunning && ContinuousClock.now < deadline { usleep(1_000) }
  }

  /// Sends `signal` to the process unless it has been reaped: SIGTERM to test a graceful shutdown that the
  /// test then waits for, SIGHUP or SIGUSR2 to test a reload.
  public func signal(_ signal: Int32) {
    _ = termination.signalIfRunning(signal)
  }

  /// Waits until the process exits and returns its status as a shell reports it (``ExitStatus/code``: 0 for
  /// success); nil if it still runs after `timeout`, when it is left running, or if the task is cancelled.
  /// ``exitStatus`` then tells an exit from a signal.
  @discardableResult
  public func waitForExit(timeout: Duration) async -> Int32? {
    await status(within: timeout)?.code
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

  /// The exit status, or nil if the process still runs after `timeout` or the task is cancelled.
  private func status(within timeout: Duration) async -> ExitStatus? {
    let deadline = ContinuousClock.now.advanced(by: timeout)
    while true {
      if let status = termination.status { return status }
      if ContinuousClock.now >= deadline || Task.isCancelled { return nil }
      try? await Task.sleep(for: .milliseconds(10))
    }
  }

  /// Runs `body` with no signal blocked on the calling thread.
  ///
  /// A child inherits the signal mask of the thread that spawns it, through exec. The threads of Swift's
  /// concurrency pool block most signals (SIGTERM, SIGINT, SIGHUP, SIGUSR1 among them), so a child started
  /// from an async test would never see SIGTERM unless it unblocks signals itself, as Go programs such as etcd
  /// do; `sleep` or HAProxy would not. Foundation spawns on the calling thread, so clearing the mask for the
  /// moment of the spawn gives the child a clean one.
  private static func withSignalsUnblocked<Result>(_ body: () throws -> Result) rethrows -> Result {
    var none = sigset_t()
    var previous = sigset_t()
    sigemptyset(&none)
    pthread_sigmask(SIG_SETMASK, &none, &previous)
    defer { pthread_sigmask(SIG_SETMASK, &previous, nil) }
    return try body()
  }

  private static func openForAppending(_ path: String) throws -> FileHandle {
    let fd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0o644)
    guard fd >= 0 else {
      throw TestSupportError(.launchFailed, "cannot open \(path) for writing: errno \(errno)")
    }
    return FileHandle(fileDescriptor: fd, closeOnDealloc: true)
  }

  private static func resolve(_ executable: String) throws -> String {
    if executable.contains("/") { return executable }
    let path = ProcessInfo.processInfo.environment["PATH"] ?? "/usr/local/bin:/usr/bin:/bin"
    for directory in path.split(separator: ":") {
      let candidate = "\(directory)/\(executable)"
      if FileManager.default.isExecutableFile(atPath: candidate) { return candidate }
    }
    throw TestSupportError(
      .executableNotFound,
      "\(executable) is not in PATH (\(path)); ./scripts/install-deps.sh installs etcd and the tools tests use"
    )
  }
}

extension ManagedProcess {
  /// The user and system CPU time the process has used so far (`/proc/<pid>/stat`), or `nil` once it is
  /// gone.
  public var cpuTime: Duration? { Self.cpuTime(of: pid) }

  /// The user and system CPU time process `pid` has used so far (`/proc/<pid>/stat`), or `nil` if there is
  /// no such process.
  public static func cpuTime(of pid: Int32) -> Duration? {
    guard let stat = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8),
      let close = stat.lastIndex(of: ")")
    else { return nil }
    // Fields after the command name: state is field 3; utime and stime are fields 14 and 15, in clock ticks.
    let fields = stat[stat.index(after: close)...].split(separator: " ")
    guard fields.count > 12, let user = Int64(fields[11]), let system = Int64(fields[12]) else { return nil }
    return .nanoseconds((user + system) * 1_000_000_000 / Int64(sysconf(Int32(_SC_CLK_TCK))))
  }

  /// Runs a command to completion and returns its standard output; throws
  /// ``TestSupportError/Code/commandFailed`` with its standard error if it exits unsuccessfully, and kills it
  /// and throws ``TestSupportError/Code/timedOut`` if it runs longer than `timeout`.
  ///
  /// - Parameter environment: The child's whole environment; `nil` passes on this process's environment.
  @discardableResult
  public static func run(
    _ executable: String,
    arguments: [String] = [],
    environment: [String: String]? = nil,
    timeout: Duration = .seconds(60)
  ) async throws -> String {
    let command = try Command(executable, arguments: arguments, environment: environment)
    defer { command.directory.remove() }
    let status = await command.process.status(within: timeout)
    if status == nil && Task.isCancelled {
      command.process.kill()
      throw CancellationError()
    }
    return try command.result(status, timeout: timeout)
  }

  /// ``run(_:arguments:environment:timeout:)`` for callers that cannot await, such as a synchronous
  /// fixture; blocks the calling thread, so keep it to short commands.
  @discardableResult
  static func runBlocking(
    _ executable: String,
    arguments: [String] = [],
    environment: [String: String]? = nil,
    timeout: Duration = .seconds(60)
  ) throws -> String {
    let command = try Command(executable, arguments: arguments, environment: environment)
    defer { command.directory.remove() }
    let deadline = ContinuousClock.now.advanced(by: timeout)
    while command.process.isRunning && ContinuousClock.now < deadline { usleep(2_000) }
    return try command.result(command.process.exitStatus, timeout: timeout)
  }

  /// A command whose standard output and standard error go to separate files in a directory of its own.
  private struct Command {
    var directory: TemporaryDirectory
    var process: ManagedProcess
    var outputPath: String

    init(_ executable: String, arguments: [String], environment: [String: String]?) throws {
      directory = try TemporaryDirectory(prefix: "switchyard-command")
      outputPath = directory.path("stdout")
      do {
        process = try ManagedProcess(
          executable,
          arguments: arguments,
          environment: environment,
          logPath: directory.path("stderr"),
          outputPath: outputPath
        )
      } catch {
        directory.remove()
        throw error
      }
    }

    func result(_ status: ExitStatus?, timeout: Duration) throws -> String {
      let commandLine = ([process.executablePath] + process.arguments).joined(separator: " ")
      guard let status else {
        process.kill()
        throw TestSupportError(.timedOut, "\(commandLine) did not finish within \(timeout)")
      }
      guard status.isSuccess else {
        let standardError = process.logTail(bytes: 4_000).trimmingCharacters(in: .whitespacesAndNewlines)
        throw TestSupportError(.commandFailed, "\(commandLine) ended with \(status): \(standardError)")
      }
      let data = FileManager.default.contents(atPath: outputPath) ?? Data()
      return String(decoding: data, as: UTF8.self)
    }
  }
}

/// How the child ended, written by Foundation's termination handler; shared with it, hence a class.
private final class Termination: Sendable {
  private let state = Mutex<(pid: Int32, status: ManagedProcess.ExitStatus?)>((0, nil))

  var status: ManagedProcess.ExitStatus? { state.withLock { $0.status } }

  /// Lists the PID in the registry unless the child was already reaped; under the same lock as `record`,
  /// so that a PID is never left listed after its process is gone. False if the registry is full.
  func registerUnlessExited(_ pid: Int32) -> Bool {
    state.withLock { state in
      state.pid = pid
      return state.status != nil || ProcessRegistry.register(pid)
    }
  }

  func record(_ process: Process) {
    let status: ManagedProcess.ExitStatus =
      process.terminationReason == .uncaughtSignal
      ? .signaled(process.terminationStatus) : .exited(process.terminationStatus)
    state.withLock { state in
      state.status = status
      ProcessRegistry.unregister(process.processIdentifier)
    }
  }

  /// Signals the child unless it has been reaped (a reaped PID may already belong to another process);
  /// false if it has.
  func signalIfRunning(_ signal: Int32) -> Bool {
    state.withLock { state in
      guard state.status == nil, state.pid > 0 else { return false }
      kill(state.pid, signal)
      return true
    }
  }
}

/// A thread that lives as long as the process and starts every child, so that a child's
/// parent-death signal fires only when the test process itself ends.
final class SpawnThread: @unchecked Sendable {
  static let shared = SpawnThread()

  private let condition = NSCondition()
  // Guarded by `condition`.
  private var work: [() -> Void] = []

  private init() {
    let thread = Thread { [unowned self] in self.loop() }
    thread.name = "switchyard-spawn"
    thread.start()
  }

  private func loop() {
    while true {
      condition.lock()
      while work.isEmpty { condition.wait() }
      let next = work.removeFirst()
      condition.unlock()
      next()
    }
  }

  /// Runs `body` on the spawn thread and waits for it (a few milliseconds).
  func run(_ body: @escaping @Sendable () throws -> Void) throws {
    let done = DispatchSemaphore(value: 0)
    let outcome = Mutex<Result<Void, any Error>>(.success(()))
    condition.lock()
    work.append {
      outcome.withLock { $0 = Result { try body() } }
      done.signal()
    }
    condition.signal()
    condition.unlock()
    done.wait()
    try outcome.withLock { try $0.get() }
  }
}
