import Foundation

#if canImport(Glibc)
  import Glibc
#elseif canImport(Darwin)
  import Darwin
#endif

/// The private directory that holds everything of one HAProxy instance: its configuration, PID file,
/// master and admin sockets and log.
///
/// The directory is created with mode 0700, and an existing one is tightened to 0700, because whoever can
/// reach the sockets controls HAProxy. A symbolic link or a file in its place is refused rather than
/// followed or replaced. Paths are absolute, because they end up in HAProxy's command line, which
/// ``HAProxyProcess/adopt(stateDirectory:logger:)`` matches later, from any working directory.
public struct StateDirectory: Sendable, Hashable {
  /// The directory's absolute path.
  public let path: String

  /// Creates the directory (and missing parents) or opens an existing one, and makes sure its mode is 0700.
  ///
  /// - Throws: ``HAProxyError/Code/fileSystem`` if the path is a symbolic link or not a directory, cannot be
  ///   created or changed, or is too long for the socket paths inside it (a Unix socket path has at most
  ///   107 bytes, and HAProxy binds to a longer temporary name first): keep the socket paths within 90 bytes.
  public init(path: String) throws {
    let absolute = URL(fileURLWithPath: path).standardizedFileURL.path
    self.path = absolute
    let longest = (absolute as NSString).appendingPathComponent(Self.masterSocketName)
    // HAProxy binds to `<path>.<pid>.tmp` and renames: leave room for that within the 108-byte limit.
    guard longest.utf8.count <= 90 else {
      throw HAProxyError(
        .fileSystem,
        "state directory \(absolute) is too long: socket paths inside it would exceed the Unix socket limit"
      )
    }
    try FileManager.default.createDirectory(
      atPath: (absolute as NSString).deletingLastPathComponent, withIntermediateDirectories: true)
    if mkdir(absolute, 0o700) != 0 && errno != EEXIST {
      throw HAProxyError(.fileSystem, "cannot create state directory \(absolute): \(errnoDescription())")
    }
    var info = stat()
    guard lstat(absolute, &info) == 0 else {
      throw HAProxyError(.fileSystem, "cannot inspect state directory \(absolute): \(errnoDescription())")
    }
    let type = info.st_mode & S_IFMT
    guard type != S_IFLNK else {
      throw HAProxyError(.fileSystem, "state directory \(absolute) is a symbolic link; refusing to follow it")
    }
    guard type == S_IFDIR else {
      throw HAProxyError(.fileSystem, "state directory \(absolute) exists but is not a directory")
    }
    if info.st_mode & 0o7777 != 0o700 {
      guard chmod(absolute, 0o700) == 0 else {
        throw HAProxyError(.fileSystem, "cannot set mode 0700 on state directory \(absolute): \(errnoDescription())")
      }
    }
  }

  static let masterSocketName = "master.sock"

  /// The path of `name` inside the directory.
  public func path(_ name: String) -> String {
    (path as NSString).appendingPathComponent(name)
  }

  /// `haproxy.cfg`: the configuration that HAProxy runs with.
  public var configPath: String { path("haproxy.cfg") }
  /// `haproxy.pid`: the master's PID, written by HAProxy (`-p`).
  public var pidFilePath: String { path("haproxy.pid") }
  /// `master.sock`: the master CLI (`-S`), for `show proc` and `reload`.
  public var masterSocketPath: String { path(Self.masterSocketName) }
  /// `admin.sock`: the Runtime API, declared by the configuration as
  /// `stats socket <dir>/admin.sock mode 600 level admin`.
  public var adminSocketPath: String { path("admin.sock") }
  /// `haproxy.log`: HAProxy's standard output and standard error, appended across restarts.
  public var logPath: String { path("haproxy.log") }

  /// The last `bytes` bytes of ``logPath``, for error messages; empty if there is no log.
  public func logTail(bytes: Int = 4_000) -> String {
    guard let data = FileManager.default.contents(atPath: logPath) else { return "" }
    return String(decoding: data.suffix(bytes), as: UTF8.self)
  }
}

func errnoDescription(_ code: Int32 = errno) -> String {
  "\(String(cString: strerror(code))) (errno \(code))"
}
