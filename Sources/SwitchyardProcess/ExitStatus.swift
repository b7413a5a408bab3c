/// How a child process ended, which tells a clean shutdown from a crash or a kill.
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

  /// Decodes a status from `waitpid`; `WIFEXITED` and friends are macros that Swift does not import.
  init(waitStatus status: Int32) {
    let signal = status & 0x7f
    self = signal == 0 ? .exited((status >> 8) & 0xff) : .signaled(signal)
  }
}
