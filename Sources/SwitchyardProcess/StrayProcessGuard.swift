#if canImport(Glibc)
  import Glibc
#elseif canImport(Darwin)
  import Darwin
#endif

/// Processes a test or the bench did not start itself but must not leave behind, such as the HAProxy that a
/// controller under test starts in a session of its own (so that it outlives the controller, as designed).
///
/// A guarded PID is killed with SIGKILL when this process exits or is stopped by a signal, like the
/// children of ``ManagedProcess``. Forget a PID as soon as its process is known to be gone, so that a reused
/// PID is never signalled.
public enum StrayProcessGuard {
  /// Guards `pid`; false when the table is full.
  @discardableResult
  public static func guardProcess(_ pid: Int32) -> Bool {
    guard pid > 0, !ProcessRegistry.contains(pid) else { return pid > 0 }
    return ProcessRegistry.register(pid)
  }

  /// Stops guarding `pid`.
  public static func forget(_ pid: Int32) {
    ProcessRegistry.unregister(pid)
  }

  /// Whether a process with this PID exists (signal 0).
  public static func isAlive(_ pid: Int32) -> Bool {
    kill(pid, 0) == 0 || errno == EPERM
  }

  /// Kills `pid` with SIGKILL, waits up to `timeout` for it to go, and forgets it.
  public static func killAndWait(_ pid: Int32, timeout: Duration = .seconds(5)) async {
    _ = kill(pid, SIGKILL)
    let deadline = ContinuousClock.now.advanced(by: timeout)
    while isAlive(pid), ContinuousClock.now < deadline {
      try? await Task.sleep(for: .milliseconds(20))
    }
    forget(pid)
  }
}
