import Foundation

/// The one `PATH` lookup: where a bare executable name such as `etcd` or `haproxy` is found.
public enum ExecutablePath {
  /// The search path when the environment has no `PATH`.
  public static let defaultSearchPath = "/usr/local/bin:/usr/bin:/bin"

  /// This process's `PATH`, or ``defaultSearchPath``.
  public static var searchPath: String {
    ProcessInfo.processInfo.environment["PATH"] ?? defaultSearchPath
  }

  /// The executable file that `name` names: `name` itself when it contains a `/`, else the first
  /// executable `<directory>/<name>` along `searchPath`; nil if there is none.
  public static func find(_ name: String, searchPath: String = searchPath) -> String? {
    if name.contains("/") { return FileManager.default.isExecutableFile(atPath: name) ? name : nil }
    for directory in searchPath.split(separator: ":") {
      let candidate = "\(directory)/\(name)"
      if FileManager.default.isExecutableFile(atPath: candidate) { return candidate }
    }
    return nil
  }

  /// ``find(_:searchPath:)``, throwing ``ProcessError/Code/executableNotFound`` with `hint` when there is
  /// no such executable. A name with a `/` is returned as it is, for `posix_spawn` to report on.
  public static func resolve(_ name: String, hint: String = "") throws -> String {
    if name.contains("/") { return name }
    guard let path = find(name) else {
      let suffix = hint.isEmpty ? "" : "; \(hint)"
      throw ProcessError(.executableNotFound, "\(name) is not in PATH (\(searchPath))\(suffix)")
    }
    return path
  }
}
