import SwitchyardBench
import SwitchyardLab
import SwitchyardProcess
import Testing

/// The load that the data-plane and churn comparisons count with, against a real HTTP server on loopback.
@Suite struct KeepAliveLoadTests {
  @Test("answers within the settle time are not counted; the seconds start after it")
  func settleIsNotCounted() async throws {
    let server = try await HTTPTestServer.start(name: "load")

    let whole = await KeepAliveLoad.run(port: server.port, connections: 2, duration: .milliseconds(400))
    #expect(whole.successes > 0)
    #expect(whole.failed == 0)
    #expect(whole.seconds >= 0.4)

    // All of it settle: load ran (the server saw requests), none of it counted.
    let before = server.requestCount
    let settledOnly = await KeepAliveLoad.run(
      port: server.port, connections: 2, duration: .milliseconds(400), settle: .milliseconds(400))
    #expect(server.requestCount > before)
    #expect(settledOnly.successes == 0)
    #expect(settledOnly.latency.totalCount == 0)
    #expect(settledOnly.seconds < 0.2)

    let half = await KeepAliveLoad.run(
      port: server.port, connections: 2, duration: .milliseconds(600), settle: .milliseconds(300))
    #expect(half.successes > 0)
    #expect(half.latency.totalCount == UInt64(half.successes))
    #expect(half.seconds >= 0.3 && half.seconds < 0.6)
    await server.close()
  }

  @Test("a closed port counts as failed connects, never as answers")
  func closedPortFails() async throws {
    let port = try FreePort.allocate()
    // 1 s, not less: with other suites running beside it, a connection task can start late, and one that
    // starts after the deadline makes no attempt at all (seen once at 200 ms).
    let result = await KeepAliveLoad.run(port: port, connections: 1, duration: .seconds(1))
    #expect(result.successes == 0)
    #expect(result.failedConnect > 0)
  }
}
