import NIOCore
import NIOHTTP1
import NIOPosix
import SwitchyardProcess
import Synchronization

/// An HTTP/1.1 server on 127.0.0.1 inside the test process that serves fixed pages by path (`/`,
/// `/app.js`), and 404 for anything else: pages for a browser test that need no real server behind them.
public final class StaticPageServer: Sendable {
  /// One page: its content type and body.
  public struct Page: Sendable {
    public var contentType: String
    public var body: String

    public init(contentType: String = "text/html; charset=utf-8", body: String) {
      self.contentType = contentType
      self.body = body
    }
  }

  /// The port on 127.0.0.1.
  public let port: Int
  private let channel: any Channel
  private let connections: Connections

  /// The open client connections, to close with the server.
  private final class Connections: Sendable {
    let open = Mutex<[ObjectIdentifier: any Channel]>([:])
  }

  private init(port: Int, channel: any Channel, connections: Connections) {
    self.port = port
    self.channel = channel
    self.connections = connections
  }

  /// `http://127.0.0.1:<port>`, without a trailing slash: append a page's path.
  public var baseURL: String { "http://127.0.0.1:\(port)" }

  /// Starts a server with `pages`, keyed by path (without query), on a port from ``FreePort``.
  public static func start(pages: [String: Page]) async throws -> StaticPageServer {
    let port = try FreePort.allocate()
    let connections = Connections()
    let channel = try await ServerBootstrap(group: MultiThreadedEventLoopGroup.singleton)
      .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
      .childChannelInitializer { channel in
        connections.open.withLock { $0[ObjectIdentifier(channel)] = channel }
        channel.closeFuture.whenComplete { _ in
          _ = connections.open.withLock { $0.removeValue(forKey: ObjectIdentifier(channel)) }
        }
        return channel.eventLoop.makeCompletedFuture {
          try channel.pipeline.syncOperations.configureHTTPServerPipeline()
          try channel.pipeline.syncOperations.addHandler(PageHandler(pages: pages))
        }
      }
      .bind(host: "127.0.0.1", port: port)
      .get()
    return StaticPageServer(port: port, channel: channel, connections: connections)
  }

  /// Runs `body` with a new server and closes it however `body` ends.
  public nonisolated(nonsending) static func with<Result>(
    pages: [String: Page],
    _ body: (StaticPageServer) async throws -> Result
  ) async throws -> Result {
    let server = try await start(pages: pages)
    do {
      let result = try await body(server)
      await server.close()
      return result
    } catch {
      await server.close()
      throw error
    }
  }

  /// Stops listening and closes every connection.
  public func close() async {
    try? await channel.close()
    for connection in connections.open.withLock({ Array($0.values) }) { try? await connection.close() }
  }
}

/// Answers each request with its page, or 404.
private final class PageHandler: ChannelInboundHandler {
  typealias InboundIn = HTTPServerRequestPart
  typealias OutboundOut = HTTPServerResponsePart

  private let pages: [String: StaticPageServer.Page]
  private var head: HTTPRequestHead?

  init(pages: [String: StaticPageServer.Page]) {
    self.pages = pages
  }

  func channelRead(context: ChannelHandlerContext, data: NIOAny) {
    switch unwrapInboundIn(data) {
    case .head(let received):
      head = received
    case .body:
      break
    case .end:
      guard let head else { return }
      let path = String(head.uri.prefix { $0 != "?" })
      let page = pages[path]
      let body = page?.body ?? "not found\n"
      var headers = HTTPHeaders()
      headers.add(name: "Content-Type", value: page?.contentType ?? "text/plain; charset=utf-8")
      headers.add(name: "Content-Length", value: "\(body.utf8.count)")
      headers.add(name: "Cache-Control", value: "no-store")
      if !head.isKeepAlive { headers.add(name: "Connection", value: "close") }
      let status: HTTPResponseStatus = page == nil ? .notFound : .ok
      context.write(
        wrapOutboundOut(.head(HTTPResponseHead(version: head.version, status: status, headers: headers))), promise: nil)
      context.write(wrapOutboundOut(.body(.byteBuffer(context.channel.allocator.buffer(string: body)))), promise: nil)
      let keepAlive = head.isKeepAlive
      let written = context.writeAndFlush(wrapOutboundOut(.end(nil)))
      if !keepAlive {
        written.assumeIsolated().whenComplete { _ in context.close(promise: nil) }
      }
      self.head = nil
    }
  }
}
