#if canImport(Glibc)
  import Glibc
#elseif canImport(Darwin)
  import Darwin
#endif

/// TCP on 127.0.0.1 without Foundation's URL loading, which may route through an HTTP proxy from the
/// environment: the harness must never send traffic beyond loopback. The probes built on it live with the
/// servers they probe.
package enum Loopback {
  /// Keeps a write to a connection that the server closed from raising SIGPIPE, which would end the process.
  #if os(Linux)
    package static let noSignal = Int32(MSG_NOSIGNAL)
  #else
    package static let noSignal: Int32 = 0  // SO_NOSIGPIPE is set on the socket instead.
  #endif

  /// A TCP socket that child processes do not inherit: a child started while a probe socket is open would
  /// otherwise keep that port bound for as long as it runs.
  package static func socket() throws -> Int32 {
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
    guard fd >= 0 else { throw ProcessError(.portAllocationFailed, "socket() failed: errno \(errno)") }
    return fd
  }

  /// Whether something listens on 127.0.0.1:`port` (or on all addresses): a bind attempt fails
  /// (``PortProbe``, with `SO_REUSEADDR` as servers bind, so connections in TIME_WAIT do not count).
  package static func isPortInUse(_ port: Int) -> Bool {
    PortProbe.bindProblem(host: "127.0.0.1", port: port) != nil
  }

  /// 127.0.0.1:`port`.
  package static func address(port: Int) -> sockaddr_in {
    var address = sockaddr_in()
    #if canImport(Darwin)
      address.sin_len = UInt8(MemoryLayout<sockaddr_in>.size)
    #endif
    address.sin_family = sa_family_t(AF_INET)
    address.sin_port = in_port_t(UInt16(port).bigEndian)
    address.sin_addr.s_addr = in_addr_t(UInt32(0x7F00_0001).bigEndian)
    return address
  }
}
