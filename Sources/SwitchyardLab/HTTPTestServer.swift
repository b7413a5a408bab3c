import NIOCore
import NIOHTTP1
import NIOPosix
import SwitchyardProcess
import Synchronization

/// An HTTP/1.1 server on 127.0.0.1 inside the test process that answers every request with status 200 and
/// `Hello from <name>\n`, so that a test can tell from a response body which backend served it.
///
/// Connections are kept alive as HTTP/1.1 allows. ``stop()`` shuts down gracefully: it stops accepting,
/// lets requests in flight finish and closes idle keep-alive connections, as a backend that is drained
/// would. ``close()`` drops everything at once, as a crashed backend would. Servers share NIO's singleton
/// event loop group, so a test can run many (50 and more) cheaply.
public final class HTTPTestServer: Sendable {
  /// The name in every response body.
  public let name: String
  /// The port on 127.0.0.1.
  public let port: Int
  private let serverChannel: any Channel
  private let state: SharedState

  /// Counters and open connections, shared with the connection handlers.
  fileprivate final class SharedState: Sendable {
    let requests = Atomic<Int>(0)
    let connections = Mutex<[ObjectIdentifier: any Channel]>([:])
    /// The request targets received last, oldest first (at most ``HTTPTestServer/keptPaths``).
    let paths = Mutex<[String]>([])

    func received(path: String) {
      paths.withLock { paths in
        if paths.count >= HTTPTestServer.keptPaths { paths.removeFirst(paths.count - HTTPTestServer.keptPaths + 1) }
        paths.append(path)
      }
    }
  }

  private init(name: String, port: Int, serverChannel: any Channel, state: SharedState) {
    self.name = name
    self.port = port
    self.serverChannel = serverChannel
    self.state = state
  }

  /// Starts a server named `name` on `port`, or on a port from ``FreePort`` if nil.
  public static func start(name: String, port: Int? = nil) async throws -> HTTPTestServer {
    let state = SharedState()
    let body = "Hello from \(name)\n"
    let chosenPort = try port ?? FreePort.allocate()
    let channel = try await ServerBootstrap(group: MultiThreadedEventLoopGroup.singleton)
      .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
      .serverChannelOption(.backlog, value: 256)
      .childChannelInitializer { channel in
        state.connections.withLock { $0[ObjectIdentifier(channel)] = channel }
        channel.closeFuture.whenComplete { _ in
          _ = state.connections.withLock { $0.removeValue(forKey: ObjectIdentifier(channel)) }
        }
        return channel.eventLoop.makeCompletedFuture {
          try channel.pipeline.syncOperations.configureHTTPServerPipeline(withErrorHandling: true)
          try channel.pipeline.syncOperations.addHandler(HelloHandler(body: body, state: state))
        }
      }
      .bind(host: "127.0.0.1", port: chosenPort)
      .get()
    return HTTPTestServer(name: name, port: chosenPort, serverChannel: channel, state: state)
  }

  /// Runs `body` with a new server and stops it however `body` ends.
  public nonisolated(nonsending) static func with<Result>(
    name: String,
    port: Int? = nil,
    _ body: (HTTPTestServer) async throws -> Result
  ) async throws -> Result {
    let server = try await start(name: name, port: port)
    do {
      let result = try await body(server)
      await server.close()
      return result
    } catch {
      await server.close()
      throw error
    }
  }

  /// How many requests the server has answered.
  public var requestCount: Int { state.requests.load(ordering: .relaxed) }

  /// How many request targets ``receivedPaths`` keeps: the most recent ones.
  public static let keptPaths = 1_000

  /// The request targets (path and query string, as the request line had them) of the last
  /// ``keptPaths`` requests, oldest first: what a proxy in front forwarded, for tests of path rewriting.
  public var receivedPaths: [String] { state.paths.withLock { $0 } }

  /// The request target of the last request, if there was one.
  public var lastPath: String? { state.paths.withLock { $0.last } }

  /// How many client connections are open.
  public var connectionCount: Int { state.connections.withLock { $0.count } }

  /// `http://127.0.0.1:<port>/`.
  public var url: String { "http://127.0.0.1:\(port)/" }

  /// Stops gracefully: closes the listening socket, closes idle connections at once and the others after
  /// the response in flight, and returns once every connection is closed or `timeout` has passed (then the
  /// rest are closed abruptly).
  public func stop(timeout: Duration = .seconds(5)) async {
    try? await serverChannel.close()
    let open = state.connections.withLock { Array($0.values) }
    for channel in open {
      channel.pipeline.fireUserInboundEventTriggered(ChannelShouldQuiesceEvent())
    }
    let deadline = ContinuousClock.now.advanced(by: timeout)
    while connectionCount > 0 && ContinuousClock.now < deadline {
      try? await Task.sleep(for: .milliseconds(10))
    }
    await close()
  }

  /// Closes the listening socket and every connection at once, with requests in flight unanswered.
  public func close() async {
    try? await serverChannel.close()
    let open = state.connections.withLock { Array($0.values) }
    for channel in open { try? await channel.close() }
  }
}

/// Answers every complete request with the server's greeting.
private final class HelloHandler: ChannelInboundHandler {
  typealias InboundIn = HTTPServerRequestPart
  typealias OutboundOut = HTTPServerResponsePart

  private let body: String
  private let state: HTTPTestServer.SharedState
  private var keepAlive = true

  init(body: String, state: HTTPTestServer.SharedState) {
    self.body = body
    self.state = state
  }

  func channelRead(context: ChannelHandlerContext, data: NIOAny) {
    switch unwrapInboundIn(data) {
    case .head(let head):
      keepAlive = head.isKeepAlive
      state.received(path: head.uri)
    case .body:
      break
    case .end:
      var headers = HTTPHeaders()
      headers.add(name: "Content-Type", value: "text/plain; charset=utf-8")
      headers.add(name: "Content-Length", value: "\(body.utf8.count)")
      if !keepAlive { headers.add(name: "Connection", value: "close") }
      context.write(
        wrapOutboundOut(.head(HTTPResponseHead(version: .http1_1, status: .ok, headers: headers))), promise: nil)
      var buffer = context.channel.allocator.buffer(capacity: body.utf8.count)
      buffer.writeString(body)
      context.write(wrapOutboundOut(.body(.byteBuffer(buffer))), promise: nil)
      state.requests.add(1, ordering: .relaxed)
      let written = context.writeAndFlush(wrapOutboundOut(.end(nil)))
      if !keepAlive {
        written.assumeIsolated().whenComplete { _ in context.close(promise: nil) }
      }
    }
  }
}
