import AddressText
import AsyncHTTPClient
import NIOCore
import NIOHTTP1
import NIOSSL
import Synchronization

/// One HTTP GET for health checks, readiness probes and status pages: the one such client of the package,
/// used by the agent's health checks, `switchyard healthcheck`, the local cluster's probes and the tests'
/// and bench's one-shot requests.
///
/// Each GET asks for `Connection: close`, so it opens a connection of its own: a check must see a service
/// that stopped accepting connections, which a pooled connection would hide. Redirects are not followed
/// (a 3xx is an answer like any other) and no proxy is used.
///
/// `https://` URLs are asked with a CA file: the server's certificate must chain to that CA (and name the
/// URL's host), as the local cluster's admin endpoints do with its local CA in secure mode. There is no
/// `https://` without one: these are the package's own endpoints, never the system's trust store's.
public enum HTTPCheck {
  /// A GET that could not be made or got no whole answer in time.
  public struct Failure: Error, CustomStringConvertible {
    /// What went wrong.
    public var description: String
  }

  /// The largest body read; a larger one fails the GET (status pages of 10,000 servers are a few MB).
  public static let maximumBodySize = 64 * 1024 * 1024

  /// The status and body of `GET url`, for `url` as `http://host:port/path` (IPv6 hosts in brackets), or
  /// `https://host:port/path` with `caCertificate`, the PEM file of the CA the server's certificate must
  /// chain to.
  ///
  /// `timeout` bounds the whole exchange: connecting (and the TLS handshake), the answer's head and its
  /// body. `headers` go with the request as they are, after `User-Agent` and `Connection`; a `Host` among
  /// them replaces the one the URL gives (to reach a virtual host through an address of its own).
  /// `caCertificate` is ignored for an `http://` URL.
  public static func get(
    _ url: String, headers: [(name: String, value: String)] = [], timeout: Duration = .seconds(2),
    caCertificate: String? = nil
  ) async throws -> (status: Int, body: String) {
    let client: HTTPClient
    if url.hasPrefix("http://") {
      client = plainClient
    } else if url.hasPrefix("https://") {
      guard let caCertificate else {
        throw Failure(description: "an https:// URL needs a CA certificate to check the server with: \(url)")
      }
      client = try Self.client(trusting: caCertificate)
    } else {
      throw Failure(description: "not an http:// or https:// URL: \(url)")
    }
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

  /// The status and body of `GET path` from `host:port`; `host` without brackets. Over `https` when
  /// `caCertificate` is given, checking the server's certificate against that CA.
  public static func get(
    host: String,
    port: Int,
    path: String,
    timeout: Duration = .seconds(2),
    caCertificate: String? = nil
  ) async throws -> (status: Int, body: String) {
    let path = path.hasPrefix("/") ? path : "/" + path
    let scheme = caCertificate == nil ? "http" : "https"
    return try await get(
      "\(scheme)://\(HostPortText.format(host: host, port: port))\(path)", timeout: timeout,
      caCertificate: caCertificate)
  }

  /// Never shut down: it lives as long as the process, like `HTTPClient.shared`, but without that
  /// one's redirects, and without its retries of a refused connection: a refused connection is an
  /// answer at once (the service is down), and a pool that backs off after failures would hide a
  /// service that came back.
  private static let plainClient = makeClient(tls: nil)

  /// The `https` clients, one per CA file, made on first use and, like ``plainClient``, never shut down.
  private static let tlsClients = Mutex<[String: HTTPClient]>([:])

  /// The client that trusts the CA in `caCertificate` alone. The file is read when the client is made (a
  /// file that holds no PEM certificate fails here); the client is kept for the life of the process.
  static func client(trusting caCertificate: String) throws -> HTTPClient {
    try tlsClients.withLock { clients in
      if let client = clients[caCertificate] { return client }
      let roots: [NIOSSLCertificate]
      do {
        roots = try NIOSSLCertificate.fromPEMFile(caCertificate)
      } catch {
        throw Failure(description: "cannot load the CA certificate \(caCertificate): \(error)")
      }
      guard !roots.isEmpty else { throw Failure(description: "\(caCertificate) holds no CA certificate") }
      var tls = TLSConfiguration.makeClientConfiguration()
      tls.trustRoots = .certificates(roots)
      let client = makeClient(tls: tls)
      clients[caCertificate] = client
      return client
    }
  }

  /// A client that follows no redirect and retries no refused connection, with `tls` for `https` URLs.
  private static func makeClient(tls: TLSConfiguration?) -> HTTPClient {
    var configuration = HTTPClient.Configuration(
      tlsConfiguration: tls, redirectConfiguration: .disallow, decompression: .disabled)
    configuration.connectionPool.retryConnectionEstablishment = false
    return HTTPClient(eventLoopGroup: HTTPClient.defaultEventLoopGroup, configuration: configuration)
  }
}
