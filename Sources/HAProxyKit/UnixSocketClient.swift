import NIOCore
import NIOPosix

/// One request on a Unix stream socket in HAProxy's non-interactive CLI style: connect, write one line,
/// read until HAProxy closes the connection.
enum UnixSocketClient {
  /// Replies larger than this are cut off with an error rather than held in memory.
  static let maximumReplySize = 64 << 20

  /// Sends `line` plus a newline to the socket at `path` and returns everything read until EOF.
  ///
  /// - Throws: ``HAProxyError/Code/connectionFailed`` if the socket cannot be reached or the connection
  ///   fails, ``HAProxyError/Code/timedOut`` if no EOF arrives within `timeout`.
  static func request(_ line: String, socketPath path: String, timeout: Duration) async throws -> String {
    let eventLoop = MultiThreadedEventLoopGroup.singleton.next()
    let reply = eventLoop.makePromise(of: String.self)
    let connectTimeout = TimeAmount.nanoseconds(Int64(timeout / .nanoseconds(1)))
    let channel: any Channel
    do {
      channel = try await ClientBootstrap(group: eventLoop)
        .connectTimeout(connectTimeout)
        .channelInitializer { channel in
          channel.eventLoop.makeCompletedFuture {
            try channel.pipeline.syncOperations.addHandler(ReplyCollector(reply: reply))
          }
        }
        .connect(unixDomainSocketPath: path)
        .get()
    } catch {
      reply.fail(error)
      throw HAProxyError(.connectionFailed, "cannot connect to \(path): \(error)", command: line)
    }
    let timer = eventLoop.scheduleTask(in: connectTimeout) {
      reply.fail(HAProxyError(.timedOut, "no complete reply from \(path) within \(timeout)", command: line))
      channel.close(promise: nil)
    }
    var buffer = channel.allocator.buffer(capacity: line.utf8.count + 1)
    buffer.writeString(line)
    buffer.writeString("\n")
    // The master CLI answers only once the request side is closed; the stats socket does not mind.
    channel.writeAndFlush(buffer).whenSuccess { channel.close(mode: .output, promise: nil) }
    do {
      let text = try await withTaskCancellationHandler {
        try await reply.futureResult.get()
      } onCancel: {
        reply.fail(CancellationError())
        channel.close(promise: nil)
      }
      timer.cancel()
      return text
    } catch let error as HAProxyError {
      timer.cancel()
      throw error
    } catch is CancellationError {
      timer.cancel()
      throw CancellationError()
    } catch {
      timer.cancel()
      channel.close(promise: nil)
      throw HAProxyError(.connectionFailed, "connection to \(path) failed: \(error)", command: line)
    }
  }
}

/// Collects everything the peer sends and completes `reply` when it closes the connection.
private final class ReplyCollector: ChannelInboundHandler {
  typealias InboundIn = ByteBuffer

  private let reply: EventLoopPromise<String>
  private var received = ByteBuffer()

  init(reply: EventLoopPromise<String>) {
    self.reply = reply
  }

  func channelRead(context: ChannelHandlerContext, data: NIOAny) {
    var chunk = unwrapInboundIn(data)
    received.writeBuffer(&chunk)
    if received.readableBytes > UnixSocketClient.maximumReplySize {
      reply.fail(
        HAProxyError(.unexpectedReply, "reply larger than \(UnixSocketClient.maximumReplySize) bytes"))
      context.close(promise: nil)
    }
  }

  func channelInactive(context: ChannelHandlerContext) {
    reply.succeed(String(buffer: received))
    context.fireChannelInactive()
  }

  func errorCaught(context: ChannelHandlerContext, error: any Error) {
    reply.fail(error)
    context.close(promise: nil)
  }
}
