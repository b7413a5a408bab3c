import ArgumentParser
import Logging
import Synchronization

/// `--log-level` and `--log-format`, shared by the long-running commands.
struct LoggingOptions: ParsableArguments {
  @Option(
    name: .customLong("log-level"),
    help: "trace, debug, info, notice, warning, error or critical."
  )
  var level: String = "info"

  @Option(name: .customLong("log-format"), help: "text (human-readable) or json (one object per line).")
  var format: String = "text"

  func validate() throws {
    guard format == "text" || format == "json" else {
      throw ValidationError("--log-format: \"\(format)\" is not text or json")
    }
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
      if format == "json" {
        LoggingSystem.bootstrap { label in JSONLogHandler(label: label, level: logLevel) }
      } else {
        LoggingSystem.bootstrap { label in
          var handler = StreamLogHandler.standardError(label: label)
          handler.logLevel = logLevel
          return handler
        }
      }
      done = true
    }
    var logger = Logger(label: label)
    logger.logLevel = logLevel
    return logger
  }
}
