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

  @Test("a batch goes out in writes of many commands, and each reply is checked against its own command")
  func batchesKeepRepliesInOrder() async throws {
    try await HAProxyFixture.with { fixture in
      _ = try await fixture.start()
      // More servers than one write holds, a refused command in the middle, and commands that depend
      // on it: every reply is matched to its own command.
      let count = 150
      var changes: [RuntimeAPI.Change] = []
      for index in 0..<count {
        changes += [
          try .addServer(backend: "be", server: "b\(index)", address: "127.0.0.1", port: 10_000 + index),
          try .setServerState(backend: "be", server: "b\(index)", state: .ready),
        ]
        if index == 70 { changes.append(try .setWeight(backend: "be", server: "missing", weight: 1)) }
      }
      changes.append(try .addServer(backend: "be", server: "b3", address: "127.0.0.1", port: 9))
      changes.append(try .deleteServer(backend: "be", server: "b4"))
      let (results, connections) = try await fixture.runtime.withSession { session in
        let results = try await session.run(changes)
        let sessions = try await session.send("show sess")
        return (results, sessions.split(separator: "\n").filter { $0.contains("proto=unix_stream") }.count)
      }
      #expect(results.count == changes.count)
      #expect(connections == 1)
      let refused = zip(changes, results).compactMap { change, error in error.map { (change.command, $0.reply ?? "") } }
      #expect(refused.map(\.0) == ["set weight be/missing 1", "add server be/b3 127.0.0.1:9", "del server be/b4"])
      #expect(refused.first?.1.contains("No such server") == true, "\(refused)")
      let states = try await fixture.runtime.serversState(backend: "be")
      #expect(Set(states.map(\.server)).isSuperset(of: (0..<count).map { "b\($0)" }))
      #expect(states.first { $0.server == "b149" }?.port == 10_149)
      // Without a session, the same call sends one command per connection and checks replies alike.
      let single = try await fixture.runtime.run([
        try .setWeight(backend: "be", server: "b1", weight: 9),
        try .setWeight(backend: "be", server: "nope", weight: 1),
      ])
      #expect(single.map { $0 == nil } == [true, false])
      #expect(try await fixture.runtime.serversState(backend: "be").first { $0.server == "b1" }?.userWeight == 9)
    }
  }

  @Test("a server added with an id is changed and deleted by that id, and an id in use is refused")
  func serversNamedByID() async throws {
    try await HAProxyFixture.with { fixture in
      _ = try await fixture.start()
      let before = try await fixture.runtime.serversState(backend: "be")
      let id = (before.map(\.id).max() ?? 0) + 100
      let results = try await fixture.runtime.run([
        try .addServer(backend: "be", server: "byid", address: "127.0.0.1", port: 10_001, options: ["check"], id: id),
        try .enableHealth(backend: "be", server: "byid", id: id),
        try .setServerState(backend: "be", server: "byid", state: .ready, id: id),
        try .setWeight(backend: "be", server: "byid", weight: 7, id: id),
        try .setServerAddress(backend: "be", server: "byid", address: "127.0.0.2", port: 10_002, id: id),
        try .addServer(backend: "be", server: "other", address: "127.0.0.1", port: 10_003, id: id),
      ])
      #expect(results.prefix(5).allSatisfy { $0 == nil }, "\(results)")
      #expect(results.last??.reply?.contains("already used") == true, "\(results)")
      let added = try #require(try await fixture.runtime.serversState(backend: "be").first { $0.server == "byid" })
      #expect(added.id == id)
      #expect(added.userWeight == 7 && added.address == "127.0.0.2" && added.port == 10_002)
      #expect(added.isCheckEnabled && !added.isMaint)
      let removed = try await fixture.runtime.run([
        try .setServerState(backend: "be", server: "byid", state: .maint, id: id),
        try .deleteServer(backend: "be", server: "byid", id: id),
      ])
      #expect(removed.allSatisfy { $0 == nil }, "\(removed)")
      #expect(try await fixture.runtime.serversState(backend: "be").contains { $0.server == "byid" } == false)
    }
  }
}
