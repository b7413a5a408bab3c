import SwitchyardProcess

#if canImport(Glibc)
  import Glibc
#elseif canImport(Darwin)
  import Darwin
#endif

/// Probes of servers on 127.0.0.1, on the loopback sockets of `SwitchyardProcess`.
extension Loopback {
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
    guard request.withUnsafeBytes({ send(fd, $0.baseAddress, $0.count, Loopback.noSignal) }) == request.count else {
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
    guard let fd = try? Loopback.socket() else { return nil }
    var address = Loopback.address(port: port)
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
