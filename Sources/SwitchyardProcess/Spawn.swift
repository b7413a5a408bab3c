import Foundation

#if canImport(Glibc)
  import Glibc
#elseif canImport(Darwin)
  import Darwin
#endif

/// Starting child processes with `posix_spawn`, which gives control over what Foundation's `Process`
/// decides on its own: the session, the signal mask and which descriptors the child inherits.
enum Spawn {
  /// Where the child's standard output and standard error go: files appended to (created with `mode`).
  struct Output {
    /// Standard output.
    var outputPath: String
    /// Standard error; nil for the same file as standard output.
    var errorPath: String?
    /// The mode of files that are created.
    var mode: mode_t
  }

  /// glibc's `POSIX_SPAWN_SETSID`, which Swift does not import because it needs `_GNU_SOURCE`.
  private static let setSessionFlag: Int32 = 0x80

  /// Starts `path` (an executable file, not looked up in `PATH`) with standard input from `/dev/null` and
  /// its output as `output` says.
  ///
  /// The child gets an empty signal mask and default signal handlers: the threads of Swift's concurrency
  /// pool block most signals, and a mask is inherited through exec, so HAProxy would otherwise never see
  /// SIGUSR1 or SIGTERM. It inherits no descriptor beyond the three standard ones, so it cannot keep a test
  /// server's listening socket or a log file of ours open. With `newSession` it leads a session of its
  /// own; without, a process group of its own. Either way a Ctrl-C to our process group does not reach it.
  ///
  /// - Parameter environment: The child's whole environment; nil passes on this process's environment.
  static func start(
    _ path: String,
    arguments: [String],
    environment: [String: String]? = nil,
    output: Output,
    newSession: Bool
  ) throws -> pid_t {
    // Opened here rather than by the child, so that a directory that is missing says so.
    let standardOutput = try openForAppending(output.outputPath, mode: output.mode)
    defer { close(standardOutput) }
    let standardError = try output.errorPath.map { try openForAppending($0, mode: output.mode) } ?? standardOutput
    defer { if standardError != standardOutput { close(standardError) } }
    var actions = posix_spawn_file_actions_t()
    posix_spawn_file_actions_init(&actions)
    defer { posix_spawn_file_actions_destroy(&actions) }
    // Output first: should a log have been opened as descriptor 0 (this process's standard input
    // closed), it is copied to 1 and 2 before /dev/null takes 0.
    posix_spawn_file_actions_adddup2(&actions, standardOutput, 1)
    posix_spawn_file_actions_adddup2(&actions, standardError, 2)
    posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
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
    if newSession {
      flags |= setSessionFlag
    } else {
      // A process group of its own (as Foundation's Process gives its children): a Ctrl-C or a group
      // kill meant for us does not reach it behind our back; we stop it ourselves.
      flags |= Int32(POSIX_SPAWN_SETPGROUP)
      posix_spawnattr_setpgroup(&attributes, 0)
    }
    posix_spawnattr_setflags(&attributes, Int16(flags))

    let argv = ([path] + arguments).map { strdup($0) } + [nil]
    defer { for argument in argv { free(argument) } }
    let environmentStrings = environment.map { $0.map { strdup("\($0.key)=\($0.value)") } + [nil] }
    defer { for entry in environmentStrings ?? [] { free(entry) } }
    var pid: pid_t = 0
    let result =
      if let environmentStrings {
        posix_spawn(&pid, path, &actions, &attributes, argv, environmentStrings)
      } else {
        posix_spawn(&pid, path, &actions, &attributes, argv, environ)
      }
    guard result == 0 else {
      throw ProcessError(.launchFailed, "cannot start \(path): \(String(cString: strerror(result)))")
    }
    return pid
  }

  /// Blocks until the child `pid` has exited, without reaping it: it stays a zombie, so its PID cannot be
  /// reused, until ``reap(_:)``. False if it is not our child.
  static func waitWithoutReaping(_ pid: pid_t) -> Bool {
    var info = siginfo_t()
    while true {
      if waitid(P_PID, id_t(pid), &info, WEXITED | WNOWAIT) == 0 { return true }
      if errno != EINTR { return false }
    }
  }

  /// Blocks until the child `pid` exits, reaps it and returns how it ended; nil if it is not our child.
  static func reap(_ pid: pid_t) -> ExitStatus? {
    var status: Int32 = 0
    while true {
      let result = waitpid(pid, &status, 0)
      if result == pid { return ExitStatus(waitStatus: status) }
      if result == -1 && errno == EINTR { continue }
      return nil
    }
  }

  /// A descriptor for appending to `path` (created with `mode`) that no child inherits by accident.
  private static func openForAppending(_ path: String, mode: mode_t) throws -> Int32 {
    let fd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, mode)
    guard fd >= 0 else {
      throw ProcessError(.launchFailed, "cannot open \(path) for writing: \(String(cString: strerror(errno)))")
    }
    return fd
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
    for fd in ProcFS.ownDescriptors() where fd > 2 {
      posix_spawn_file_actions_addclose(&actions, fd)
    }
  }
}
