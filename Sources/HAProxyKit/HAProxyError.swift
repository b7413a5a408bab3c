/// A failure while managing HAProxy: a refused configuration, an unexpected Runtime API reply, a process
/// that would not start or stop.
///
/// The message names what was involved (the file, the command and HAProxy's reply, the log tail), so that a
/// failure can be diagnosed from the error alone.
public struct HAProxyError: Error, Hashable, CustomStringConvertible {
  /// What kind of failure; new kinds can be added without breaking `switch`es elsewhere.
  public struct Code: Hashable, Sendable, CustomStringConvertible {
    private enum Wrapped: Hashable, Sendable {
      case invalidConfiguration
      case fileSystem
      case invalidCommand
      case unexpectedReply
      case connectionFailed
      case timedOut
      case reloadFailed
      case processFailed
      case invalidState
      case unsupportedVersion
    }

    private let wrapped: Wrapped

    private init(_ wrapped: Wrapped) {
      self.wrapped = wrapped
    }

    /// `haproxy -c` rejected a configuration; ``HAProxyError/details`` holds its ALERT lines.
    public static var invalidConfiguration: Self { Self(.invalidConfiguration) }
    /// A file or directory could not be created, written, synced or renamed, or is not what it should be.
    public static var fileSystem: Self { Self(.fileSystem) }
    /// A command or argument was refused before anything was sent, such as one containing `;` or a newline.
    public static var invalidCommand: Self { Self(.invalidCommand) }
    /// HAProxy answered, but not with the expected success reply.
    public static var unexpectedReply: Self { Self(.unexpectedReply) }
    /// A socket could not be connected to, or the connection failed.
    public static var connectionFailed: Self { Self(.connectionFailed) }
    /// HAProxy did not answer, start, reload or stop in time.
    public static var timedOut: Self { Self(.timedOut) }
    /// The master reported a failed reload; the old workers keep serving.
    public static var reloadFailed: Self { Self(.reloadFailed) }
    /// HAProxy could not be started or exited unexpectedly.
    public static var processFailed: Self { Self(.processFailed) }
    /// The call does not fit the current state, such as starting HAProxy while one runs for the directory.
    public static var invalidState: Self { Self(.invalidState) }
    /// The HAProxy release is older than the oldest one Switchyard supports (``HAProxyVersion/oldestSupported``).
    public static var unsupportedVersion: Self { Self(.unsupportedVersion) }

    public var description: String {
      switch wrapped {
      case .invalidConfiguration: "invalid configuration"
      case .fileSystem: "file system error"
      case .invalidCommand: "invalid command"
      case .unexpectedReply: "unexpected reply"
      case .connectionFailed: "connection failed"
      case .timedOut: "timed out"
      case .reloadFailed: "reload failed"
      case .processFailed: "process failed"
      case .invalidState: "invalid state"
      case .unsupportedVersion: "unsupported version"
      }
    }
  }

  /// What kind of failure.
  public var code: Code
  /// What happened, in a sentence that names the file, socket or process involved.
  public var message: String
  /// The Runtime API or master CLI command, when the failure is about one.
  public var command: String?
  /// HAProxy's reply to ``command``, when it answered.
  public var reply: String?
  /// HAProxy's own diagnostic lines, such as the `[ALERT]` lines of `haproxy -c`, or a log tail.
  public var details: [String]

  /// Creates an error; the module creates these, callers usually match on ``code``.
  public init(
    _ code: Code,
    _ message: String,
    command: String? = nil,
    reply: String? = nil,
    details: [String] = []
  ) {
    self.code = code
    self.message = message
    self.command = command
    self.reply = reply
    self.details = details
  }

  public var description: String {
    var text = "\(code): \(message)"
    if let command { text += "\ncommand: \(command)" }
    if let reply {
      let trimmed = reply.trimmingTrailingNewlines()
      text += trimmed.isEmpty ? "\nreply: (empty)" : "\nreply: \(trimmed)"
    }
    if !details.isEmpty { text += "\n" + details.joined(separator: "\n") }
    return text
  }
}

extension String {
  func trimmingTrailingNewlines() -> String {
    var text = Substring(self)
    while let last = text.last, last == "\n" || last == "\r" { text = text.dropLast() }
    return String(text)
  }
}
