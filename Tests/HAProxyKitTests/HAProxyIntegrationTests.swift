import Foundation
import SwitchyardTestSupport
import Testing

@testable import HAProxyKit

#if canImport(Glibc)
  import Glibc
#endif

/// Against a real HAProxy 2.6 on loopback; each test has its own state directory and ports, and kills
/// whatever it started by PID however it ends.
@Suite("HAProxy process, Runtime API and master CLI", .serialized)
struct HAProxyIntegrationTests {
  @Test func dynamicServerLifecycle() async throws {
    try await HAProxyFixture.with { fixture in
      let process = try await fixture.start()
      #expect(process.wasStartedHere && process.isRunning)
      #expect(try mode(of: fixture.state.path) == 0o700)
      #expect(try mode(of: fixture.state.masterSocketPath) == 0o600)
      #expect(try mode(of: fixture.state.adminSocketPath) == 0o600)

      try await HTTPTestServer.with(name: "a") { backend in
        let api = fixture.runtime
        try await api.addServer(
          backend: "be", server: "a", address: "127.0.0.1", port: backend.port,
          options: ["weight", "100", "check", "inter", "200ms", "rise", "1", "fall", "3"])
        var state = try #require(try await api.serversState(backend: "be").first { $0.server == "a" })
        #expect(state.isMaint && state.adminFlags.contains(.forcedMaint) && state.userWeight == 100)

        try await api.enableHealth(backend: "be", server: "a")
        try await api.setServerState(backend: "be", server: "a", state: .ready)
        state = try #require(try await api.serversState(backend: "be").first { $0.server == "a" })
        #expect(!state.isMaint && !state.isDrain && state.isCheckEnabled)
        #expect(state.address == "127.0.0.1" && state.port == backend.port)

        let response = try await HTTPLoadClient.get(fixture.frontendURL)
        #expect(response.status == 200 && response.body == "Hello from a\n")
        let row = try #require(try await api.stats().first { $0.proxyName == "be" && $0.serviceName == "a" })
        #expect((row.totalSessions ?? 0) >= 1)

        try await api.setServerState(backend: "be", server: "a", state: .drain)
        state = try #require(try await api.serversState(backend: "be").first { $0.server == "a" })
        #expect(state.isDrain && state.adminFlags.contains(.forcedDrain))

        // A server that is not in maintenance cannot be deleted; the error carries HAProxy's reply.
        let refused = await #expect(throws: HAProxyError.self) {
          try await api.deleteServer(backend: "be", server: "a")
        }
        #expect(refused?.code == .unexpectedReply)
        #expect(refused?.reply?.contains("Only servers in maintenance mode can be deleted.") == true)

        try await api.setServerState(backend: "be", server: "a", state: .maint)
        #expect(try await api.stats().first { $0.serviceName == "a" }?.status == "MAINT")
        #expect(try await HTTPLoadClient.get(fixture.frontendURL).status == 503)
        // A connection closed after its request leaves no connection behind: the server is idle at once.
        let connections = try #require(try await api.serverConnections(backend: "be").first { $0.server == "a" })
        #expect(connections.isIdle)
        try await api.shutdownSessions(backend: "be", server: "a")
        try await api.deleteServer(backend: "be", server: "a")
        #expect(try await api.serversState(backend: "be").isEmpty)
      }
      try await process.stop()
    }
  }

  @Test func addressPortAndWeight() async throws {
    try await HAProxyFixture.with { fixture in
      let process = try await fixture.start()
      try await HTTPTestServer.with(name: "a") { a in
        try await HTTPTestServer.with(name: "b") { b in
          let api = fixture.runtime
          try await api.addServer(backend: "be", server: "s", address: "127.0.0.1", port: a.port)
          try await api.setServerState(backend: "be", server: "s", state: .ready)
          #expect(try await HTTPLoadClient.get(fixture.frontendURL).body == "Hello from a\n")

          try await api.setServerAddress(backend: "be", server: "s", address: "127.0.0.1", port: b.port)
          #expect(try await HTTPLoadClient.get(fixture.frontendURL).body == "Hello from b\n")
          // Setting the same address again is a success too ("no need to change the addr…").
          try await api.setServerAddress(backend: "be", server: "s", address: "127.0.0.1", port: b.port)

          try await api.setWeight(backend: "be", server: "s", weight: 50)
          #expect(try await api.serversState(backend: "be").first?.userWeight == 50)

          let missing = await #expect(throws: HAProxyError.self) {
            try await api.setWeight(backend: "be", server: "nosuch", weight: 5)
          }
          #expect(missing?.code == .unexpectedReply && missing?.reply?.hasPrefix("No such server.") == true)
          let duplicate = await #expect(throws: HAProxyError.self) {
            try await api.addServer(backend: "be", server: "s", address: "127.0.0.1", port: a.port)
          }
          #expect(duplicate?.reply?.contains("Already exists a server with the same name") == true)
          await #expect(throws: HAProxyError.self) { try await api.serversState(backend: "nosuch") }
        }
      }
      try await process.stop()
    }
  }

  @Test func injectionIsRefusedBeforeSending() async throws {
    try await HAProxyFixture.with { fixture in
      let process = try await fixture.start()
      let api = fixture.runtime
      for command in ["show stat; shutdown sessions server be/s", "show info\nshow stat", "show info\r", "show\u{7}"] {
        let error = await #expect(throws: HAProxyError.self) { try await api.send(command) }
        #expect(error?.code == .invalidCommand)
      }
      await #expect(throws: HAProxyError.self) {
        try await api.addServer(backend: "be", server: "x", address: "127.0.0.1", port: 80, options: ["check;help"])
      }
      await #expect(throws: HAProxyError.self) {
        try await api.setServerState(backend: "be", server: "x\nshow stat", state: .maint)
      }
      await #expect(throws: HAProxyError.self) {
        try await api.addServer(backend: "be", server: "x", address: "localhost", port: 80)
      }
      // Refused before any connection: a client for a socket that does not exist says so, not "cannot connect".
      let nowhere = RuntimeAPI(socketPath: fixture.state.path("nowhere.sock"), logger: quietLogger)
      let error = await #expect(throws: HAProxyError.self) { try await nowhere.send("show info; help") }
      #expect(error?.code == .invalidCommand)
      #expect(try await api.serversState(backend: "be").isEmpty)
      try await process.stop()
    }
  }

  @Test func reloadKeepsServing() async throws {
    try await HAProxyFixture.with { fixture in
      try await HTTPTestServer.with(name: "a") { a in
        let process = try await fixture.start(servers: ["server a 127.0.0.1:\(a.port)"])
        let before = try await fixture.master.showProc()
        let load = try HTTPLoadClient.start(url: fixture.frontendURL, connections: 4)
        try await Task.sleep(for: .milliseconds(200))
        let after = try await fixture.master.reload()
        #expect(after.reloads == before.reloads + 1 && after.failedReloads == 0)
        #expect(after.masterPID == process.pid)
        #expect(!after.workers.isEmpty && Set(after.workers.map(\.pid)).isDisjoint(with: before.workers.map(\.pid)))
        try await Task.sleep(for: .milliseconds(200))
        let report = await load.stop()
        #expect(report.successes > 0)
        #expect(report.bodies.keys.sorted() == ["Hello from a\n"])
        // Keep-alive connections that the old worker closes may cost a request or two; see the notes.
        #expect(report.failures <= 8, "\(report)")
        #expect(try await HTTPLoadClient.get(fixture.frontendURL).body == "Hello from a\n")
        #expect(process.isRunning)
        try await process.stop()
      }
    }
  }

  @Test func reloadOfInvalidConfigIsReportedAsFailed() async throws {
    try await HAProxyFixture.with { fixture in
      try await HTTPTestServer.with(name: "a") { a in
        let process = try await fixture.start(servers: ["server a 127.0.0.1:\(a.port)"])
        let before = try await fixture.master.showProc()
        // Bypasses the installer on purpose: the master reads the file itself.
        try (fixture.config() + "  bogus-keyword\n").write(
          toFile: fixture.state.configPath, atomically: true, encoding: .utf8)
        let error = await #expect(throws: HAProxyError.self) { try await fixture.master.reload() }
        #expect(error?.code == .reloadFailed)
        let after = try await fixture.master.showProc()
        #expect(after.reloads == before.reloads + 1 && after.failedReloads == 1)
        #expect(after.workers.map(\.pid) == before.workers.map(\.pid))
        #expect(try await HTTPLoadClient.get(fixture.frontendURL).body == "Hello from a\n")

        // A good configuration reloads again, and HAProxy 2.6 resets the failed counter.
        try await fixture.installer.install(
          fixture.config(servers: ["server a 127.0.0.1:\(a.port)"]), at: fixture.state.configPath)
        let recovered = try await fixture.master.reload()
        #expect(recovered.failedReloads == 0 && recovered.reloads == before.reloads + 2)
        try await process.stop()
      }
    }
  }

  @Test func adoptAfterControllerDied() async throws {
    try await HAProxyFixture.with { fixture in
      var workers: [Int32] = []
      let pid: Int32
      do {
        // The "controller" starts HAProxy and loses its handle without stopping it.
        let started = try await fixture.start()
        pid = started.pid
        workers = try await fixture.master.showProc().workers.map(\.pid)
      }
      #expect(ProcessInspection.isHAProxy(pid: pid, masterSocket: fixture.state.masterSocketPath))
      let adopted = try #require(try await HAProxyProcess.adopt(stateDirectory: fixture.state, logger: quietLogger))
      #expect(adopted.pid == pid && !adopted.wasStartedHere && adopted.isRunning)
      #expect(adopted.exitStatus == nil)
      // Starting a second one for the same directory is refused.
      await #expect(throws: HAProxyError.self) {
        try await HAProxyProcess.start(stateDirectory: fixture.state, logger: quietLogger)
      }
      try await adopted.stop()
      #expect(!adopted.isRunning)
      #expect(await eventually(timeout: .seconds(5)) { !processExists(pid) })
      #expect(await eventually(timeout: .seconds(5)) { workers.allSatisfy { !processExists($0) } })
      #expect(!FileManager.default.fileExists(atPath: fixture.state.pidFilePath))
      #expect(try await HAProxyProcess.adopt(stateDirectory: fixture.state, logger: quietLogger) == nil)
    }
  }

  @Test func aLostOrWrongPIDFileNeverLeadsToASecondHAProxy() async throws {
    try await HAProxyFixture.with { fixture in
      let pid = try await fixture.start().pid
      // Garbage, another live process, and no file at all: the master socket still names the master.
      for content in ["not a pid\n", "\(getpid())\n", nil] {
        if let content {
          try content.write(toFile: fixture.state.pidFilePath, atomically: true, encoding: .utf8)
        } else {
          unlink(fixture.state.pidFilePath)
        }
        let adopted = try #require(try await HAProxyProcess.adopt(stateDirectory: fixture.state, logger: quietLogger))
        #expect(adopted.pid == pid, "adopted \(adopted.pid) with PID file \(content ?? "missing")")
        #expect(ProcessInspection.pidFromFile(fixture.state.pidFilePath) == pid)
      }
      unlink(fixture.state.pidFilePath)
      await #expect(throws: HAProxyError.self) {
        try await HAProxyProcess.start(stateDirectory: fixture.state, logger: quietLogger)
      }
      #expect(fixture.haproxyPIDs().count == 2, "one master and one worker: \(fixture.haproxyPIDs())")
      // A master that hangs cannot answer, but is not mistaken for a stale file either.
      try "\(pid)\n".write(toFile: fixture.state.pidFilePath, atomically: true, encoding: .utf8)
      kill(pid, SIGSTOP)
      defer { kill(pid, SIGCONT) }
      await #expect(throws: HAProxyError.self) {
        _ = try await HAProxyProcess.adopt(stateDirectory: fixture.state, logger: quietLogger)
      }
      #expect(FileManager.default.fileExists(atPath: fixture.state.pidFilePath))
    }
  }

  @Test func adoptedHAProxyDeathIsNoticed() async throws {
    try await HAProxyFixture.with { fixture in
      let pid = try await fixture.start().pid
      let adopted = try #require(try await HAProxyProcess.adopt(stateDirectory: fixture.state, logger: quietLogger))
      #expect(adopted.isRunning)
      kill(pid, SIGKILL)
      let waiter = Task { try await adopted.waitForExit() }
      // Not our child: how it ended is unknown, only that it did.
      #expect(try await waiter.value == nil)
      #expect(!adopted.isRunning)
      #expect(await eventually(timeout: .seconds(5)) { fixture.haproxyPIDs().isEmpty })
      try await adopted.stop()  // Only cleans up.
      #expect(!FileManager.default.fileExists(atPath: fixture.state.masterSocketPath))
    }
  }

  @Test func adoptIgnoresStalePIDFile() async throws {
    try await HAProxyFixture.with { fixture in
      #expect(try await HAProxyProcess.adopt(stateDirectory: fixture.state, logger: quietLogger) == nil)
      // Our own PID is alive but not HAProxy: the file is stale and goes away.
      try "\(getpid())\n".write(toFile: fixture.state.pidFilePath, atomically: true, encoding: .utf8)
      #expect(try await HAProxyProcess.adopt(stateDirectory: fixture.state, logger: quietLogger) == nil)
      #expect(!FileManager.default.fileExists(atPath: fixture.state.pidFilePath))
    }
  }

  @Test func stopLeavesNoProcess() async throws {
    try await HAProxyFixture.with { fixture in
      let process = try await fixture.start()
      let workers = try await fixture.master.showProc().workers.map(\.pid)
      // A session of its own (no Ctrl-C from our terminal) and no blocked signals (SIGUSR1 must work).
      #expect(getsid(process.pid) == process.pid)
      let status = try String(contentsOfFile: "/proc/\(process.pid)/status", encoding: .utf8)
      #expect(status.contains("SigBlk:\t0000000000000000"))
      let started = ContinuousClock.now
      try await process.stop()
      let elapsed = ContinuousClock.now - started
      #expect(elapsed < .seconds(5), "a soft stop without connections should be quick, took \(elapsed)")
      #expect(!process.isRunning)
      #expect(process.exitStatus != nil)
      #expect(!processExists(process.pid), "the master is reaped, not a zombie")
      #expect(await eventually(timeout: .seconds(5)) { workers.allSatisfy { !processExists($0) } })
      #expect(fixture.haproxyPIDs().isEmpty)
      for path in [fixture.state.pidFilePath, fixture.state.masterSocketPath, fixture.state.adminSocketPath] {
        #expect(!FileManager.default.fileExists(atPath: path), "\(path) is removed")
      }
      try await process.stop()  // A second stop is harmless.
    }
  }

  @Test func killedHAProxyIsNoticed() async throws {
    try await HAProxyFixture.with { fixture in
      let process = try await fixture.start()
      kill(process.pid, SIGKILL)
      let status = try await process.waitForExit()
      #expect(status == .signaled(SIGKILL))
      #expect(!process.isRunning && process.exitStatus == .signaled(SIGKILL))
      #expect(!processExists(process.pid))
      // Its worker notices that the master is gone and exits by itself.
      #expect(await eventually(timeout: .seconds(5)) { fixture.haproxyPIDs().isEmpty })
      // A new HAProxy can take over the directory, after the stale PID file.
      let again = try await HAProxyProcess.start(stateDirectory: fixture.state, logger: quietLogger)
      #expect(again.pid != process.pid && again.isRunning)
      try await again.stop()
    }
  }

  @Test func startFailureCarriesTheLog() async throws {
    try await HAProxyFixture.with { fixture in
      try "global\n  bogus-keyword\n".write(toFile: fixture.state.configPath, atomically: true, encoding: .utf8)
      let error = await #expect(throws: HAProxyError.self) {
        try await HAProxyProcess.start(stateDirectory: fixture.state, logger: quietLogger)
      }
      #expect(error?.code == .processFailed)
      #expect(error?.details.contains { $0.contains("bogus-keyword") } == true)
    }
  }
}
