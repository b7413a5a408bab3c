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
/// Delete it once the transport exposes `ControlFrameRateLimitConfiguration`.
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

  func channelRead(context: ChannelHandlerContext, data: NIOAny) {
    var incoming = unwrapInboundIn(data)
    if var pending = self.pending {
      pending.writeBuffer(&incoming)
      incoming = pending
      self.pending = nil
    }

    var forward = context.channel.allocator.buffer(capacity: incoming.readableBytes)
    var acks: [ByteBuffer] = []
    while incoming.readableBytes >= Self.frameHeaderLength {
      let start = incoming.readerIndex
      guard
        let lengthHigh = incoming.getInteger(at: start, as: UInt8.self),
        let lengthLow = incoming.getInteger(at: start + 1, as: UInt16.self),
        let type = incoming.getInteger(at: start + 3, as: UInt8.self),
        let flags = incoming.getInteger(at: start + 4, as: UInt8.self)
      else { break }
      let payloadLength = Int(lengthHigh) << 16 | Int(lengthLow)
      let frameLength = Self.frameHeaderLength + payloadLength
      guard incoming.readableBytes >= frameLength else { break }

      if type == Self.pingType, flags & Self.ackFlag == 0, payloadLength == 8,
        let payload = incoming.getSlice(at: start + Self.frameHeaderLength, length: 8)
      {
        acks.append(Self.pingAck(payload: payload, allocator: context.channel.allocator))
        incoming.moveReaderIndex(forwardBy: frameLength)
      } else if var frame = incoming.readSlice(length: frameLength) {
        forward.writeBuffer(&frame)
      }
    }
    if incoming.readableBytes > 0 {
      self.pending = incoming.slice()
    }

    if !acks.isEmpty {
      self.answered += acks.count
      for ack in acks {
        context.write(wrapOutboundOut(ack), promise: nil)
      }
      context.flush()
    }
    if forward.readableBytes > 0 {
      context.fireChannelRead(wrapInboundOut(forward))
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
