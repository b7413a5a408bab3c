import Foundation
import NIOCore
import NIOPosix
import NIOSSL
import SwitchyardHTTP
import SwitchyardPKI
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

  @Test("only http:// URLs, and https:// ones with a CA to check the server with")
  func scheme() async {
    await #expect(throws: HTTPCheck.Failure.self) { try await HTTPCheck.get("https://127.0.0.1:1/") }
    await #expect(throws: HTTPCheck.Failure.self) { try await HTTPCheck.get("ftp://127.0.0.1:1/") }
    await #expect(throws: HTTPCheck.Failure.self) {
      try await HTTPCheck.get("https://127.0.0.1:1/", caCertificate: "/nonexistent/ca.pem")
    }
  }

  @Test("https: the server's certificate is checked against the CA given; each GET has its own connection")
  func https() async throws {
    let directory = FileManager.default.temporaryDirectory.appendingPathComponent("httpcheck-\(UUID())").path
    defer { try? FileManager.default.removeItem(atPath: directory) }
    let trusted = try CertificateAuthority.create(in: directory + "/trusted", commonName: "trusted", days: 1)
    let other = try CertificateAuthority.create(in: directory + "/other", commonName: "other", days: 1)
    let pair = try trusted.issue(
      name: "server", commonName: "server", usage: .server(ipAddresses: ["127.0.0.1"], dnsNames: ["localhost"]),
      days: 1)
    let tls = TLSConfiguration.makeServerConfiguration(
      certificateChain: try NIOSSLCertificate.fromPEMFile(pair.certificate).map { .certificate($0) },
      privateKey: .privateKey(try NIOSSLPrivateKey(file: pair.key, format: .pem)))
    try await RawHTTPServer.with(answer: "HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nok\n", tls: tls) { server in
      for _ in 0..<2 {
        let answer = try await HTTPCheck.get(
          "https://127.0.0.1:\(server.port)/readyz", caCertificate: trusted.certificate)
        #expect(answer.status == 200 && answer.body == "ok\n")
      }
      let shortForm = try await HTTPCheck.get(
        host: "127.0.0.1", port: server.port, path: "state", caCertificate: trusted.certificate)
      #expect(shortForm.status == 200)
      #expect(server.requests.count == 3)
      #expect(server.requests.allSatisfy { $0.lowercased().contains("\r\nconnection: close\r\n") })
      // Another CA's certificate, or plain http to a TLS port: no answer.
      await #expect(throws: (any Error).self) {
        try await HTTPCheck.get("https://127.0.0.1:\(server.port)/readyz", caCertificate: other.certificate)
      }
      await #expect(throws: (any Error).self) { try await HTTPCheck.get("http://127.0.0.1:\(server.port)/readyz") }
      #expect(server.requests.count == 3)
    }
  }
}

/// A loopback server that reads each request's head, answers it with fixed bytes (or never) and closes.
private final class RawHTTPServer: Sendable {
  let port: Int
  private let received = Mutex<[String]>([])

  /// Every request head received so far.
  var requests: [String] { received.withLock { $0 } }

  private init(port: Int) { self.port = port }

  /// Serves `answer` to each request (over TLS with `tls`) while `body` runs.
  static func with(
    answer: String?, tls: TLSConfiguration? = nil, _ body: (RawHTTPServer) async throws -> Void
  ) async throws {
    let context = try tls.map { try NIOSSLContext(configuration: $0) }
    let listener = try await ServerBootstrap(group: MultiThreadedEventLoopGroup.singleton)
      .bind(host: "127.0.0.1", port: 0) { channel in
        channel.eventLoop.makeCompletedFuture {
          if let context { try channel.pipeline.syncOperations.addHandler(NIOSSLServerHandler(context: context)) }
          return try NIOAsyncChannel<ByteBuffer, ByteBuffer>(wrappingChannelSynchronously: channel)
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
