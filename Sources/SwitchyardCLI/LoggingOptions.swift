import ArgumentParser
import Logging
import Synchronization

/// `--log-level`, shared by the long-running commands.
struct LoggingOptions: ParsableArguments {
  @Option(
    name: .customLong("log-level"),
    help: "trace, debug, info, notice, warning, error or critical."
  )
  var level: String = "info"

  func validate() throws {
    guard Logger.Level(rawValue: level) != nil else {
      throw ValidationError(
        "--log-level: \"\(level)\" is not one of trace, debug, info, notice, warning, error, critical")
    }
  }

  private static let bootstrapped = Mutex(false)

  /// Sets up logging to standard error once per process and returns a logger for `label`.
  func makeLogger(label: String) -> Logger {
    let logLevel = Logger.Level(rawValue: level) ?? .info
    Self.bootstrapped.withLock { done in
      guard !done else { return }
      LoggingSystem.bootstrap { label in
        var handler = StreamLogHandler.standardError(label: label)
        handler.logLevel = logLevel
        return handler
      }
      done = true
    }
    var logger = Logger(label: label)
    logger.logLevel = logLevel
    return logger
  }
}
