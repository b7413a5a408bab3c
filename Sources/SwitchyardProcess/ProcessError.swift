/// A failure to start, run or watch a child process, or to prepare what it needs (a port, a directory).
///
/// Kept apart from failures of the code that the process serves, so that a red test or a failed bench run
/// says which of the two broke. The message carries what is needed to diagnose without re-running: the
/// command, its exit status, and the end of its log.
public struct ProcessError: Error, Hashable, CustomStringConvertible {
  /// What kind of failure; new kinds can be added without breaking `switch`es elsewhere.
  public struct Code: Hashable, Sendable, CustomStringConvertible {
    private enum Wrapped: Hashable, Sendable {
      case executableNotFound
      case launchFailed
      case commandFailed
      case timedOut
      case notHealthy
      case invalidState
      case portAllocationFailed
      case other
    }

    private let wrapped: Wrapped

    private init(_ wrapped: Wrapped) {
      self.wrapped = wrapped
    }

    /// A bare executable name was not found in `PATH`.
    public static var executableNotFound: Self { Self(.executableNotFound) }
    /// The executable exists but could not be started.
    public static var launchFailed: Self { Self(.launchFailed) }
    /// A command ran and exited unsuccessfully; the message holds its standard error.
    public static var commandFailed: Self { Self(.commandFailed) }
    /// A process did not exit, or a command did not finish, in time.
    public static var timedOut: Self { Self(.timedOut) }
    /// A server process exited or did not become healthy in time; the message holds its log tail.
    public static var notHealthy: Self { Self(.notHealthy) }
    /// The call does not fit the current state, such as starting a server that is running.
    public static var invalidState: Self { Self(.invalidState) }
    /// No free loopback port could be found.
    public static var portAllocationFailed: Self { Self(.portAllocationFailed) }
    /// Anything else, such as a check that a caller's own helper makes.
    public static var other: Self { Self(.other) }

    public var description: String {
      switch wrapped {
      case .executableNotFound: "executable not found"
      case .launchFailed: "launch failed"
      case .commandFailed: "command failed"
      case .timedOut: "timed out"
      case .notHealthy: "not healthy"
      case .invalidState: "invalid state"
      case .portAllocationFailed: "port allocation failed"
      case .other: "process failure"
      }
    }
  }

  /// What kind of failure.
  public var code: Code
  /// What happened, including log output where there is some.
  public var message: String

  /// Creates an error; callers usually only match on ``code``.
  public init(_ code: Code, _ message: String) {
    self.code = code
    self.message = message
  }

  /// Creates an error with code ``Code/other``, for helpers built on this module.
  public init(_ message: String) {
    self.init(.other, message)
  }

  public var description: String { "\(code): \(message)" }
}
