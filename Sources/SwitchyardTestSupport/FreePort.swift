import Foundation
import Synchronization

#if canImport(Glibc)
  import Glibc
#endif

/// Hands out free TCP ports on 127.0.0.1, never the same one twice in a process.
///
/// The kernel picks a free port (bind to port 0); remembering what was handed out keeps two parts
/// of one test run from racing for the same port between allocation and use.
public enum FreePort {
  private static let handedOut = Mutex<Set<Int>>([])

  /// A port that was free a moment ago and has not been handed out before.
  public static func allocate() throws -> Int {
    for _ in 0..<100 {
      let port = try kernelPickedPort()
      let fresh = handedOut.withLock { $0.insert(port).inserted }
      if fresh { return port }
    }
    throw TestSupportError("could not find a free loopback port")
  }

  /// `count` distinct free ports.
  public static func allocate(_ count: Int) throws -> [Int] {
    try (0..<count).map { _ in try allocate() }
  }

  private static func kernelPickedPort() throws -> Int {
    let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
    guard fd >= 0 else { throw TestSupportError("socket() failed: errno \(errno)") }
    defer { close(fd) }
    var address = sockaddr_in()
    address.sin_family = sa_family_t(AF_INET)
    address.sin_port = 0
    address.sin_addr.s_addr = inet_addr("127.0.0.1")
    let bound = withUnsafePointer(to: &address) {
      $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
        bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size))
      }
    }
    guard bound == 0 else { throw TestSupportError("bind() failed: errno \(errno)") }
    var length = socklen_t(MemoryLayout<sockaddr_in>.size)
    let named = withUnsafeMutablePointer(to: &address) {
      $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &length) }
    }
    guard named == 0 else { throw TestSupportError("getsockname() failed: errno \(errno)") }
    return Int(UInt16(bigEndian: address.sin_port))
  }

  /// Whether something accepts TCP connections on 127.0.0.1:`port` right now.
  public static func isListening(_ port: Int) -> Bool {
    let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
    guard fd >= 0 else { return false }
    defer { close(fd) }
    var address = sockaddr_in()
    address.sin_family = sa_family_t(AF_INET)
    address.sin_port = in_port_t(UInt16(port).bigEndian)
    address.sin_addr.s_addr = inet_addr("127.0.0.1")
    let result = withUnsafePointer(to: &address) {
      $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
        connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size))
      }
    }
    return result == 0
  }
}

/// A failure in the test harness itself (not in the code under test).
public struct TestSupportError: Error, CustomStringConvertible {
  /// What went wrong.
  public var description: String

  /// Creates an error.
  public init(_ description: String) {
    self.description = description
  }
}

/// A temporary directory that tests remove when done.
public struct TemporaryDirectory: Sendable {
  /// The directory's path.
  public let path: String

  /// Creates a fresh, empty directory under the system's temporary directory.
  public init(prefix: String = "switchyard-test") throws {
    let base = FileManager.default.temporaryDirectory.path
    path = "\(base)/\(prefix)-\(UUID().uuidString.prefix(8))"
    try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
  }

  /// Deletes the directory and everything in it.
  public func remove() {
    try? FileManager.default.removeItem(atPath: path)
  }
}
