import EtcdClient
import Foundation
import HAProxyKit
import SwitchyardTestSupport
import Testing

/// A server added through the Runtime API must be indistinguishable from the same server read from the
/// file: HAProxy does not apply `default-server` (or its own file defaults, such as idle-connection
/// pooling) to servers added at runtime, so every setting users pay for has to be on the `add server` line.
@Suite(.serialized) struct RuntimeParityTests {
  /// `show servers state` columns that describe a server's settings rather than its identity or history.
  static let stateColumns = [
    "srv_addr", "srv_op_state", "srv_admin_state", "srv_uweight", "srv_iweight", "srv_check_state",
    "srv_agent_state", "srv_port", "srv_use_ssl", "srv_check_port", "srv_check_addr", "srv_agent_addr",
    "srv_agent_port",
  ]

  @Test("a runtime-added server has the settings of the same server read from the file after a reload")
  func runtimeServersMatchFileServers() async throws {
    try await withNodes { _, nodes, etcd in
      let node = nodes[0]
      // The check path is the service's from the first entry on, so adding these is runtime only.
      let servers = try await startServing(["p1", "p2"], on: node, etcd: etcd)
      defer { Task { for server in servers { await server.close() } } }
      // Let the health checks pass, so that both sides compare servers that are up.
      try await settledUp(node)
      let reloadsBefore = try await node.showProc().reloads
      let runtime = try await snapshot(node)

      // A reload makes HAProxy read the same servers from the file.
      // The file follows the Runtime API by a few milliseconds.
      try await retrying(timeout: .seconds(5)) {
        let text = try String(contentsOfFile: "\(node.stateDirectory)/haproxy.cfg", encoding: .utf8)
        guard text.contains("server p1 ") && text.contains("server p2 ") else {
          throw TestSupportError("the file lacks a server: \(text)")
        }
      }
      guard let pid = node.haproxyPID else { throw TestSupportError("no HAProxy pid") }
      kill(pid, SIGUSR2)
      try await retrying(timeout: .seconds(10)) {
        guard try await node.showProc().reloads > reloadsBefore else { throw TestSupportError("no reload yet") }
      }
      try await node.waitServing(["p1", "p2"])
      try await settledUp(node)
      let file = try await snapshot(node)

      #expect(runtime.keys.sorted() == file.keys.sorted())
      for (server, columns) in runtime {
        for (column, value) in columns.sorted(by: { $0.key < $1.key }) {
          #expect(
            file[server]?[column] == value,
            "\(server) \(column): runtime-added \(value), from the file \(file[server]?[column] ?? "missing")")
        }
      }
    }
  }

  @Test("a server deleted behind the controller's back (by hand, or by a reload from an old file) comes back")
  func driftIsRepaired() async throws {
    try await withNodes { _, nodes, etcd in
      let node = nodes[0]
      let servers = try await startServing(["d1", "d2"], on: node, etcd: etcd)
      defer { Task { for server in servers { await server.close() } } }
      // An operator removes d2 through the Runtime API; nothing changes in etcd.
      let api = RuntimeAPI(socketPath: "\(node.stateDirectory)/admin.sock", logger: quietLogger)
      try await api.setServerState(backend: "svc_backend", server: "d2", state: .maint)
      try await retrying(timeout: .seconds(5)) {
        try await api.deleteServer(backend: "svc_backend", server: "d2")
      }
      #expect(try await node.servers()["d2"] == nil)
      try await node.waitServing(["d1", "d2"], timeout: .seconds(6))
    }
  }

  /// Starts a backend per name, registers each (check path `/`), and waits until `node` serves them all.
  private func startServing(_ names: [String], on node: LBNode, etcd: EtcdClient) async throws -> [HTTPTestServer] {
    let servers = try await names.asyncMap { try await HTTPTestServer.start(name: $0) }
    for server in servers { try await etcd.register(server.name, port: server.port, checkPath: "/") }
    try await node.waitServing(Set(names))
    return servers
  }

  private func settledUp(_ node: LBNode) async throws {
    try await retrying(timeout: .seconds(15)) {
      let api = RuntimeAPI(socketPath: "\(node.stateDirectory)/admin.sock", logger: quietLogger)
      let states = try await api.serversState(backend: "svc_backend")
      guard states.count == 2, states.allSatisfy({ $0.operationalState?.rawValue == 2 }) else {
        throw TestSupportError("servers not all up yet: \(states.map(\.fields))")
      }
    }
  }

  /// Per server: the setting columns of `show servers state` and every `show servers conn` column that is
  /// a setting (`purge_delay`, `idle_lim`, …) rather than a count.
  private func snapshot(_ node: LBNode) async throws -> [String: [String: String]] {
    let api = RuntimeAPI(socketPath: "\(node.stateDirectory)/admin.sock", logger: quietLogger)
    var result: [String: [String: String]] = [:]
    for state in try await api.serversState(backend: "svc_backend") {
      for column in Self.stateColumns { result[state.server, default: [:]]["state." + column] = state.fields[column] }
      // Bit 0x1 of the check state says a check is running at this very moment: history, not a setting.
      result[state.server, default: [:]]["state.srv_check_state"] = "\(state.checkState & ~0x1)"
    }
    for connections in try await api.serverConnections(backend: "svc_backend") {
      for (column, value) in connections.fields where Self.isConnectionSetting(column) {
        result[connections.server, default: [:]]["conn." + column] = value
      }
    }
    return result
  }

  /// Counters and per-thread figures change with traffic; names and ids differ by design.
  static func isConnectionSetting(_ column: String) -> Bool {
    let counters = [
      "used_cur", "used_max", "need_est", "unsafe_nb", "safe_nb", "idle_cur", "bkname/svname", "bkid/svid",
    ]
    return !counters.contains(column) && !column.hasPrefix("idle_per_thr") && column != "-"
  }
}
