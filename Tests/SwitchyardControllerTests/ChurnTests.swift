import EtcdClient
import Foundation
import SwitchyardTestSupport
import Synchronization
import Testing

/// Backend churn under load: everything through the Runtime API, nothing dropped.
@Suite(.serialized) struct ChurnTests {
  @Test func fiftyRegistrationsComeAndGoUnderLoadWithoutAnErrorOrAReload() async throws {
    try await withNodes { _, nodes, etcd in
      let node = nodes[0]
      let stable = try await (1...3).asyncMap { try await HTTPTestServer.start(name: "stable-\($0)") }
      for server in stable { try await etcd.register(server.name, port: server.port) }
      try await node.waitServing(Set(stable.map(\.name)))

      let load = try HTTPLoadClient.start(url: node.url, connections: 8)
      var live: [HTTPTestServer] = []
      var retired: [(server: HTTPTestServer, requestsWhenRemoved: Int)] = []
      var stops: [Task<Void, Never>] = []
      for index in 1...50 {
        let server = try await HTTPTestServer.start(name: "churn-\(index)")
        try await etcd.register(server.name, port: server.port)
        live.append(server)
        try await Task.sleep(for: .milliseconds(150))
        if live.count > 4 {
          let leaving = live.removeFirst()
          retired.append((leaving, leaving.requestCount))
          try await etcd.deregister(leaving.name)
          // The server stops only once HAProxy no longer has it, as a deregistering backend would.
          stops.append(
            Task {
              _ = try? await retrying(timeout: .seconds(30), every: .milliseconds(200)) {
                guard try await node.servers()[leaving.name] == nil else { throw TestSupportError("still there") }
              }
              await leaving.stop()
            }
          )
        }
      }
      for server in live {
        retired.append((server, server.requestCount))
        try await etcd.deregister(server.name)
      }
      for server in live {
        stops.append(
          Task {
            _ = try? await retrying(timeout: .seconds(30), every: .milliseconds(200)) {
              guard try await node.servers()[server.name] == nil else { throw TestSupportError("still there") }
            }
            await server.stop()
          }
        )
      }
      for stop in stops { await stop.value }
      try await Task.sleep(for: .milliseconds(500))
      let report = await load.stop()

      let commands = try await node.metric("switchyard_runtime_commands_total") ?? 0
      print("churn: \(report); runtime commands: \(commands); reloads: \(try await node.showProc().reloads)")
      #expect(report.failures == 0, "\(report)")
      #expect(report.successes > 1_000, "\(report)")
      // Servers were carrying traffic when they were removed.
      let busy = retired.filter { $0.requestsWhenRemoved > 0 }.count
      #expect(busy >= 45, "only \(busy) of 50 churned servers had served requests when removed")
      // Zero reloads: every change went through the Runtime API.
      #expect(try await node.showProc().reloads == 0)
      #expect(try await node.showProc().failedReloads == 0)
      #expect(Set(try await node.servers().keys) == Set(stable.map(\.name)))
      #expect(try await node.metric("switchyard_runtime_command_failures_total") == 0)
      for server in stable { await server.close() }
    }
  }
}
