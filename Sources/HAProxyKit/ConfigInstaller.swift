import Foundation
import Logging
import SwitchyardProcess

#if canImport(Glibc)
  import Glibc
#elseif canImport(Darwin)
  import Darwin
#endif

/// Checks configurations with `haproxy -c` and installs them atomically, so that the file HAProxy loads on
/// its next start or reload is always one that HAProxy accepted.
///
/// Temporary files live in the state directory: they may hold secrets, and a rename is only atomic within
/// one file system.
public struct ConfigInstaller: Sendable {
  /// Where temporary files for validation are written.
  public let stateDirectory: StateDirectory
  /// The HAProxy executable: an absolute path or a name looked up in `PATH`.
  public let executable: String
  private let logger: Logger

  /// Creates an installer that validates with `executable`.
  public init(stateDirectory: StateDirectory, executable: String = "haproxy", logger: Logger) {
    self.stateDirectory = stateDirectory
    self.executable = executable
    self.logger = logger
  }

  /// Checks `text` with `haproxy -c -f <temporary file>`, waiting for it without holding a thread.
  ///
  /// The check resolves host names as a start would, which can take long when a resolver does not
  /// answer: after `timeout` it is killed and the configuration counts as not validated.
  ///
  /// - Throws: ``HAProxyError/Code/invalidConfiguration`` with HAProxy's `[ALERT]` lines in
  ///   ``HAProxyError/details`` if HAProxy rejects it; ``HAProxyError/Code/timedOut`` if the check did not
  ///   finish within `timeout`; ``HAProxyError/Code/fileSystem`` or ``HAProxyError/Code/processFailed`` if
  ///   it could not run.
  public func validate(_ text: String, timeout: Duration = .seconds(30)) async throws {
    let name = ".validate-\(UUID().uuidString.prefix(8)).cfg"
    let configPath = stateDirectory.path(name)
    let outputPath = configPath + ".out"
    defer {
      unlink(configPath)
      unlink(outputPath)
    }
    try DurableFile.create(text, at: configPath, sync: false)
    let check = try ChildProcess.haproxy(
      executable, arguments: ["-c", "-f", configPath], outputPath: outputPath, newSession: false)
    let started = ContinuousClock.now
    let status = await check.waitForExit(timeout: timeout)
    if status == nil { check.kill() }
    if status == nil, started.duration(to: .now) >= timeout {
      throw HAProxyError(.timedOut, "haproxy -c did not finish within \(timeout); the configuration was not installed")
    }
    let output = FileManager.default.contents(atPath: outputPath).map { String(decoding: $0, as: UTF8.self) } ?? ""
    guard status?.isSuccess != true else { return }
    let alerts = Self.alertLines(in: output)
    logger.info(
      "HAProxy rejected a configuration",
      metadata: ["haproxy.alerts": .array(alerts.map { .string($0) })]
    )
    throw HAProxyError(
      .invalidConfiguration,
      "haproxy -c rejected the configuration (\(status.map { "\($0)" } ?? "no exit status"))",
      details: alerts.isEmpty ? output.split(separator: "\n").map(String.init) : alerts
    )
  }

  /// Validates `text` and, only if HAProxy accepts it, replaces the file at `path` atomically: a temporary
  /// file in the same directory is written and synced, renamed over `path`, and the directory is synced.
  /// The file gets mode 0600.
  ///
  /// An invalid text, a check that does not finish within `timeout`, or a failed write never touches the
  /// existing file.
  ///
  /// - Parameter validate: Whether to run `haproxy -c` first. Skip it only for a text whose every line
  ///   HAProxy has already accepted in another form, such as server lines the Runtime API took.
  public func install(_ text: String, at path: String, validate: Bool = true, timeout: Duration = .seconds(30))
    async throws
  {
    if validate { try await self.validate(text, timeout: timeout) }
    try DurableFile.replace(text, at: path)
    logger.info("Installed HAProxy configuration", metadata: ["haproxy.config": "\(path)"])
  }

  /// The `[ALERT]` lines of HAProxy's output, which say what is wrong.
  static func alertLines(in output: String) -> [String] {
    output.split(separator: "\n").map(String.init).filter { $0.contains("[ALERT]") }
  }
}
