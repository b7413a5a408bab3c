import Foundation
import Synchronization

#if canImport(Glibc)
  import Glibc
#elseif canImport(Darwin)
  import Darwin
#endif

/// A child process that this process started with `posix_spawn` and watches: a thread waits for it, so it
/// never lingers as a zombie and how it ended is known.
///
/// The child starts with a clean signal mask, default signal handlers, standard input from `/dev/null` and no
/// inherited descriptor beyond the standard three (see `Spawn`). Signals only ever go to ``pid`` while the
/// child has not been reaped, so a PID that the kernel reuses for another process is never signalled.
///
/// Nothing stops the child implicitly: it may outlive this object and this process (HAProxy does, in a
/// session of its own). For a child that must end with this process, use ``ManagedProcess``.
public final class ChildProcess: Sendable {
  /// The process ID.
  public let pid: Int32
  /// The executable that was started.
  public let executablePath: String
  /// The arguments it was started with.
  public let arguments: [String]
  private let state = Mutex<ExitStatus?>(nil)

  /// Starts `executable` (an absolute path, or a name looked up in `PATH`) with standard output and
  /// standard error appended to `outputPath` (created with mode 0600).
  ///
  /// - Parameters:
  ///   - environment: The child's whole environment; `nil` passes on this process's environment.
  ///   - errorPath: Where standard error goes, if not to `outputPath`.
  ///   - newSession: Whether it leads a session of its own, so that a Ctrl-C to our process group does not
  ///     reach it.
  /// - Throws: ``ProcessError`` with ``ProcessError/Code/executableNotFound`` or
  ///   ``ProcessError/Code/launchFailed``.
  public convenience init(
    _ executable: String,
    arguments: [String] = [],
    environment: [String: String]? = nil,
    outputPath: String,
    errorPath: String? = nil,
    newSession: Bool = false
  ) throws {
    try self.init(
      executable,
      arguments: arguments,
      environment: environment,
      output: Spawn.Output(outputPath: outputPath, errorPath: errorPath, mode: 0o600),
      newSession: newSession,
      endsWithThisProcess: false
    )
  }

  /// Starts the child; with `endsWithThisProcess` it is listed in the ``ProcessRegistry`` until it is reaped
  /// and, where `setpriv` exists, started through it with a parent-death signal from the ``SpawnThread``.
  init(
    _ executable: String,
    arguments: [String],
    environment: [String: String]?,
    output: Spawn.Output,
    newSession: Bool,
    endsWithThisProcess: Bool
  ) throws {
    let path = try ExecutablePath.resolve(executable)
    let pid: Int32
    if endsWithThisProcess {
      // setpriv makes the kernel kill the child when the thread that spawned it dies, so not even a
      // SIGKILLed run leaves etcd or HAProxy behind. That thread (SpawnThread) never exits.
      let (launchPath, launchArguments) =
        Self.setpriv.map { ($0, ["--pdeathsig", "KILL", "--", path] + arguments) } ?? (path, arguments)
      pid = try SpawnThread.shared.run {
        try Spawn.start(
          launchPath, arguments: launchArguments, environment: environment, output: output, newSession: newSession)
      }
      // Not reaped before the reaper starts below, so the PID cannot have been reused yet.
      guard ProcessRegistry.register(pid) else {
        sendSignal(pid, SIGKILL)
        _ = Spawn.reap(pid)
        throw ProcessError(.launchFailed, "more than \(ProcessRegistry.capacity) children at once")
      }
    } else {
      pid = try Spawn.start(
        path, arguments: arguments, environment: environment, output: output, newSession: newSession)
    }
    self.pid = pid
    self.executablePath = path
    self.arguments = arguments
    startReaper(unregistering: endsWithThisProcess)
  }

  private static let setpriv: String? = ExecutablePath.find("setpriv")

  /// Whether the process has not been reaped yet.
  public var isRunning: Bool { state.withLock { $0 == nil } }

  /// How the process ended, once it has been reaped.
  public var exitStatus: ExitStatus? { state.withLock { $0 } }

  /// Sends `signal` unless the process has been reaped; false if it has.
  @discardableResult
  public func signal(_ signal: Int32) -> Bool {
    state.withLock { status in
      guard status == nil else { return false }
      sendSignal(pid, signal)
      return true
    }
  }

  /// Waits until the process has exited and returns how it ended; nil if it still runs after `timeout`
  /// (it is left running) or if the task is cancelled.
  public func waitForExit(timeout: Duration) async -> ExitStatus? {
    let clock = ContinuousClock()
    let deadline = clock.now.advanced(by: timeout)
    var delay = Duration.milliseconds(1)
    while true {
      if let status = exitStatus { return status }
      if clock.now >= deadline || Task.isCancelled { return nil }
      try? await Task.sleep(for: delay)
      delay = min(delay * 2, .milliseconds(10))
    }
  }

  /// Asks the process to stop (SIGTERM), and kills it (SIGKILL) if it has not exited after `timeout`;
  /// returns once it has been reaped. Killing also happens at once when the calling task is cancelled, so
  /// that cleanup in a cancelled task cannot leave the process behind.
  public func terminate(timeout: Duration = .seconds(10)) async {
    guard signal(SIGTERM) else { return }
    if await waitForExit(timeout: timeout) == nil { kill() }
  }

  /// Kills the process (SIGKILL) and returns once it has been reaped, or after ten seconds.
  ///
  /// Synchronous because `deinit` and exit paths need it; SIGKILL takes effect within milliseconds.
  public func kill() {
    guard signal(SIGKILL) else { return }
    let deadline = ContinuousClock.now.advanced(by: .seconds(10))
    while isRunning && ContinuousClock.now < deadline { usleep(1_000) }
  }

  /// Starts a thread that waits for the child to exit and then, under the lock that ``signal(_:)`` takes,
  /// reaps it and records how it ended: only after that may the kernel reuse the PID.
  private func startReaper(unregistering: Bool) {
    let pid = pid
    let thread = Thread { [self] in
      let exited = Spawn.waitWithoutReaping(pid)
      state.withLock { status in
        status = (exited ? Spawn.reap(pid) : nil) ?? .exited(-1)
        if unregistering { ProcessRegistry.unregister(pid) }
      }
    }
    thread.name = "reaper-\(pid)"
    thread.start()
  }
}

/// `kill(2)`, under a name that the methods called `kill` do not hide.
func sendSignal(_ pid: Int32, _ signal: Int32) {
  _ = kill(pid, signal)
}

/// A thread that lives as long as the process and starts every child that must end with it, so that a
/// child's parent-death signal fires only when this process itself ends.
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
  func run<Value: Sendable>(_ body: @escaping @Sendable () throws -> Value) throws -> Value {
    let done = DispatchSemaphore(value: 0)
    let outcome = Mutex<Result<Value, any Error>?>(nil)
    condition.lock()
    work.append {
      let result = Result { try body() }
      outcome.withLock { $0 = result }
      done.signal()
    }
    condition.signal()
    condition.unlock()
    done.wait()
    return try outcome.withLock { try $0!.get() }
  }
}
