import NIOCore
import NIOPosix

/// One plain HTTP/1.1 GET on a new connection (`Connection: close`): for health checks, status pages and
/// routing checks, where a connection pool would only hide what is being checked.
public enum PlainHTTP {
  /// A failed GET.
  public struct Failure: Error, CustomStringConvertible {
    /// What went wrong.
    public var description: String
  }

  /// The status and body of `GET url`; `url` is `http://host:port/path` (IPv6 hosts in brackets).
  public static func get(_ url: String, timeout: Duration = .seconds(2)) async throws -> (status: Int, body: String) {
    guard url.hasPrefix("http://") else { throw Failure(description: "not an http:// URL: \(url)") }
    let rest = url.dropFirst("http://".count)
    let slash = rest.firstIndex(of: "/") ?? rest.endIndex
    let authority = rest[..<slash]
    let path = slash == rest.endIndex ? "/" : String(rest[slash...])
    guard let colon = authority.lastIndex(of: ":"), let port = Int(authority[authority.index(after: colon)...]) else {
      throw Failure(description: "no port in \(url)")
    }
    var host = String(authority[..<colon])
    if host.hasPrefix("[") && host.hasSuffix("]") { host = String(host.dropFirst().dropLast()) }
    return try await get(host: host, port: port, path: path, timeout: timeout)
  }

  /// The status and body of `GET path` from `host:port`.
  public static func get(
    host: String,
    port: Int,
    path: String,
    timeout: Duration
  ) async throws -> (status: Int, body: String) {
    let authority = host.contains(":") ? "[\(host)]:\(port)" : "\(host):\(port)"
    let request = "GET \(path) HTTP/1.1\r\nHost: \(authority)\r\nUser-Agent: switchyard\r\nConnection: close\r\n\r\n"
    return try await withThrowingTaskGroup(of: (Int, String).self) { group in
      group.addTask {
        let channel = try await ClientBootstrap(group: MultiThreadedEventLoopGroup.singleton)
          .connectTimeout(TimeAmount(timeout))
          .connect(host: host, port: port) { channel in
            channel.eventLoop.makeCompletedFuture {
              try NIOAsyncChannel<ByteBuffer, ByteBuffer>(wrappingChannelSynchronously: channel)
            }
          }
        return try await channel.executeThenClose { inbound, outbound in
          try await outbound.write(ByteBuffer(string: request))
          var received = ByteBuffer()
          for try await var chunk in inbound {
            received.writeBuffer(&chunk)
            if received.readableBytes > 1_000_000 { break }
          }
          return try parse(String(buffer: received))
        }
      }
      group.addTask {
        try await Task.sleep(for: timeout)
        throw Failure(description: "no answer from \(authority) within \(timeout)")
      }
      defer { group.cancelAll() }
      guard let result = try await group.next() else { throw Failure(description: "no answer from \(authority)") }
      return result
    }
  }

  /// Splits a whole `Connection: close` response into status and body (identity or chunked).
  static func parse(_ response: String) throws -> (Int, String) {
    guard let headerEnd = response.range(of: "\r\n\r\n") else { throw Failure(description: "incomplete HTTP response") }
    let head = response[..<headerEnd.lowerBound]
    let statusLine = head.split(separator: "\r\n").first ?? ""
    let parts = statusLine.split(separator: " ")
    guard parts.count >= 2, parts[0].hasPrefix("HTTP/1."), let status = Int(parts[1]) else {
      throw Failure(description: "bad status line")
    }
    var body = String(response[headerEnd.upperBound...])
    if head.lowercased().contains("transfer-encoding: chunked") { body = dechunk(body) }
    return (status, body)
  }

  private static func dechunk(_ text: String) -> String {
    var result = ""
    var rest = Substring(text)
    while let lineEnd = rest.range(of: "\r\n"), let size = Int(rest[..<lineEnd.lowerBound], radix: 16), size > 0 {
      let start = lineEnd.upperBound
      let end = rest.utf8.index(start, offsetBy: size, limitedBy: rest.utf8.endIndex) ?? rest.endIndex
      result += rest[start..<end]
      // "\r\n" is one Character; step over its two bytes.
      rest = rest[(rest.utf8.index(end, offsetBy: 2, limitedBy: rest.utf8.endIndex) ?? rest.endIndex)...]
    }
    return result
  }
}
