#if canImport(Glibc)
  import Glibc
#elseif canImport(Darwin)
  import Darwin
#endif

/// Whether a TCP port can be listened on: a bind attempt (with `SO_REUSEADDR`, as servers bind) on an IP
/// literal, closed at once. For a listener that a configuration is about to add: `haproxy -c` does not
/// bind, and a reload whose new worker cannot bind pauses the old worker's listeners while it tries.
package enum PortProbe {
  /// Why `host`:`port` cannot be bound now (`Address already in use`, …), or `nil` when it can, or when
  /// `host` is not an IPv4 or IPv6 literal (nothing is tried then).
  package static func bindProblem(host: String, port: Int) -> String? {
    var v4 = sockaddr_in()
    var v6 = sockaddr_in6()
    let family: Int32
    if inet_pton(AF_INET, host, &v4.sin_addr) == 1 {
      family = AF_INET
      v4.sin_family = sa_family_t(AF_INET)
      v4.sin_port = in_port_t(UInt16(port).bigEndian)
    } else if inet_pton(AF_INET6, host, &v6.sin6_addr) == 1 {
      family = AF_INET6
      v6.sin6_family = sa_family_t(AF_INET6)
      v6.sin6_port = in_port_t(UInt16(port).bigEndian)
    } else {
      return nil
    }
    #if os(Linux)
      let fd = socket(family, Int32(SOCK_STREAM.rawValue | SOCK_CLOEXEC.rawValue), 0)
    #else
      let fd = socket(family, SOCK_STREAM, 0)
    #endif
    guard fd >= 0 else { return nil }
    defer { close(fd) }
    var one: Int32 = 1
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, socklen_t(MemoryLayout<Int32>.size))
    let result: Int32
    if family == AF_INET {
      result = withUnsafePointer(to: &v4) {
        $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
      }
    } else {
      result = withUnsafePointer(to: &v6) {
        $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
          bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in6>.size))
        }
      }
    }
    return result == 0 ? nil : String(cString: strerror(errno))
  }
}
