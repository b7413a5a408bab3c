import NIOCore
import NIOHTTP2

/// Answers HTTP/2 PINGs from the server before the HTTP/2 state machine sees them.
///
/// Why: etcd's grpc-go server sends a bandwidth-estimation PING after most requests. The HTTP/2
/// handler under grpc-swift-nio-transport counts inbound PINGs as control frames and, past 200 in
/// 30 seconds, treats the peer as flooding and closes the connection with ENHANCE_YOUR_CALM. Every
/// RPC on the connection then fails (see `shared/notes/grpc-ping-flood.md`). The transport does
/// not let that limit be configured, so this handler sits between the socket (or TLS) and the
/// HTTP/2 handler, acknowledges each non-ACK PING itself, and passes every other frame on
/// unchanged. The peer still gets its ACKs, as RFC 9113 §6.7 requires.
///
/// Delete that part once the transport exposes `ControlFrameRateLimitConfiguration`.
///
/// It also sends the client's own keepalive PINGs (``ping(on:timeout:)``) and takes their ACKs,
/// which tell a live member from a hung one. The transport's keepalive cannot: its timer is
/// cancelled when a connection's last call ends and is not started again when the next call opens,
/// so a connection that once had no calls (every connection, between unary calls) never pings again.
final class PingAckHandler: ChannelInboundHandler, RemovableChannelHandler {
  typealias InboundIn = ByteBuffer
  typealias InboundOut = ByteBuffer
  typealias OutboundOut = ByteBuffer

  private static let frameHeaderLength = 9
  private static let pingType: UInt8 = 0x6
  private static let ackFlag: UInt8 = 0x1

  /// Bytes of a frame that has not fully arrived yet.
  private var pending: ByteBuffer?
  /// Number of PINGs answered here, for tests and debugging.
  private(set) var answered = 0
  /// Our own PINGs still waiting for their ACK, by payload.
  private var outstanding: [UInt64: EventLoopPromise<Void>] = [:]
  private var context: ChannelHandlerContext?

  func handlerAdded(context: ChannelHandlerContext) {
    self.context = context
  }

  func handlerRemoved(context: ChannelHandlerContext) {
    self.context = nil
    for promise in outstanding.values { promise.fail(ChannelError.ioOnClosedChannel) }
    outstanding = [:]
  }

  func channelInactive(context: ChannelHandlerContext) {
    for promise in outstanding.values { promise.fail(ChannelError.ioOnClosedChannel) }
    outstanding = [:]
    context.fireChannelInactive()
  }

  private struct PingTimeout: Error {}

  /// Sends a PING; the future succeeds on its ACK and fails after `timeout` without one.
  private func sendPing(timeout: TimeAmount, eventLoop: any EventLoop) -> EventLoopFuture<Void> {
    guard let context else { return eventLoop.makeFailedFuture(ChannelError.ioOnClosedChannel) }
    var payload = UInt64.random(in: .min ... .max)
    while outstanding[payload] != nil { payload = UInt64.random(in: .min ... .max) }
    let promise = eventLoop.makePromise(of: Void.self)
    outstanding[payload] = promise
    var frame = context.channel.allocator.buffer(capacity: Self.frameHeaderLength + 8)
    frame.writeInteger(UInt8(0))
    frame.writeInteger(UInt16(8))
    frame.writeInteger(Self.pingType)
    frame.writeInteger(UInt8(0))
    frame.writeInteger(UInt32(0))
    frame.writeInteger(payload)
    context.writeAndFlush(wrapOutboundOut(frame), promise: nil)
    // Runs on this handler's loop; the timer is cancelled when the PING is answered or the handler
    // fails its PINGs on removal, so the handler is not kept for longer than the timeout.
    let key = payload
    let handler = NIOLoopBound(self, eventLoop: eventLoop)
    let timer = eventLoop.scheduleTask(in: timeout) {
      handler.value.outstanding.removeValue(forKey: key)?.fail(PingTimeout())
    }
    promise.futureResult.whenComplete { _ in timer.cancel() }
    return promise.futureResult
  }

  func channelRead(context: ChannelHandlerContext, data: NIOAny) {
    var incoming = unwrapInboundIn(data)
    if var pending = self.pending {
      pending.writeBuffer(&incoming)
      incoming = pending
      self.pending = nil
    }

    // Frames that pass go on as slices of what was read, not copies: one slice for each run of frames
    // between two that are taken out, which is a single slice when a read holds no PING. The reader index
    // stays at the start of the current run; `cursor` walks the frames.
    var runs = ForwardedRuns()
    var cursor = incoming.readerIndex
    var acks = 0
    while incoming.writerIndex - cursor >= Self.frameHeaderLength {
      let start = cursor
      guard
        let lengthHigh = incoming.getInteger(at: start, as: UInt8.self),
        let lengthLow = incoming.getInteger(at: start + 1, as: UInt16.self),
        let type = incoming.getInteger(at: start + 3, as: UInt8.self),
        let flags = incoming.getInteger(at: start + 4, as: UInt8.self)
      else { break }
      let payloadLength = Int(lengthHigh) << 16 | Int(lengthLow)
      let frameLength = Self.frameHeaderLength + payloadLength
      guard incoming.writerIndex - start >= frameLength else { break }
      cursor = start + frameLength

      if type == Self.pingType, flags & Self.ackFlag == 0, payloadLength == 8,
        let payload = incoming.getSlice(at: start + Self.frameHeaderLength, length: 8)
      {
        let ack = Self.pingAck(payload: payload, allocator: context.channel.allocator)
        context.write(wrapOutboundOut(ack), promise: nil)
        acks += 1
        runs.append(incoming.readSlice(length: start - incoming.readerIndex))
        incoming.moveReaderIndex(to: cursor)
      } else if type == Self.pingType, flags & Self.ackFlag != 0, payloadLength == 8,
        let payload = incoming.getInteger(at: start + Self.frameHeaderLength, as: UInt64.self),
        let promise = outstanding.removeValue(forKey: payload)
      {
        // The ACK of our own keepalive PING: the HTTP/2 handler never sent it, so it never sees it.
        runs.append(incoming.readSlice(length: start - incoming.readerIndex))
        incoming.moveReaderIndex(to: cursor)
        promise.succeed()
      }
    }
    runs.append(incoming.readSlice(length: cursor - incoming.readerIndex))
    if incoming.readableBytes > 0 {
      self.pending = incoming.slice()
    }

    if acks > 0 {
      self.answered += acks
      context.flush()
    }
    if let first = runs.first {
      context.fireChannelRead(wrapInboundOut(first))
      for run in runs.rest {
        context.fireChannelRead(wrapInboundOut(run))
      }
    }
  }

  /// The non-empty runs of frames to pass on; no array unless a read holds more than one.
  private struct ForwardedRuns {
    var first: ByteBuffer?
    var rest: [ByteBuffer] = []

    mutating func append(_ run: ByteBuffer?) {
      guard let run, run.readableBytes > 0 else { return }
      if first == nil { first = run } else { rest.append(run) }
    }
  }

  private static func pingAck(payload: ByteBuffer, allocator: ByteBufferAllocator) -> ByteBuffer {
    var frame = allocator.buffer(capacity: frameHeaderLength + 8)
    frame.writeInteger(UInt8(0))
    frame.writeInteger(UInt16(8))
    frame.writeInteger(pingType)
    frame.writeInteger(ackFlag)
    frame.writeInteger(UInt32(0))
    var payload = payload
    frame.writeBuffer(&payload)
    return frame
  }

  /// Sends a keepalive PING on `channel`'s connection; succeeds on its ACK, fails after `timeout`
  /// without one or when the connection closes.
  static func ping(on channel: any Channel, timeout: TimeAmount) -> EventLoopFuture<Void> {
    channel.eventLoop.flatSubmit {
      do {
        let handler = try channel.pipeline.syncOperations.handler(type: PingAckHandler.self)
        return handler.sendPing(timeout: timeout, eventLoop: channel.eventLoop)
      } catch {
        return channel.eventLoop.makeFailedFuture(error)
      }
    }
  }

  /// Installs the handler right before the HTTP/2 handler of a freshly created gRPC connection.
  static func install(on channel: any Channel) -> EventLoopFuture<Void> {
    @Sendable func add() throws {
      let operations = channel.pipeline.syncOperations
      let http2 = try operations.handler(type: NIOHTTP2Handler.self)
      try operations.addHandler(PingAckHandler(), position: .before(http2))
    }
    if channel.eventLoop.inEventLoop {
      return channel.eventLoop.makeCompletedFuture { try add() }
    }
    return channel.eventLoop.submit { try add() }
  }
}
