import Foundation

#if canImport(Glibc)
  import Glibc
#elseif canImport(Darwin)
  import Darwin
#endif

/// How a child process ended.
public enum ExitStatus: Sendable, Hashable, CustomStringConvertible {
  /// It exited with this code.
  case exited(Int32)
  /// A signal ended it (9 for SIGKILL).
  case signaled(Int32)

  /// Whether it exited with code 0.
  public var isSuccess: Bool { self == .exited(0) }

  public var description: String {
    switch self {
    case .exited(let code): "exit code \(code)"
    case .signaled(let signal): "signal \(signal)"
    }
  }

  init(waitStatus status: Int32) {
    // WIFEXITED and friends are macros that Swift does not import.
    let signal = status & 0x7f
    self = signal == 0 ? .exited((status >> 8) & 0xff) : .signaled(signal)
  }
}

/// Starting child processes with `posix_spawn`, which gives control over what Foundation's `Process`
/// decides on its own: the session, the signal mask and which descriptors the child inherits.
enum Spawn {
  /// glibc's `POSIX_SPAWN_SETSID`, which Swift does not import because it needs `_GNU_SOURCE`.
  private static let setSessionFlag: Int32 = 0x80

  /// Starts `executable` (an absolute path, or a name looked up in `PATH`) with standard input from
  /// `/dev/null` and standard output and standard error appended to `outputPath` (created with mode 0600).
  ///
  /// The child gets an empty signal mask and default signal handlers: the threads of Swift's concurrency
  /// pool block most signals, and a mask is inherited through exec, so HAProxy would otherwise never see
  /// SIGUSR1 or SIGTERM. It inherits no descriptor beyond the three standard ones, so it cannot keep a test
  /// server's listening socket or a log file of ours open. With `newSession` it leads a session of its
  /// own, so that a Ctrl-C to our process group does not reach it.
  static func start(
    _ executable: String,
    arguments: [String],
    outputPath: String,
    newSession: Bool
  ) throws -> pid_t {
    var actions = posix_spawn_file_actions_t()
    posix_spawn_file_actions_init(&actions)
    defer { posix_spawn_file_actions_destroy(&actions) }
    posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
    posix_spawn_file_actions_addopen(&actions, 1, outputPath, O_WRONLY | O_CREAT | O_APPEND, 0o600)
    posix_spawn_file_actions_adddup2(&actions, 1, 2)
    closeInheritedDescriptors(&actions)

    var attributes = posix_spawnattr_t()
    posix_spawnattr_init(&attributes)
    defer { posix_spawnattr_destroy(&attributes) }
    var noSignals = sigset_t()
    sigemptyset(&noSignals)
    posix_spawnattr_setsigmask(&attributes, &noSignals)
    var defaults = sigset_t()
    sigemptyset(&defaults)
    for signal in [SIGPIPE, SIGINT, SIGTERM, SIGHUP, SIGQUIT, SIGUSR1, SIGUSR2, SIGCHLD, SIGTTIN, SIGTTOU] {
      sigaddset(&defaults, signal)
    }
    posix_spawnattr_setsigdefault(&attributes, &defaults)
    var flags = Int32(POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF)
    if newSession { flags |= setSessionFlag }
    posix_spawnattr_setflags(&attributes, Int16(flags))

    let argv = ([executable] + arguments).map { strdup($0) } + [nil]
    defer { for argument in argv { free(argument) } }
    var pid: pid_t = 0
    let result = posix_spawnp(&pid, executable, &actions, &attributes, argv, environ)
    guard result == 0 else {
      throw HAProxyError(.processFailed, "cannot start \(executable): \(errnoDescription(result))")
    }
    return pid
  }

  /// Waits for the child `pid` without blocking a thread: polls every few milliseconds. After `timeout`
  /// the child is killed (SIGKILL) and reaped, and nil is returned; nil too if it is not our child.
  static func wait(_ pid: pid_t, timeout: Duration) async -> ExitStatus? {
    let clock = ContinuousClock()
    let deadline = clock.now.advanced(by: timeout)
    var status: Int32 = 0
    var delay = Duration.milliseconds(1)
    while true {
      let result = waitpid(pid, &status, WNOHANG)
      if result == pid { return ExitStatus(waitStatus: status) }
      if result == -1 && errno == EINTR { continue }
      if result == -1 { return nil }
      if clock.now >= deadline || Task.isCancelled {
        kill(pid, SIGKILL)
        _ = waitBlocking(pid)
        return nil
      }
      try? await Task.sleep(for: delay)
      delay = min(delay * 2, .milliseconds(20))
    }
  }

  /// Blocks until the child `pid` exits and returns how it ended; nil if it is not our child.
  static func waitBlocking(_ pid: pid_t) -> ExitStatus? {
    var status: Int32 = 0
    while true {
      let result = waitpid(pid, &status, 0)
      if result == pid { return ExitStatus(waitStatus: status) }
      if result == -1 && errno == EINTR { continue }
      return nil
    }
  }

  private typealias AddCloseFrom = @convention(c) (UnsafeMutablePointer<posix_spawn_file_actions_t>?, Int32) -> Int32

  /// glibc 2.34+ has `posix_spawn_file_actions_addclosefrom_np`, which Swift does not import (it needs
  /// `_GNU_SOURCE`); looked up at run time, with a fallback to closing what `/proc/self/fd` lists.
  private static let addCloseFrom: AddCloseFrom? = {
    guard let symbol = dlsym(nil, "posix_spawn_file_actions_addclosefrom_np") else { return nil }
    return unsafeBitCast(symbol, to: AddCloseFrom.self)
  }()

  private static func closeInheritedDescriptors(_ actions: inout posix_spawn_file_actions_t) {
    if let addCloseFrom {
      _ = addCloseFrom(&actions, 3)
      return
    }
    let open = (try? FileManager.default.contentsOfDirectory(atPath: "/proc/self/fd")) ?? []
    for fd in open.compactMap({ Int32($0) }) where fd > 2 {
      posix_spawn_file_actions_addclose(&actions, fd)
    }
  }
}

/// Starts long-running processes that outlive their starter, such as the parts of a local cluster: each in a
/// session of its own, with a clean signal mask and default handlers, standard input from `/dev/null`,
/// output appended to a log file, and no other inherited descriptor.
public enum DetachedProcess {
  /// Starts `executable` with `arguments`; returns its PID. The caller's process is its parent until the
  /// caller exits; call ``reapInBackground(_:)`` if the caller lives on, so that no zombie is left.
  public static func spawn(_ executable: String, arguments: [String], logPath: String) throws -> Int32 {
    try Spawn.start(executable, arguments: arguments, outputPath: logPath, newSession: true)
  }

  /// Whether `pid` runs: it exists and is not a zombie waiting to be reaped.
  public static func isRunning(_ pid: Int32) -> Bool {
    (kill(pid, 0) == 0 || errno == EPERM) && !ProcessInspection.isZombie(pid)
  }

  /// The arguments of `pid` from `/proc/<pid>/cmdline`, the executable first; empty if it is gone.
  public static func commandLine(of pid: Int32) -> [String] {
    ProcessInspection.commandLine(pid)
  }

  /// Waits for the child `pid` on a thread of its own, so that it is reaped when it exits.
  public static func reapInBackground(_ pid: Int32) {
    let thread = Thread { _ = Spawn.waitBlocking(pid) }
    thread.name = "reaper-\(pid)"
    thread.start()
  }
}
