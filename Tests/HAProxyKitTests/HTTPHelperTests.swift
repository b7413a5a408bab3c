import SwitchyardTestSupport
import Testing

@Suite("HTTP test server and load client")
struct HTTPHelperTests {
  @Test func serverAnswersAndCounts() async throws {
    try await HTTPTestServer.with(name: "one") { server in
      let response = try await HTTPLoadClient.get(server.url)
      #expect(response.status == 200 && response.body == "Hello from one\n")
      #expect(server.requestCount == 1)
    }
  }

  @Test func measuredGetAnswersOnAConnectionOfItsOwnAndOnlyOnLoopback() async throws {
    try await HTTPTestServer.with(name: "measured") { server in
      let response = try await HTTPLoadClient.measuredGet(server.url)
      #expect(response.status == 200 && response.body == "Hello from measured\n")
      #expect(server.requestCount == 1 && server.connectionCount <= 1)
    }
    await #expect(throws: (any Error).self) { try await HTTPLoadClient.measuredGet("http://192.0.2.1:80/") }
  }

  @Test func loadClientReusesConnections() async throws {
    let server = try await HTTPTestServer.start(name: "busy")
    let load = try HTTPLoadClient.start(url: server.url, connections: 3)
    #expect(await eventually(timeout: .seconds(5)) { load.currentReport.successes >= 100 })
    #expect(server.connectionCount == 3)
    let report = await load.stop()
    #expect(report.failures == 0, "\(report)")
    #expect(report.bodies == ["Hello from busy\n": report.successes])
    #expect(server.requestCount == report.successes)
    await server.stop()
  }

  @Test func gracefulStopClosesIdleConnections() async throws {
    let server = try await HTTPTestServer.start(name: "drain")
    let load = try HTTPLoadClient.start(url: server.url, connections: 2)
    #expect(await eventually(timeout: .seconds(5)) { load.currentReport.successes >= 20 })
    await server.stop()
    #expect(server.connectionCount == 0)
    // After the stop, connections are refused: every new attempt fails.
    let failuresAtStop = load.currentReport.failures
    #expect(await eventually(timeout: .seconds(5)) { load.currentReport.failures > failuresAtStop + 2 })
    let report = await load.stop()
    #expect(report.successes >= 20 && !report.errors.isEmpty)
  }

  @Test func abruptCloseAndManyServers() async throws {
    var servers: [HTTPTestServer] = []
    for index in 0..<50 { servers.append(try await HTTPTestServer.start(name: "s\(index)")) }
    for (index, server) in servers.enumerated() {
      #expect(try await HTTPLoadClient.get(server.url).body == "Hello from s\(index)\n")
    }
    for server in servers { await server.close() }
    await #expect(throws: (any Error).self) { try await HTTPLoadClient.get(servers[0].url, timeout: .seconds(2)) }
  }

  @Test func onlyLoopbackURLs() {
    #expect(throws: TestSupportError.self) { try HTTPLoadClient.start(url: "http://example.com/") }
    #expect(throws: TestSupportError.self) { try HTTPLoadClient.start(url: "https://127.0.0.1:1/") }
  }
}
