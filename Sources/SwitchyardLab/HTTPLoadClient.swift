import AddressText
import NIOCore
import NIOHTTP1
import NIOPosix
import SwitchyardHTTP
import SwitchyardProcess
import Synchronization

/// Keeps `connections` HTTP/1.1 keep-alive connections busy with sequential `GET`s against one URL until
/// stopped, and counts what came back, so that a test can check that a change behind a load balancer cost
/// no request.
///
/// Each connection sends its next request as soon as the previous response is complete and reconnects only
/// when the server closes the connection (after a response with `Connection: close`, or at any time).
/// A connection error, a connection closed before a complete response, or a status other than 200 counts as
/// a failure; the first few failures are described in ``LoadReport/errors``. Only loopback URLs and addresses
/// of a live network lab (``LabAddresses``) are accepted: tests must not send traffic anywhere else.
public final class HTTPLoadClient: Sendable {
  /// The URL requested.
  public let url: String
  private let stats: Statistics
  private let task: Mutex<Task<Void, Never>?>
  private let stopping: Atomic<Bool>

  /// What a load run saw.
  public struct LoadReport: Sendable, Hashable, CustomStringConvertible {
    /// Requests that got a complete response or failed.
    public var totalRequests: Int
    /// Requests answered with status 200.
    public var successes: Int
    /// Connection errors, incomplete responses and statuses other than 200.
    public var failures: Int
    /// Descriptions of the first failures.
    public var errors: [String]
    /// How many 200 responses had each body.
    public var bodies: [String: Int]
    /// When the first and the last failure happened.
    public var firstFailure: ContinuousClock.Instant?
    public var lastFailure: ContinuousClock.Instant?

    /// From the first failure to the last: how long requests failed.
    public var failureWindow: Duration {
      guard let firstFailure, let lastFailure else { return .zero }
      return firstFailure.duration(to: lastFailure)
    }

    public var description: String {
      "\(totalRequests) requests, \(failures) failures \(errors), bodies \(bodies)"
    }
  }

  private final class Statistics: Sendable {
    static let keptErrors = 10
    let report = Mutex(LoadReport(totalRequests: 0, successes: 0, failures: 0, errors: [], bodies: [:]))

    func success(body: String) {
      report.withLock {
        $0.totalRequests += 1
        $0.successes += 1
        $0.bodies[body, default: 0] += 1
      }
    }

    func failure(_ description: String) {
      let now = ContinuousClock.now
      report.withLock {
        $0.totalRequests += 1
        $0.failures += 1
        if $0.firstFailure == nil { $0.firstFailure = now }
        $0.lastFailure = now
        if $0.errors.count < Self.keptErrors { $0.errors.append(description) }
      }
    }
  }

  private init(url: String) {
    self.url = url
    stats = Statistics()
    task = Mutex(nil)
    stopping = Atomic(false)
  }

  /// Starts `connections` connections requesting `url` (`http://127.0.0.1:PORT/path`) in the background.
  ///
  /// - Parameters:
  ///   - reconnectDelay: The pause before reconnecting after a connection error, which keeps a
  ///     refused connection from spinning.
  ///   - newConnections: Send every request on a new connection (`Connection: close`) instead of keeping
  ///     connections alive.
  ///   - pause: The pause after each response before the next request, which sets a steady rate instead
  ///     of as many requests as the machine can make.
  ///   - requestTimeout: A request with no complete response within it fails, and its connection is
  ///     closed, as a client that gives up would; `nil` waits as long as the server takes.
  ///   - host: The `Host` header of every request, for a virtual host behind the URL's address; `nil`
  ///     sends the URL's host and port.
  public static func start(
    url: String,
    connections: Int = 4,
    reconnectDelay: Duration = .milliseconds(10),
    newConnections: Bool = false,
    pause: Duration = .zero,
    requestTimeout: Duration? = nil,
    host: String? = nil
  ) throws -> HTTPLoadClient {
    let target = try HTTPTarget(url, hostHeader: host)
    let client = HTTPLoadClient(url: url)
    let task = Task {
      await withTaskGroup(of: Void.self) { group in
        for _ in 0..<max(connections, 1) {
          group.addTask {
            await client.runConnections(
              target, reconnectDelay: reconnectDelay, keepAlive: !newConnections, pause: pause,
              requestTimeout: requestTimeout)
          }
        }
      }
    }
    client.task.withLock { $0 = task }
    return client
  }

  /// The counts so far, while the load runs.
  public var currentReport: LoadReport { stats.report.withLock { $0 } }

  /// Stops sending: each connection finishes its request in flight (for at most `timeout`, after which it
  /// is cancelled and not counted) and closes. Returns what the run saw.
  public func stop(timeout: Duration = .seconds(5)) async -> LoadReport {
    stopping.store(true, ordering: .relaxed)
    guard let task = self.task.withLock({ $0 }) else { return currentReport }
    let finished = Atomic<Bool>(false)
    let watchdog = Task {
      try? await Task.sleep(for: timeout)
      if !finished.load(ordering: .relaxed) { task.cancel() }
    }
    await task.value
    finished.store(true, ordering: .relaxed)
    watchdog.cancel()
    return currentReport
  }

  private var isStopping: Bool { stopping.load(ordering: .relaxed) }

  /// One connection slot: connects, sends requests one after the other, reconnects when closed.
  private func runConnections(
    _ target: HTTPTarget, reconnectDelay: Duration, keepAlive: Bool, pause: Duration, requestTimeout: Duration?
  ) async {
    while !isStopping && !Task.isCancelled {
      do {
        let channel = try await target.connect()
        let underlying = channel.channel
        try await channel.executeThenClose { inbound, outbound in
          var responses = inbound.makeAsyncIterator()
          while !isStopping {
            try await outbound.write(contentsOf: target.request(keepAlive: keepAlive))
            let response: HTTPTarget.Response
            // A client that gives up closes its connection.
            let timedOut = GaveUp()
            let deadline = requestTimeout.map { timeout in
              Task {
                try await Task.sleep(for: timeout)
                timedOut.flag.store(true, ordering: .relaxed)
                underlying.close(promise: nil)
              }
            }
            defer { deadline?.cancel() }
            do {
              response = try await HTTPTarget.readResponse(&responses)
            } catch {
              if Task.isCancelled { return }
              let timeout = requestTimeout.map { "no response within \($0)" }
              stats.failure(timedOut.flag.load(ordering: .relaxed) ? timeout ?? "\(error)" : "\(error)")
              return
            }
            if response.status == 200 {
              stats.success(body: response.body)
            } else {
              stats.failure("status \(response.status): \(response.body)")
            }
            if pause > .zero { try? await Task.sleep(for: pause) }
            if !response.keepAlive || !keepAlive { return }
          }
        }
      } catch {
        if Task.isCancelled || isStopping { return }
        stats.failure("\(error)")
        try? await Task.sleep(for: reconnectDelay)
      }
    }
  }

  /// Sends one `GET` with `Connection: close` on a new connection of its own, the way the load's
  /// connections send theirs (NIO's HTTP/1 codec, nothing in between), and returns the status and body:
  /// for measurements that stamp the moment a request leaves, which a client with a connection pool and
  /// its own scheduling would blur. The bench's convergence poller uses it: through AsyncHTTPClient, the
  /// "delete → no new request" p99 read 0.32–0.65 ms where this reads 0.17–0.21 ms on the same tree.
  ///
  /// `host`, when given, is the request's `Host` header in place of the URL's host and port (sent as it
  /// is, any case, with or without a port), for virtual hosts behind one address.
  ///
  /// - Throws: ``ProcessError`` if the URL is not a loopback or lab `http` URL or no complete response
  ///   arrives within `timeout`; NIO's error if the connection fails.
  public static func measuredGet(_ url: String, host: String? = nil, timeout: Duration = .seconds(5)) async throws -> (
    status: Int, body: String
  ) {
    let target = try HTTPTarget(url, hostHeader: host)
    return try await withThrowingTaskGroup(of: HTTPTarget.Response?.self) { group in
      group.addTask {
        let channel = try await target.connect()
        return try await channel.executeThenClose { inbound, outbound in
          try await outbound.write(contentsOf: target.request(keepAlive: false))
          var responses = inbound.makeAsyncIterator()
          return try await HTTPTarget.readResponse(&responses)
        }
      }
      group.addTask {
        try await Task.sleep(for: timeout)
        return nil
      }
      defer { group.cancelAll() }
      guard let response = try await group.next() ?? nil else {
        throw ProcessError(.timedOut, "GET \(url): no complete response within \(timeout)")
      }
      return (response.status, response.body)
    }
  }

  /// Sends one `GET` with `Connection: close` on a new connection (through ``HTTPCheck``, the package's
  /// one client for probes and checks) and returns the status and body.
  ///
  /// `host`, when given, is the request's `Host` header in place of the URL's host and port.
  ///
  /// - Throws: ``ProcessError`` if the URL is not a loopback or lab `http` URL; ``HTTPCheck/Failure`` if
  ///   no complete response arrives within `timeout` or the connection fails.
  public static func get(_ url: String, host: String? = nil, timeout: Duration = .seconds(5)) async throws -> (
    status: Int, body: String
  ) {
    _ = try HTTPTarget(url, hostHeader: host)
    return try await HTTPCheck.get(url, headers: host.map { [("Host", $0)] } ?? [], timeout: timeout)
  }
}

/// Whether a request's deadline passed (its connection was closed for it).
private final class GaveUp: Sendable {
  let flag = Atomic<Bool>(false)
}

/// A loopback or lab `http://host:port/path` URL and the requests and responses for it.
private struct HTTPTarget: Sendable {
  typealias Connection = NIOAsyncChannel<HTTPClientResponsePart, HTTPClientRequestPart>

  struct Response {
    var status: Int
    var body: String
    var keepAlive: Bool
  }

  struct IncompleteResponse: Error, CustomStringConvertible {
    var description: String { "connection closed before a complete response" }
  }

  let host: String
  let port: Int
  let path: String
  /// The `Host` header in place of the URL's host and port, if any.
  let hostHeader: String?

  init(_ url: String, hostHeader: String? = nil) throws {
    if let hostHeader {
      // A header value must not end the header or start another one.
      guard !hostHeader.isEmpty, hostHeader.unicodeScalars.allSatisfy({ (0x21...0x7e).contains($0.value) }) else {
        throw ProcessError(.invalidState, "Host header '\(hostHeader)': only printable ASCII without spaces")
      }
    }
    self.hostHeader = hostHeader
    guard url.hasPrefix("http://") else {
      throw ProcessError(.invalidState, "\(url): only http:// URLs are supported")
    }
    let rest = url.dropFirst("http://".count)
    let authority = rest.prefix { $0 != "/" }
    path = rest.dropFirst(authority.count).isEmpty ? "/" : String(rest.dropFirst(authority.count))
    let hostPart: Substring
    let portPart: Substring?
    if authority.hasPrefix("["), let close = authority.firstIndex(of: "]") {
      hostPart = authority[authority.index(after: authority.startIndex)..<close]
      let after = authority[authority.index(after: close)...]
      portPart = after.hasPrefix(":") ? after.dropFirst() : nil
    } else if let colon = authority.lastIndex(of: ":") {
      hostPart = authority[..<colon]
      portPart = authority[authority.index(after: colon)...]
    } else {
      hostPart = authority
      portPart = nil
    }
    host = String(hostPart)
    guard ["127.0.0.1", "localhost", "::1"].contains(host) || LabAddresses.contains(host) else {
      throw ProcessError(
        .invalidState, "\(url): tests only send traffic to loopback addresses and network lab hosts")
    }
    guard let port = portPart.map({ Int($0) }) ?? 80, (1...65_535).contains(port) else {
      throw ProcessError(.invalidState, "\(url): invalid port")
    }
    self.port = port
  }

  func connect() async throws -> Connection {
    try await ClientBootstrap(group: MultiThreadedEventLoopGroup.singleton)
      .connectTimeout(.seconds(2))
      .channelOption(.socketOption(.tcp_nodelay), value: 1)
      .connect(host: host, port: port) { channel in
        channel.eventLoop.makeCompletedFuture {
          try channel.pipeline.syncOperations.addHTTPClientHandlers()
          return try Connection(wrappingChannelSynchronously: channel)
        }
      }
  }

  func request(keepAlive: Bool) -> [HTTPClientRequestPart] {
    var headers = HTTPHeaders()
    headers.add(name: "Host", value: hostHeader ?? HostPortText.format(host: host, port: port))
    headers.add(name: "Connection", value: keepAlive ? "keep-alive" : "close")
    return [.head(HTTPRequestHead(version: .http1_1, method: .GET, uri: path, headers: headers)), .end(nil)]
  }

  /// Reads one response's parts; throws ``IncompleteResponse`` if the connection closes first.
  static func readResponse(
    _ parts: inout NIOAsyncChannelInboundStream<HTTPClientResponsePart>.AsyncIterator
  ) async throws -> Response {
    var head: HTTPResponseHead?
    var body = ByteBuffer()
    while let part = try await parts.next() {
      switch part {
      case .head(let received):
        head = received
      case .body(var chunk):
        body.writeBuffer(&chunk)
      case .end:
        guard let head else { throw IncompleteResponse() }
        return Response(status: Int(head.status.code), body: String(buffer: body), keepAlive: head.isKeepAlive)
      }
    }
    throw IncompleteResponse()
  }
}
