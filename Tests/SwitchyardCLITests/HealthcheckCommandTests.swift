import ArgumentParser
import Foundation
import NIOCore
import NIOPosix
import SwitchyardTestSupport
import Testing

@testable import SwitchyardCLI

@Suite("switchyard healthcheck")
struct HealthcheckCommandTests {
  @Test("http:// URLs, https:// ones with a CA, and a sensible timeout are accepted; errors name the problem")
  func validation() throws {
    _ = try HealthcheckCommand.parse(["http://127.0.0.1:2379/health"])
    _ = try HealthcheckCommand.parse(["https://127.0.0.1:9101/readyz", "--cacert", "/tmp/ca.pem"])
    let https = #expect(throws: (any Error).self) { try HealthcheckCommand.parse(["https://127.0.0.1:9101/readyz"]) }
    #expect(HealthcheckCommand.message(for: https!).contains("needs --cacert"))
    let ftp = #expect(throws: (any Error).self) { try HealthcheckCommand.parse(["ftp://127.0.0.1:21/"]) }
    #expect(HealthcheckCommand.message(for: ftp!).contains("not an http:// or https:// URL"))
    let timeout = #expect(throws: (any Error).self) {
      try HealthcheckCommand.parse(["http://127.0.0.1:1/", "--timeout", "0"])
    }
    #expect(HealthcheckCommand.message(for: timeout!).contains("--timeout"))
  }

  @Test("A refused connection is unhealthy: exit code 1")
  func refused() async throws {
    let command = try HealthcheckCommand.parse([
      "http://127.0.0.1:\(try FreePort.allocate())/healthz", "--timeout", "1",
    ])
    let error = await #expect(throws: ExitCode.self) { try await command.run() }
    #expect(error == ExitCode(1))
  }

  @Test("A 2xx answer is healthy; 503 and 404 are not")
  func statuses() async throws {
    for (status, healthy) in [(200, true), (204, true), (503, false), (404, false)] {
      try await CannedHTTPServer.with(status: status) { url in
        let command = try HealthcheckCommand.parse([url, "--timeout", "2"])
        if healthy {
          try await command.run()
        } else {
          let error = await #expect(throws: ExitCode.self, "status \(status)") { try await command.run() }
          #expect(error == ExitCode(1))
        }
      }
    }
  }

  @Test("A server that accepts but never answers is unhealthy within --timeout")
  func silent() async throws {
    try await CannedHTTPServer.with(status: nil) { url in
      let command = try HealthcheckCommand.parse([url, "--timeout", "0.5"])
      let started = ContinuousClock.now
      let error = await #expect(throws: ExitCode.self) { try await command.run() }
      #expect(error == ExitCode(1))
      #expect(ContinuousClock.now - started < .seconds(5))
    }
  }
}

/// Answers every connection with one fixed HTTP status (or never, for nil) and closes it.
private enum CannedHTTPServer {
  static func with(status: Int?, _ body: (String) async throws -> Void) async throws {
    let channel = try await ServerBootstrap(group: MultiThreadedEventLoopGroup.singleton)
      .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
      .childChannelInitializer { child in
        guard let status else { return child.eventLoop.makeSucceededVoidFuture() }
        return child.eventLoop.makeCompletedFuture {
          try child.pipeline.syncOperations.addHandler(Responder(status: status))
        }
      }
      .bind(host: "127.0.0.1", port: 0)
      .get()
    let port = channel.localAddress?.port ?? 0
    do {
      try await body("http://127.0.0.1:\(port)/healthz")
    } catch {
      try? await channel.close()
      throw error
    }
    try? await channel.close()
  }
}

/// Answers the first bytes of a request with a canned response and closes the connection.
private final class Responder: ChannelInboundHandler, Sendable {
  typealias InboundIn = ByteBuffer
  typealias OutboundOut = ByteBuffer
  let status: Int

  init(status: Int) { self.status = status }

  func channelRead(context: ChannelHandlerContext, data: NIOAny) {
    let response = "HTTP/1.1 \(status) Canned\r\nContent-Length: 3\r\nConnection: close\r\n\r\nabc"
    context.writeAndFlush(wrapOutboundOut(ByteBuffer(string: response))).whenComplete { _ in
      context.close(promise: nil)
    }
  }
}
