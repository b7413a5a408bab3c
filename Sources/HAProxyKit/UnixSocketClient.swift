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
    try await sendAll([line])[0]
  }

  /// Sends `lines` in one write and returns their replies in order: HAProxy reads them one after the
  /// other and ends each reply with a prompt, so a batch costs one round trip instead of one per line.
  /// Only for commands whose replies hold no line that starts with `> ` (the changes, not `show …`).
  ///
  /// - Throws: as ``send(_:)``; the timeout covers the whole batch.
  func sendAll(_ lines: [String]) async throws -> [String] {
    guard !lines.isEmpty else { return [] }
    let eventLoop = channel.eventLoop
    let replies = lines.map { _ in eventLoop.makePromise(of: String.self) }
    let (channel, handler, path, timeout) = (self.channel, self.handler, self.path, self.timeout)
    eventLoop.execute {
      var buffer = channel.allocator.buffer(capacity: lines.reduce(0) { $0 + $1.utf8.count + 1 })
      for (reply, line) in zip(replies, lines) {
        handler.value.expect(reply, command: line)
        buffer.writeString(line)
        buffer.writeString("\n")
      }
      channel.writeAndFlush(buffer, promise: nil)
    }
    let timer = eventLoop.scheduleTask(in: .nanoseconds(Int64(timeout / .nanoseconds(1)))) {
      for (reply, line) in zip(replies, lines) {
        reply.fail(HAProxyError(.timedOut, "no complete reply from \(path) within \(timeout)", command: line))
      }
      channel.close(promise: nil)
    }
    defer { timer.cancel() }
    do {
      return try await withTaskCancellationHandler {
        var results: [String] = []
        results.reserveCapacity(replies.count)
        for reply in replies { results.append(try await reply.futureResult.get()) }
        return results
      } onCancel: {
        for reply in replies { reply.fail(CancellationError()) }
        channel.close(promise: nil)
      }
    } catch let error as HAProxyError {
      throw error
    } catch is CancellationError {
      throw CancellationError()
    } catch {
      channel.close(promise: nil)
      throw HAProxyError(.connectionFailed, "connection to \(path) failed: \(error)", command: lines[0])
    }
  }

  /// Closes the connection.
  func close() {
    channel.close(promise: nil)
  }
}

/// Splits an interactive session's output at its prompts. With one command in flight, its reply ends
/// where a `> ` follows a newline and nothing more has come; with several (a batch), each reply ends at
/// the first `> ` that starts a line.
private final class PromptReplyHandler: ChannelInboundHandler {
  typealias InboundIn = ByteBuffer

  private var received = ByteBuffer()
  private var pending: [(promise: EventLoopPromise<String>, command: String)] = []
  private var isClosed = false

  func expect(_ promise: EventLoopPromise<String>, command: String) {
    if isClosed {
      promise.fail(HAProxyError(.connectionFailed, "HAProxy closed the Runtime API session", command: command))
    } else {
      pending.append((promise, command))
    }
  }

  func channelRead(context: ChannelHandlerContext, data: NIOAny) {
    var chunk = unwrapInboundIn(data)
    received.writeBuffer(&chunk)
    if received.readableBytes > UnixSocketClient.maximumReplySize {
      failAll(HAProxyError(.unexpectedReply, "reply larger than \(UnixSocketClient.maximumReplySize) bytes"))
      context.close(promise: nil)
      return
    }
    while !pending.isEmpty, let length = nextReplyLength() {
      let text = received.readString(length: length) ?? ""
      received.moveReaderIndex(forwardBy: 2)
      pending.removeFirst().promise.succeed(text)
    }
    if received.readableBytes == 0 { received.clear() }
  }

  /// The length of the first complete reply in `received`, without its prompt, or `nil`.
  private func nextReplyLength() -> Int? {
    let bytes = received.readableBytesView
    let start = bytes.startIndex
    func isPrompt(at index: Int) -> Bool {
      bytes[index] == UInt8(ascii: ">") && bytes[index + 1] == UInt8(ascii: " ")
        && (index == start || bytes[index - 1] == UInt8(ascii: "\n"))
    }
    guard bytes.count >= 2 else { return nil }
    if pending.count == 1 {
      return isPrompt(at: bytes.endIndex - 2) ? bytes.count - 2 : nil
    }
    var index = start
    while index + 1 < bytes.endIndex {
      if isPrompt(at: index) { return index - start }
      index += 1
    }
    return nil
  }

  private func failAll(_ error: any Error) {
    let failed = pending
    pending = []
    for entry in failed { entry.promise.fail(error) }
  }

  func channelInactive(context: ChannelHandlerContext) {
    isClosed = true
    let failed = pending
    pending = []
    for entry in failed {
      entry.promise.fail(
        HAProxyError(.connectionFailed, "HAProxy closed the Runtime API session", command: entry.command))
    }
    context.fireChannelInactive()
  }

  func errorCaught(context: ChannelHandlerContext, error: any Error) {
    failAll(error)
    context.close(promise: nil)
  }
}
