import Foundation
import HAProxyKit
import SwitchyardTestSupport
import Testing

/// Several Runtime API commands on one connection in HAProxy's interactive mode.
@Suite(.serialized) struct RuntimeSessionTests {
  @Test("a session's replies equal the replies of one connection per command, on one connection")
  func sessionRepliesMatchSingleCommands() async throws {
    try await HAProxyFixture.with { fixture in
      _ = try await fixture.start()
      let api = fixture.runtime
      let statements = ["show servers state be", "get weight be/nonexistent", "show servers conn be", "help"]
      var single: [String] = []
      for statement in statements { single.append(try await api.send(statement)) }
      let (inSession, connections) = try await api.withSession { session in
        var replies: [String] = []
        for statement in statements { replies.append(try await session.send(statement)) }
        // The typed helpers work on the session too, and a refused command leaves it usable.
        try await session.addServer(
          backend: "be", server: "s", address: "127.0.0.1", port: 9, options: ["weight", "5"])
        await #expect(throws: HAProxyError.self) {
          try await session.addServer(backend: "be", server: "s", address: "127.0.0.1", port: 9)
        }
        try await session.setWeight(backend: "be", server: "s", weight: 7)
        #expect(try await session.serversState(backend: "be").first { $0.server == "s" }?.userWeight == 7)
        // `show sess` lists the CLI connections: ours is one of them, and only one.
        let sessions = try await session.send("show sess")
        return (replies, sessions.split(separator: "\n").filter { $0.contains("proto=unix_stream") }.count)
      }
      #expect(inSession == single)
      #expect(connections == 1)
    }
  }

  @Test("a session whose connection HAProxy closed fails every later command with connectionFailed")
  func closedSessionFails() async throws {
    try await HAProxyFixture.with { fixture in
      _ = try await fixture.start()
      try await fixture.runtime.withSession { session in
        _ = try await session.send("show info")
        _ = try? await session.send("quit")
        do {
          _ = try await session.send("show info")
          Issue.record("a command on a closed session succeeded")
        } catch let error as HAProxyError {
          #expect(error.code == .connectionFailed || error.code == .timedOut, "\(error)")
        }
      }
    }
  }
}
