import Foundation
import HAProxyKit
import Logging

/// An LB node's HAProxy seen from its state directory: whether it runs, and stopping it when its controller
/// is gone (crashed, killed, or stopped without it) and left it serving.
struct OrphanedHAProxies: Sendable {
  /// The state directory of the cluster; each LB node's HAProxy state directory is in it.
  let home: String
  /// Where progress goes.
  let say: @Sendable (String) -> Void

  /// The HAProxy state directory of an LB node, when it exists.
  static func directory(of spec: PartSpec) -> StateDirectory? {
    guard let path = spec.haproxyStateDirectory, FileManager.default.fileExists(atPath: path) else { return nil }
    return try? StateDirectory(path: path)
  }

  /// The PID of an LB node's HAProxy master while it runs.
  static func runningPID(of spec: PartSpec) -> Int32? {
    directory(of: spec).flatMap { HAProxyProcess.runningMasterPID(stateDirectory: $0) }
  }

  /// Stops the HAProxy of the LB node `spec`, if one runs; returns why it could not, or `nil`.
  func stop(of spec: PartSpec) async -> String? {
    guard let directory = Self.directory(of: spec) else { return nil }
    return await stop(in: directory, of: spec.name)
  }

  /// Stops every HAProxy that runs from a state directory in `home` (an LB node's, found by its PID file and
  /// master socket) although its controller is gone; returns what could not be stopped.
  func stopAll() async -> [String] {
    let entries = (try? FileManager.default.contentsOfDirectory(atPath: home)) ?? []
    var problems: [String] = []
    for entry in entries.sorted() where FileManager.default.fileExists(atPath: "\(home)/\(entry)/haproxy.pid") {
      guard let directory = try? StateDirectory(path: "\(home)/\(entry)") else { continue }
      if let problem = await stop(in: directory, of: entry) { problems.append(problem) }
    }
    return problems
  }

  /// Stops the HAProxy serving from `directory`, if one runs: a soft stop, then SIGTERM and SIGKILL, as its
  /// controller would have. Returns why it could not, or `nil`.
  private func stop(in directory: StateDirectory, of name: String) async -> String? {
    guard let pid = HAProxyProcess.runningMasterPID(stateDirectory: directory) else { return nil }
    say("  \(name)'s HAProxy (pid \(pid)) runs without its controller; stopping it")
    var logger = Logger(label: "switchyard.local")
    logger.logLevel = .critical
    do {
      try await HAProxyProcess.adopt(stateDirectory: directory, logger: logger)?.stop(timeout: .seconds(10))
      return nil
    } catch {
      return "HAProxy \(pid) of \(name) (\(error))"
    }
  }
}
