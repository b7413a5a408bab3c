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

/// A connection to HAProxy's stats socket in interactive mode (`prompt`), for several commands in a row:
/// each command is one line, and its reply is what HAProxy writes before the next `> ` prompt, which is
/// exactly the reply the same command gets on a connection of its own.
///
/// One command at a time. HAProxy closes an idle session after the socket's `stats timeout`.
final class UnixSocketSession: Sendable {
  let path: String
  private let channel: any Channel
  private let handler: NIOLoopBound<PromptReplyHandler>
  private let timeout: Duration

  private init(path: String, channel: any Channel, handler: NIOLoopBound<PromptReplyHandler>, timeout: Duration) {
    self.path = path
    self.channel = channel
    self.handler = handler
    self.timeout = timeout
  }

  /// Connects and switches the connection to interactive mode.
  ///
  /// - Throws: ``HAProxyError/Code/connectionFailed`` or ``HAProxyError/Code/timedOut``.
  static func open(socketPath path: String, timeout: Duration) async throws -> UnixSocketSession {
    let eventLoop = MultiThreadedEventLoopGroup.singleton.next()
    let connectTimeout = TimeAmount.nanoseconds(Int64(timeout / .nanoseconds(1)))
    let channel: any Channel
    let handler: NIOLoopBound<PromptReplyHandler>
    do {
      channel = try await ClientBootstrap(group: eventLoop)
        .connectTimeout(connectTimeout)
        .channelInitializer { channel in
          channel.eventLoop.makeCompletedFuture {
            try channel.pipeline.syncOperations.addHandler(PromptReplyHandler())
          }
        }
        .connect(unixDomainSocketPath: path)
        .get()
      handler = try await channel.pipeline.handler(type: PromptReplyHandler.self)
        .map { NIOLoopBound($0, eventLoop: eventLoop) }
        .get()
    } catch {
      throw HAProxyError(.connectionFailed, "cannot connect to \(path): \(error)")
    }
    let session = UnixSocketSession(path: path, channel: channel, handler: handler, timeout: timeout)
    do {
      _ = try await session.send("prompt")
    } catch {
      session.close()
      throw error
    }
    return session
  }

  /// Sends `line` and returns the reply, without the prompt that ends it.
  ///
  /// - Throws: ``HAProxyError/Code/connectionFailed`` if the connection is gone or fails,
  ///   ``HAProxyError/Code/timedOut`` if the prompt does not come within the timeout (the connection is
  ///   then closed).
  func send(_ line: String) async throws -> String {
    let eventLoop = channel.eventLoop
    let reply = eventLoop.makePromise(of: String.self)
    let (channel, handler, path, timeout) = (self.channel, self.handler, self.path, self.timeout)
    eventLoop.execute {
      handler.value.expect(reply, command: line)
      var buffer = channel.allocator.buffer(capacity: line.utf8.count + 1)
      buffer.writeString(line)
      buffer.writeString("\n")
      channel.writeAndFlush(buffer, promise: nil)
    }
    let timer = eventLoop.scheduleTask(in: .nanoseconds(Int64(timeout / .nanoseconds(1)))) {
      reply.fail(HAProxyError(.timedOut, "no complete reply from \(path) within \(timeout)", command: line))
      channel.close(promise: nil)
    }
    defer { timer.cancel() }
    do {
      return try await withTaskCancellationHandler {
        try await reply.futureResult.get()
      } onCancel: {
        reply.fail(CancellationError())
        channel.close(promise: nil)
      }
    } catch let error as HAProxyError {
      throw error
    } catch is CancellationError {
      throw CancellationError()
    } catch {
      channel.close(promise: nil)
      throw HAProxyError(.connectionFailed, "connection to \(path) failed: \(error)", command: line)
    }
  }

  /// Closes the connection.
  func close() {
    channel.close(promise: nil)
  }
}

/// Splits an interactive session's output at its prompts: a reply ends where a `> ` follows a newline and
/// nothing more has come.
private final class PromptReplyHandler: ChannelInboundHandler {
  typealias InboundIn = ByteBuffer

  private var received = ByteBuffer()
  private var pending: (promise: EventLoopPromise<String>, command: String)?
  private var isClosed = false

  func expect(_ promise: EventLoopPromise<String>, command: String) {
    if isClosed {
      promise.fail(HAProxyError(.connectionFailed, "HAProxy closed the Runtime API session", command: command))
    } else {
      pending = (promise, command)
    }
  }

  func channelRead(context: ChannelHandlerContext, data: NIOAny) {
    var chunk = unwrapInboundIn(data)
    received.writeBuffer(&chunk)
    if received.readableBytes > UnixSocketClient.maximumReplySize {
      pending?.promise.fail(
        HAProxyError(.unexpectedReply, "reply larger than \(UnixSocketClient.maximumReplySize) bytes"))
      pending = nil
      context.close(promise: nil)
      return
    }
    let bytes = received.readableBytesView
    guard bytes.count >= 2, bytes.last == UInt8(ascii: " "), bytes[bytes.endIndex - 2] == UInt8(ascii: ">"),
      bytes.count == 2 || bytes[bytes.endIndex - 3] == UInt8(ascii: "\n")
    else { return }
    let text = String(decoding: bytes.dropLast(2), as: UTF8.self)
    received.clear()
    pending?.promise.succeed(text)
    pending = nil
  }

  func channelInactive(context: ChannelHandlerContext) {
    isClosed = true
    if let pending {
      pending.promise.fail(
        HAProxyError(.connectionFailed, "HAProxy closed the Runtime API session", command: pending.command))
    }
    pending = nil
    context.fireChannelInactive()
  }

  func errorCaught(context: ChannelHandlerContext, error: any Error) {
    pending?.promise.fail(error)
    pending = nil
    context.close(promise: nil)
  }
}
