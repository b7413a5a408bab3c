import Foundation
import NIOCore
import NIOPosix
import SwitchyardDashboard
import SwitchyardTestSupport
import Synchronization

/// A client of the dashboard's event stream (`GET /api/events`) for tests: one HTTP/1.1 connection, its
/// chunked body taken apart into server-sent events, each `cluster` event decoded and kept with the time
/// it arrived.
final class EventStreamClient: Sendable {
  /// One `cluster` event.
  struct Snapshot: Sendable {
    var view: ClusterView
    var arrived: ContinuousClock.Instant
    var bytes: Int
  }

  private struct State {
    var status: Int?
    var snapshots: [Snapshot] = []
    var comments = 0
    var ended = false
    var failure: String?
  }

  private let state = Mutex(State())
  private let task = Mutex<Task<Void, Never>?>(nil)

  /// Connects to `127.0.0.1:port` and reads `path` until ``close()`` or the server ends the stream.
  init(port: Int, path: String = "/api/events", headers: [String: String] = [:]) {
    let task = Task {
      do {
        try await self.read(port: port, path: path, headers: headers)
      } catch {
        self.state.withLock { $0.failure = "\(error)" }
      }
      self.state.withLock { $0.ended = true }
    }
    self.task.withLock { $0 = task }
  }

  /// The status of the answer, once its head arrived.
  var status: Int? { state.withLock { $0.status } }
  /// Every snapshot so far.
  var snapshots: [Snapshot] { state.withLock { $0.snapshots } }
  /// Whether the stream ended (the server closed it, or it failed).
  var ended: Bool { state.withLock { $0.ended } }
  /// Why the stream failed, if it did.
  var failure: String? { state.withLock { $0.failure } }

  /// Waits for the first snapshot at or after `since` for which `condition` holds.
  func wait(
    _ what: String, since: ContinuousClock.Instant = .now, timeout: Duration = .seconds(10),
    _ condition: (ClusterView) -> Bool
  ) async throws -> Snapshot {
    let deadline = ContinuousClock.now.advanced(by: timeout)
    while ContinuousClock.now < deadline {
      if let match = snapshots.first(where: { $0.arrived >= since && condition($0.view) }) { return match }
      if ended { throw TestSupportError("the event stream ended before \(what): \(failure ?? "closed")") }
      try await Task.sleep(for: .milliseconds(20))
    }
    let last = snapshots.last.map { "\($0.view.nodes.map { "\($0.id)=\($0.status)" })" } ?? "none"
    throw TestSupportError("no snapshot with \(what) within \(timeout); the last: \(last)")
  }

  /// Closes the connection.
  func close() {
    task.withLock { $0 }?.cancel()
  }

  private func read(port: Int, path: String, headers: [String: String]) async throws {
    let channel = try await ClientBootstrap(group: MultiThreadedEventLoopGroup.singleton)
      .connectTimeout(.seconds(5))
      .connect(host: "127.0.0.1", port: port) { channel in
        channel.eventLoop.makeCompletedFuture {
          try NIOAsyncChannel<ByteBuffer, ByteBuffer>(wrappingChannelSynchronously: channel)
        }
      }
    let extra = headers.sorted { $0.key < $1.key }.map { "\($0.key): \($0.value)\r\n" }.joined()
    try await channel.executeThenClose { inbound, outbound in
      try await outbound.write(
        ByteBuffer(
          string: "GET \(path) HTTP/1.1\r\nHost: 127.0.0.1:\(port)\r\nAccept: text/event-stream\r\n\(extra)\r\n"))
      var parser = Parser()
      for try await chunk in inbound {
        parser.append(chunk)
        if let status = parser.status { state.withLock { $0.status = status } }
        for event in parser.events() {
          state.withLock { state in
            if event.hasPrefix(":") {
              state.comments += 1
            } else if event.hasPrefix("event: cluster\ndata: ") {
              let json = Data(event.dropFirst("event: cluster\ndata: ".count).utf8)
              if let view = try? JSONDecoder().decode(ClusterView.self, from: json) {
                state.snapshots.append(Snapshot(view: view, arrived: .now, bytes: json.count))
              } else {
                state.failure = "an event that is not a cluster view: \(event.prefix(200))"
              }
            }
          }
        }
        if Task.isCancelled { return }
      }
    }
  }

  /// Takes an HTTP/1.1 answer with a chunked body apart into its status and its events.
  private struct Parser {
    var buffer: [UInt8] = []
    var status: Int?
    var headDone = false
    var body: [UInt8] = []

    mutating func append(_ chunk: ByteBuffer) {
      buffer += chunk.readableBytesView
      if !headDone, let end = Self.find([13, 10, 13, 10], in: buffer) {
        let head = String(decoding: buffer[..<end], as: UTF8.self)
        status = head.split(separator: " ").dropFirst().first.flatMap { Int($0) }
        buffer.removeFirst(end + 4)
        headDone = true
      }
      guard headDone else { return }
      // Chunks: a hexadecimal size line, that many bytes, CRLF.
      while let lineEnd = Self.find([13, 10], in: buffer) {
        guard let size = Int(String(decoding: buffer[..<lineEnd], as: UTF8.self), radix: 16) else { return }
        guard buffer.count >= lineEnd + 2 + size + 2 else { return }
        body += buffer[(lineEnd + 2)..<(lineEnd + 2 + size)]
        buffer.removeFirst(lineEnd + 2 + size + 2)
      }
    }

    /// The whole events received since the last call.
    mutating func events() -> [String] {
      var events: [String] = []
      while let end = Self.find([10, 10], in: body) {
        events.append(String(decoding: body[..<end], as: UTF8.self))
        body.removeFirst(end + 2)
      }
      return events
    }

    static func find(_ needle: [UInt8], in haystack: [UInt8]) -> Int? {
      guard haystack.count >= needle.count else { return nil }
      for index in 0...(haystack.count - needle.count) where haystack[index] == needle[0] {
        if Array(haystack[index..<(index + needle.count)]) == needle { return index }
      }
      return nil
    }
  }
}
