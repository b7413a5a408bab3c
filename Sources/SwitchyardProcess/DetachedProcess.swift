import Foundation

/// Starts long-running processes that outlive their starter, such as the parts of a local cluster: each in a
/// session of its own, with a clean signal mask and default handlers, standard input from `/dev/null`,
/// output appended to a log file (created with mode 0600), and no other inherited descriptor.
public enum DetachedProcess {
  /// Starts `executable` (an absolute path, or a name looked up in `PATH`) with `arguments`; returns its
  /// PID. The caller's process is its parent until the caller exits; call ``reapInBackground(_:)`` if the
  /// caller lives on, so that no zombie is left.
  public static func spawn(_ executable: String, arguments: [String], logPath: String) throws -> Int32 {
    try Spawn.start(
      try ExecutablePath.resolve(executable),
      arguments: arguments,
      output: Spawn.Output(outputPath: logPath, errorPath: nil, mode: 0o600),
      newSession: true
    )
  }

  /// Whether `pid` runs: it exists and is not a zombie waiting to be reaped.
  public static func isRunning(_ pid: Int32) -> Bool {
    ProcFS.isRunning(pid)
  }

  /// The arguments of `pid` from `/proc/<pid>/cmdline`, the executable first; empty if it is gone.
  public static func commandLine(of pid: Int32) -> [String] {
    ProcFS.commandLine(of: pid)
  }

  /// Waits for the child `pid` on a thread of its own, so that it is reaped when it exits.
  public static func reapInBackground(_ pid: Int32) {
    let thread = Thread { _ = Spawn.reap(pid) }
    thread.name = "reaper-\(pid)"
    thread.start()
  }
}
