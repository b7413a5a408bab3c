import NIOCore
import NIOPosix
import SwitchyardHTTP
import Synchronization
import Testing

@Suite("One-shot HTTP GET")
struct HTTPCheckTests {
  @Test(
    "answers are read as status and body, identity, close-delimited or chunked; anything but HTTP/1.x fails",
    arguments: [
      ("HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nok\n", 200, "ok\n"),
      ("HTTP/1.0 503 Service Unavailable\r\n\r\n", 503, ""),
      ("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n", 200, "abcde"),
      ("HTTP/1.1 302 Found\r\nLocation: http://127.0.0.1:1/\r\nContent-Length: 0\r\n\r\n", 302, ""),
      ("HTTP/2 200\r\n\r\n", nil, nil), ("garbage", nil, nil),
    ] as [(String, Int?, String?)]
  )
  func answers(text: String, status: Int?, body: String?) async throws {
    try await RawHTTPServer.with(answer: text) { server in
      let answer = try? await HTTPCheck.get("http://127.0.0.1:\(server.port)/healthz")
      #expect(answer?.status == status)
      #expect(answer?.body == body)
    }
  }

  @Test("each GET asks for its own connection, names its host and path, and IPv6 hosts go in brackets")
  func request() async throws {
    try await RawHTTPServer.with(answer: "HTTP/1.1 204 No Content\r\n\r\n") { server in
      let readiness = try await HTTPCheck.get(host: "127.0.0.1", port: server.port, path: "/readyz")
      let state = try await HTTPCheck.get(host: "127.0.0.1", port: server.port, path: "state")
      #expect(readiness.status == 204)
      #expect(state.status == 204)
      let requests = server.requests.map { $0.lowercased() }
      #expect(requests.count == 2)
      #expect(requests.first?.hasPrefix("get /readyz http/1.1\r\n") == true)
      #expect(requests.last?.hasPrefix("get /state http/1.1\r\n") == true)
      #expect(requests.allSatisfy { $0.contains("\r\nconnection: close\r\n") })
      #expect(requests.allSatisfy { $0.contains("\r\nhost: 127.0.0.1:\(server.port)\r\n") })
    }
  }

  @Test("a server that accepts but never answers fails the GET within its timeout")
  func silent() async throws {
    try await RawHTTPServer.with(answer: nil) { server in
      let started = ContinuousClock.now
      await #expect(throws: HTTPCheck.Failure.self) {
        try await HTTPCheck.get("http://127.0.0.1:\(server.port)/", timeout: .milliseconds(300))
      }
      #expect(ContinuousClock.now - started < .seconds(3))
    }
  }

  @Test("a refused connection fails the GET at once with that error, not by retrying until the timeout")
  func refused() async throws {
    // A port that was just free: nothing listens on it.
    var port = 0
    try await RawHTTPServer.with(answer: nil) { port = $0.port }
    for _ in 0..<3 {
      let started = ContinuousClock.now
      // Not retried: well before the connect timeout (10 s) that ends a retried one.
      defer { #expect(ContinuousClock.now - started < .seconds(5)) }
      do {
        _ = try await HTTPCheck.get("http://127.0.0.1:\(port)/", timeout: .seconds(20))
        Issue.record("a GET to a closed port succeeded")
      } catch let failure as HTTPCheck.Failure {
        Issue.record("a refused connection was retried until the timeout: \(failure)")
      } catch {
        #expect("\(error)".lowercased().contains("refused"), "\(error)")
      }
    }
  }

  @Test("only http:// URLs")
  func scheme() async {
    await #expect(throws: HTTPCheck.Failure.self) { try await HTTPCheck.get("https://127.0.0.1:1/") }
  }
}

/// A loopback server that reads each request's head, answers it with fixed bytes (or never) and closes.
private final class RawHTTPServer: Sendable {
  let port: Int
  private let received = Mutex<[String]>([])

  /// Every request head received so far.
  var requests: [String] { received.withLock { $0 } }

  private init(port: Int) { self.port = port }

  static func with(answer: String?, _ body: (RawHTTPServer) async throws -> Void) async throws {
    let listener = try await ServerBootstrap(group: MultiThreadedEventLoopGroup.singleton)
      .bind(host: "127.0.0.1", port: 0) { channel in
        channel.eventLoop.makeCompletedFuture {
          try NIOAsyncChannel<ByteBuffer, ByteBuffer>(wrappingChannelSynchronously: channel)
        }
      }
    let server = RawHTTPServer(port: listener.channel.localAddress?.port ?? 0)
    try await withThrowingTaskGroup(of: Void.self) { group in
      group.addTask {
        try await listener.executeThenClose { connections in
          try await withThrowingDiscardingTaskGroup { serving in
            for try await connection in connections {
              serving.addTask { try? await server.serve(connection, answer: answer) }
            }
          }
        }
      }
      defer { group.cancelAll() }
      try await body(server)
    }
  }

  private func serve(_ connection: NIOAsyncChannel<ByteBuffer, ByteBuffer>, answer: String?) async throws {
    try await connection.executeThenClose { inbound, outbound in
      var head = ""
      for try await chunk in inbound {
        head += String(buffer: chunk)
        guard head.contains("\r\n\r\n") else { continue }
        received.withLock { $0.append(head) }
        guard let answer else {
          try await Task.sleep(for: .seconds(30))
          return
        }
        try await outbound.write(ByteBuffer(string: answer))
        return
      }
    }
  }
}
