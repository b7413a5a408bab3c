import AddressText
import AsyncHTTPClient
import NIOCore
import NIOHTTP1

/// One HTTP GET for health checks, readiness probes and status pages: the one such client of the package,
/// used by the agent's health checks, `switchyard healthcheck`, the local cluster's probes and the tests'
/// and bench's one-shot requests.
///
/// Each GET asks for `Connection: close`, so it opens a connection of its own: a check must see a service
/// that stopped accepting connections, which a pooled connection would hide. Redirects are not followed
/// (a 3xx is an answer like any other) and no proxy is used.
public enum HTTPCheck {
  /// A GET that could not be made or got no whole answer in time.
  public struct Failure: Error, CustomStringConvertible {
    /// What went wrong.
    public var description: String
  }

  /// The largest body read; a larger one fails the GET (status pages of 10,000 servers are a few MB).
  public static let maximumBodySize = 64 * 1024 * 1024

  /// The status and body of `GET url`, for `url` as `http://host:port/path` (IPv6 hosts in brackets).
  ///
  /// `timeout` bounds the whole exchange: connecting, the answer's head and its body. `headers` go with
  /// the request as they are, after `User-Agent` and `Connection`; a `Host` among them replaces the one
  /// the URL gives (to reach a virtual host through an address of its own).
  public static func get(
    _ url: String, headers: [(name: String, value: String)] = [], timeout: Duration = .seconds(2)
  ) async throws -> (status: Int, body: String) {
    guard url.hasPrefix("http://") else { throw Failure(description: "not an http:// URL: \(url)") }
    let request = {
      var request = HTTPClientRequest(url: url)
      request.headers.add(name: "User-Agent", value: "switchyard")
      request.headers.add(name: "Connection", value: "close")
      for header in headers { request.headers.replaceOrAdd(name: header.name, value: header.value) }
      return request
    }()
    return try await withThrowingTaskGroup(of: (status: Int, body: String)?.self) { group in
      group.addTask {
        do {
          let response = try await client.execute(request, timeout: TimeAmount(timeout))
          let body = try await response.body.collect(upTo: maximumBodySize)
          return (Int(response.status.code), String(buffer: body))
        } catch let error as HTTPClientError where error == .deadlineExceeded {
          return nil
        }
      }
      group.addTask {
        try await Task.sleep(for: timeout)
        return nil
      }
      defer { group.cancelAll() }
      guard let answer = try await group.next() ?? nil else {
        throw Failure(description: "no answer from \(url) within \(timeout)")
      }
      return answer
    }
  }

  /// The status and body of `GET path` from `host:port`; `host` without brackets.
  public static func get(
    host: String,
    port: Int,
    path: String,
    timeout: Duration = .seconds(2)
  ) async throws -> (status: Int, body: String) {
    let path = path.hasPrefix("/") ? path : "/" + path
    return try await get("http://\(HostPortText.format(host: host, port: port))\(path)", timeout: timeout)
  }

  /// Never shut down: it lives as long as the process, like `HTTPClient.shared`, but without that
  /// one's redirects, and without its retries of a refused connection: a refused connection is an
  /// answer at once (the service is down), and a pool that backs off after failures would hide a
  /// service that came back.
  private static let client: HTTPClient = {
    var configuration = HTTPClient.Configuration(redirectConfiguration: .disallow, decompression: .disabled)
    configuration.connectionPool.retryConnectionEstablishment = false
    return HTTPClient(eventLoopGroup: HTTPClient.defaultEventLoopGroup, configuration: configuration)
  }()
}
