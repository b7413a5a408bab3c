import Foundation
import Synchronization

#if canImport(Glibc)
  import Glibc
#endif

/// A child process started by a test, which is always stopped: explicitly, when the object goes
/// away, or at the latest when the test process exits.
///
/// Only processes started here are ever signalled, and only by their own PID.
public final class ManagedProcess: Sendable {
  /// The executable's path.
  public let executable: String
  /// The arguments it was started with.
  public let arguments: [String]
  /// Where its stdout and stderr go.
  public let logPath: String
  private let process: Mutex<Process>

  /// Starts `executable` (an absolute path, or a name looked up in `PATH`).
  public init(
    _ executable: String,
    arguments: [String],
    environment: [String: String]? = nil,
    logPath: String
  ) throws {
    let resolved = try Self.resolve(executable)
    self.executable = resolved
    self.arguments = arguments
    self.logPath = logPath
    _ = FileManager.default.createFile(atPath: logPath, contents: nil)
    guard let log = FileHandle(forWritingAtPath: logPath) else {
      throw TestSupportError("cannot open log file \(logPath)")
    }
    log.seekToEndOfFile()
    let process = Process()
    // setpriv makes the kernel kill the child when the thread that spawned it dies, so not even a
    // SIGKILLed test run leaves etcd or HAProxy behind. That thread is one that never exits.
    if let setpriv = Self.setpriv {
      process.executableURL = URL(fileURLWithPath: setpriv)
      process.arguments = ["--pdeathsig", "KILL", "--", resolved] + arguments
    } else {
      process.executableURL = URL(fileURLWithPath: resolved)
      process.arguments = arguments
    }
    if let environment { process.environment = environment }
    process.standardOutput = log
    process.standardError = log
    process.standardInput = FileHandle.nullDevice
    try SpawnThread.shared.run { try process.run() }
    try? log.close()
    self.process = Mutex(process)
    ProcessRegistry.shared.register(process.processIdentifier)
  }

  deinit {
    let pid = process.withLock { $0.processIdentifier }
    if process.withLock({ $0.isRunning }) {
      Glibc.kill(pid, SIGKILL)
      process.withLock { $0.waitUntilExit() }
    }
    ProcessRegistry.shared.unregister(pid)
  }

  /// The process ID.
  public var pid: Int32 { process.withLock { $0.processIdentifier } }

  /// Whether the process has not exited yet.
  public var isRunning: Bool { process.withLock { $0.isRunning } }

  /// Sends SIGTERM, waits up to `timeout`, then SIGKILL; returns once the process is reaped.
  public func terminate(timeout: Duration = .seconds(10)) async {
    signal(SIGTERM)
    if await waitForExit(timeout: timeout) == nil {
      self.kill()
    }
  }

  /// Sends SIGKILL and reaps the process.
  public func kill() {
    signal(SIGKILL)
    process.withLock { $0.waitUntilExit() }
    ProcessRegistry.shared.unregister(pid)
  }

  /// Sends a signal, if the process is still running.
  public func signal(_ signal: Int32) {
    let (pid, running) = process.withLock { ($0.processIdentifier, $0.isRunning) }
    if running { Glibc.kill(pid, signal) }
  }

  /// Waits for the process to exit; returns its exit status, or nil on timeout.
  @discardableResult
  public func waitForExit(timeout: Duration) async -> Int32? {
    let clock = ContinuousClock()
    let deadline = clock.now.advanced(by: timeout)
    while clock.now < deadline {
      if !isRunning {
        ProcessRegistry.shared.unregister(pid)
        return process.withLock { $0.terminationStatus }
      }
      try? await Task.sleep(for: .milliseconds(20))
    }
    return nil
  }

  /// The last `bytes` of the process's output, for failure messages.
  public func logTail(bytes: Int = 4000) -> String {
    guard let data = FileManager.default.contents(atPath: logPath) else { return "" }
    return String(decoding: data.suffix(bytes), as: UTF8.self)
  }

  private static let setpriv: String? = try? resolve("setpriv")

  private static func resolve(_ executable: String) throws -> String {
    if executable.hasPrefix("/") { return executable }
    let path = ProcessInfo.processInfo.environment["PATH"] ?? "/usr/bin:/bin"
    let directories = path.split(separator: ":").map(String.init) + ["/usr/sbin", "/sbin"]
    for directory in directories {
      let candidate = "\(directory)/\(executable)"
      if FileManager.default.isExecutableFile(atPath: candidate) { return candidate }
    }
    throw TestSupportError("\(executable) not found in PATH; run ./scripts/install-deps.sh")
  }
}

/// Every child PID still running, so that an exiting test process takes them down with it.
final class ProcessRegistry: Sendable {
  static let shared = ProcessRegistry()
  private let pids = Mutex<Set<Int32>>([])

  private init() {
    atexit {
      for pid in ProcessRegistry.shared.pids.withLock({ $0 }) { kill(pid, SIGKILL) }
    }
  }

  func register(_ pid: Int32) { _ = pids.withLock { $0.insert(pid) } }
  func unregister(_ pid: Int32) { _ = pids.withLock { $0.remove(pid) } }
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
