#if canImport(Glibc)
  import Glibc
#elseif canImport(Darwin)
  import Darwin
#endif

/// TCP on 127.0.0.1 without Foundation's URL loading, which may route through an HTTP proxy from the
/// environment: the harness must never send traffic beyond loopback.
enum Loopback {
  /// Keeps a write to a connection that the server closed from raising SIGPIPE, which would end the tests.
  #if os(Linux)
    private static let noSignal = Int32(MSG_NOSIGNAL)
  #else
    private static let noSignal: Int32 = 0  // SO_NOSIGPIPE is set on the socket instead.
  #endif

  /// A TCP socket that child processes do not inherit: a child started while a probe socket is open would
  /// otherwise keep that port bound for as long as it runs.
  static func socket() throws -> Int32 {
    #if os(Linux)
      let fd = Glibc.socket(AF_INET, Int32(SOCK_STREAM.rawValue | SOCK_CLOEXEC.rawValue), 0)
    #else
      let fd = Darwin.socket(AF_INET, SOCK_STREAM, 0)
      if fd >= 0 {
        _ = fcntl(fd, F_SETFD, FD_CLOEXEC)
        var on: Int32 = 1
        _ = setsockopt(fd, SOL_SOCKET, SO_NOSIGPIPE, &on, socklen_t(MemoryLayout<Int32>.size))
      }
    #endif
    guard fd >= 0 else { throw TestSupportError(.portAllocationFailed, "socket() failed: errno \(errno)") }
    return fd
  }

  /// 127.0.0.1:`port`.
  static func address(port: Int) -> sockaddr_in {
    var address = sockaddr_in()
    #if canImport(Darwin)
      address.sin_len = UInt8(MemoryLayout<sockaddr_in>.size)
    #endif
    address.sin_family = sa_family_t(AF_INET)
    address.sin_port = in_port_t(UInt16(port).bigEndian)
    address.sin_addr.s_addr = in_addr_t(UInt32(0x7F00_0001).bigEndian)
    return address
  }

  /// Whether a server accepts connections on `port`: a cheap check before asking it anything slower.
  static func isAcceptingConnections(on port: Int) -> Bool {
    guard let fd = connectedSocket(port: port) else { return false }
    close(fd)
    return true
  }

  /// Whether `GET path` on `port` gets an HTTP 200 response within `timeout`. Unlike a plain connect, this
  /// tells a server that serves from one whose listening socket is open but not served yet.
  static func answersHTTP(on port: Int, path: String, timeout: Duration) async -> Bool {
    guard let fd = connectedSocket(port: port) else { return false }
    defer { close(fd) }
    let request = Array("GET \(path) HTTP/1.0\r\nHost: 127.0.0.1:\(port)\r\n\r\n".utf8)
    guard request.withUnsafeBytes({ send(fd, $0.baseAddress, $0.count, noSignal) }) == request.count else {
      return false
    }
    let deadline = ContinuousClock.now.advanced(by: timeout)
    while ContinuousClock.now < deadline {
      var readable = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
      if poll(&readable, 1, 0) == 1 {
        var buffer = [UInt8](repeating: 0, count: 12)
        let count = buffer.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
        let statusLine = String(decoding: buffer.prefix(max(count, 0)), as: UTF8.self)
        return statusLine.hasPrefix("HTTP/1.") && statusLine.hasSuffix(" 200")
      }
      try? await Task.sleep(for: .milliseconds(5))
    }
    return false
  }

  private static func connectedSocket(port: Int) -> Int32? {
    guard let fd = try? socket() else { return nil }
    var address = address(port: port)
    let connected = withUnsafePointer(to: &address) {
      $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
        connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size))
      }
    }
    guard connected == 0 else {
      close(fd)
      return nil
    }
    return fd
  }
}
