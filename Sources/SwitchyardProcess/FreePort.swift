import Synchronization

#if canImport(Glibc)
  import Glibc
#elseif canImport(Darwin)
  import Darwin
#endif

/// Free TCP ports on 127.0.0.1 for the servers that tests, the bench and the local cluster start.
///
/// The kernel chooses (bind to port 0, read the port, close), so nothing is guessed and nothing already
/// listening is hit. Once the probe socket is closed the kernel may choose the same port again, for example
/// before the server it was meant for has bound it, or while a stopped etcd member waits to be restarted on
/// it. So every port handed out is remembered and never handed out again in this process. Tests run in
/// parallel, so this is one allocator for the whole project: use it for every port a test, a bench run or a
/// local cluster needs.
public enum FreePort {
  private static let handedOut = Mutex<Set<Int>>([])

  /// A port on 127.0.0.1 that was free a moment ago and that this process has not handed out before.
  public static func allocate() throws -> Int {
    for _ in 0..<1_000 {
      let port = try kernelChosenPort()
      if handedOut.withLock({ $0.insert(port).inserted }) { return port }
    }
    throw ProcessError(.portAllocationFailed, "the kernel kept choosing ports that were handed out before")
  }

  /// `count` distinct ports, for servers that need several (an etcd member needs a client and a peer port).
  public static func allocate(_ count: Int) throws -> [Int] {
    try (0..<count).map { _ in try allocate() }
  }

  private static func kernelChosenPort() throws -> Int {
    let fd = try Loopback.socket()
    defer { close(fd) }
    var address = Loopback.address(port: 0)
    let bound = withUnsafePointer(to: &address) {
      $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
        bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size))
      }
    }
    guard bound == 0 else {
      throw ProcessError(.portAllocationFailed, "bind(127.0.0.1:0) failed: errno \(errno)")
    }
    var length = socklen_t(MemoryLayout<sockaddr_in>.size)
    let named = withUnsafeMutablePointer(to: &address) {
      $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &length) }
    }
    guard named == 0 else {
      throw ProcessError(.portAllocationFailed, "getsockname failed: errno \(errno)")
    }
    return Int(UInt16(bigEndian: address.sin_port))
  }
}
