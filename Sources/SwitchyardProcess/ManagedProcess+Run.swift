import Foundation

#if canImport(Glibc)
  import Glibc
#elseif canImport(Darwin)
  import Darwin
#endif

extension ManagedProcess {
  /// Runs a command to completion and returns its standard output; throws
  /// ``ProcessError/Code/commandFailed`` with its standard error if it exits unsuccessfully, and kills it
  /// and throws ``ProcessError/Code/timedOut`` if it runs longer than `timeout`.
  ///
  /// - Parameter environment: The child's whole environment; `nil` passes on this process's environment.
  @discardableResult
  public static func run(
    _ executable: String,
    arguments: [String] = [],
    environment: [String: String]? = nil,
    timeout: Duration = .seconds(60)
  ) async throws -> String {
    let command = try Command(executable, arguments: arguments, environment: environment)
    defer { command.directory.remove() }
    let status = await command.process.status(within: timeout)
    if status == nil && Task.isCancelled {
      command.process.kill()
      throw CancellationError()
    }
    return try command.result(status, timeout: timeout)
  }

  /// ``run(_:arguments:environment:timeout:)`` for callers that cannot await, such as a `deinit` or a
  /// synchronous fixture; blocks the calling thread, so keep it to short commands.
  @discardableResult
  public static func runBlocking(
    _ executable: String,
    arguments: [String] = [],
    environment: [String: String]? = nil,
    timeout: Duration = .seconds(60)
  ) throws -> String {
    let command = try Command(executable, arguments: arguments, environment: environment)
    defer { command.directory.remove() }
    let deadline = ContinuousClock.now.advanced(by: timeout)
    while command.process.isRunning && ContinuousClock.now < deadline { usleep(2_000) }
    return try command.result(command.process.exitStatus, timeout: timeout)
  }

  /// A command whose standard output and standard error go to separate files in a directory of its own.
  private struct Command {
    var directory: TemporaryDirectory
    var process: ManagedProcess
    var outputPath: String

    init(_ executable: String, arguments: [String], environment: [String: String]?) throws {
      directory = try TemporaryDirectory(prefix: "switchyard-command")
      outputPath = directory.path("stdout")
      do {
        process = try ManagedProcess(
          executable,
          arguments: arguments,
          environment: environment,
          logPath: directory.path("stderr"),
          outputPath: outputPath
        )
      } catch {
        directory.remove()
        throw error
      }
    }

    func result(_ status: ExitStatus?, timeout: Duration) throws -> String {
      let commandLine = ([process.executablePath] + process.arguments).joined(separator: " ")
      guard let status else {
        process.kill()
        throw ProcessError(.timedOut, "\(commandLine) did not finish within \(timeout)")
      }
      guard status.isSuccess else {
        let standardError = process.logTail(bytes: 4_000).trimmingCharacters(in: .whitespacesAndNewlines)
        throw ProcessError(.commandFailed, "\(commandLine) ended with \(status): \(standardError)")
      }
      let data = FileManager.default.contents(atPath: outputPath) ?? Data()
      return String(decoding: data, as: UTF8.self)
    }
  }
}
