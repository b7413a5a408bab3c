import Foundation

/// A new, empty directory under the system's temporary directory, with a unique name so that parallel
/// tests, bench runs and earlier runs never share files: for the data and logs of child processes.
///
/// Nothing removes it implicitly: call ``remove()`` when done (the etcd cluster of the lab does so on
/// shutdown), or keep it to look at the logs of a failed run.
public struct TemporaryDirectory: Sendable, Hashable {
  /// The directory.
  public let url: URL

  /// The directory's path, for command-line arguments.
  public var path: String { url.path }

  /// Creates the directory, named `prefix` plus a random suffix.
  public init(prefix: String = "switchyard-test") throws {
    url = FileManager.default.temporaryDirectory.appendingPathComponent(
      "\(prefix)-\(UUID().uuidString.prefix(8).lowercased())",
      isDirectory: true
    )
    try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
  }

  /// The path of `name` inside the directory.
  public func path(_ name: String) -> String {
    url.appendingPathComponent(name).path
  }

  /// Copies the `.log` files of the directory to the directory that the environment variable `variable`
  /// names, creating it; does nothing when the variable is unset or empty. For keeping the logs of a run
  /// whose directory is about to be removed.
  public func keepLogs(in variable: String) {
    guard let keep = ProcessInfo.processInfo.environment[variable], !keep.isEmpty else { return }
    try? FileManager.default.createDirectory(atPath: keep, withIntermediateDirectories: true)
    for name in (try? FileManager.default.contentsOfDirectory(atPath: path)) ?? [] where name.hasSuffix(".log") {
      try? FileManager.default.copyItem(atPath: path(name), toPath: "\(keep)/\(name)")
    }
  }

  /// Deletes the directory and everything in it; does nothing if it is already gone.
  public func remove() {
    try? FileManager.default.removeItem(at: url)
  }
}
