import NIOCore
import NIOEmbedded
import NIOHTTP2
import Testing

@testable import EtcdClient

@Suite("PingAckHandler")
struct PingAckHandlerTests {
  private func frame(type: UInt8, flags: UInt8, stream: UInt32 = 0, payload: [UInt8]) -> ByteBuffer {
    var buffer = ByteBuffer()
    buffer.writeInteger(UInt8(payload.count >> 16))
    buffer.writeInteger(UInt16(payload.count & 0xffff))
    buffer.writeInteger(type)
    buffer.writeInteger(flags)
    buffer.writeInteger(stream)
    buffer.writeBytes(payload)
    return buffer
  }

  @Test("answers PINGs itself and forwards every other frame unchanged, across split reads")
  func answersPingsAndForwardsTheRest() throws {
    let channel = EmbeddedChannel(handler: PingAckHandler())
    let ping = frame(type: 6, flags: 0, payload: [2, 4, 16, 16, 9, 14, 7, 7])
    let pingAck = frame(type: 6, flags: 1, payload: [1, 2, 3, 4, 5, 6, 7, 8])
    let data = frame(type: 0, flags: 1, stream: 1, payload: Array(repeating: 0x41, count: 300))
    let settings = frame(type: 4, flags: 0, payload: [])

    var all = ByteBuffer()
    for var part in [settings, ping, data, pingAck, ping] { all.writeBuffer(&part) }
    // Deliver the bytes in awkward pieces so frames straddle reads.
    var offset = 0
    for size in [5, 9, 20, 1, 400] where offset < all.readableBytes {
      let length = min(size, all.readableBytes - offset)
      try channel.writeInbound(all.getSlice(at: offset, length: length)!)
      offset += length
    }
    if offset < all.readableBytes {
      try channel.writeInbound(all.getSlice(at: offset, length: all.readableBytes - offset)!)
    }

    var forwarded = ByteBuffer()
    while var part = try channel.readInbound(as: ByteBuffer.self) { forwarded.writeBuffer(&part) }
    var expected = ByteBuffer()
    for var part in [settings, data, pingAck] { expected.writeBuffer(&part) }
    #expect(forwarded == expected)

    var acks: [ByteBuffer] = []
    while let written = try channel.readOutbound(as: ByteBuffer.self) { acks.append(written) }
    let expectedAck = frame(type: 6, flags: 1, payload: [2, 4, 16, 16, 9, 14, 7, 7])
    #expect(acks == [expectedAck, expectedAck])
    _ = try channel.finish()
  }
}
