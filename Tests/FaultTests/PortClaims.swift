import EtcdClient
import Foundation
import SwitchyardModel
import SwitchyardTestSupport
import Testing

/// A tcp service whose settings claim the ports the node uses itself (listen, stats, admin).
extension ScenarioContext {
  /// The tcp service on port 7000, served by both nodes.
  func portClaimsSetup() async throws {
    try startInstance("tcpsvc1", of: "tcpsvc", on: "be1", port: 8084)
    try await putFixture(ServiceSettings.root + "tcpsvc", Self.tcpSettings(port: Self.tcpPort))
    try await waitServed([(Self.tcpRequest, "tcpsvc")])
    try await waitReloadsSettled()
  }

  static func tcpSettings(port: Int) -> String { #"{"check":{"type":"tcp"},"mode":"tcp","port":\#(port)}"# }

  /// The tcp service's settings name, in turn, the node's listen port, its stats port and its
  /// controller's admin port, then its own port again. docs/routing.md: "A port the node uses itself
  /// [...] is not opened, and `/state` says why." Each time, on both nodes: the controller and HAProxy
  /// keep running, each port keeps its owner (HTTP routing on the listen port, the stats page, `/state`)
  /// and answers all along, `/state` names the conflict, and the configuration opens no listener for the
  /// service; at the end port 7000 serves again. A settings change that removes or adds the service's
  /// listener is structural: one reload each, seamless (0 failed requests).
  func portClaims() async throws {
    let claims = [
      (port: FaultCluster.listenPort, owner: "the listen port"), (port: 8400, owner: "the stats page"),
      (port: FaultCluster.adminPort, owner: "the controller's admin endpoints"),
    ]
    for claim in claims {
      _ = try await etcd.put(ServiceSettings.root + "tcpsvc", value: Self.tcpSettings(port: claim.port))
      // Every node's own ports, probed while the claim stands: none may refuse a request.
      let refused = await probeOwnPorts(for: .seconds(4))
      for lb in FaultCluster.lbNames {
        await checkPortClaim(lb, claim.port, claim.owner)
        let failed = refused[lb] ?? []
        #expect(
          failed.isEmpty,
          "\(name): with tcpsvc on \(claim.port) (\(claim.owner)), \(lb) failed \(failed.count) probes of its own ports: \(failed.prefix(3))"
        )
      }
    }
    let restored = ContinuousClock.now
    _ = try await etcd.put(ServiceSettings.root + "tcpsvc", value: Self.tcpSettings(port: Self.tcpPort))
    do {
      try await waitServed([(Self.tcpRequest, "tcpsvc")], timeout: .seconds(5))
      note("port \(Self.tcpPort) served again \(restored.duration(to: .now)) after the settings were restored")
    } catch {
      Issue.record("\(name): port \(Self.tcpPort) not served again within 5 s: \(error)")
    }
    await healed()
  }

  /// GETs on every node's listen port, stats page and admin `/state`, every 100 ms for `duration`; the
  /// probes that failed, by node, with the time since the start.
  private func probeOwnPorts(for duration: Duration) async -> [String: [String]] {
    let started = ContinuousClock.now
    var failed: [String: [String]] = [:]
    var probes = 0
    while started.duration(to: .now) < duration {
      for lb in FaultCluster.lbNames {
        let address = cluster.lab.host(lb).address
        for url in [
          "http://\(address):\(FaultCluster.listenPort)/", "http://\(address):8400/", "\(cluster.adminURL(lb))/state",
        ] {
          probes += 1
          do {
            let (status, _) = try await HTTPLoadClient.measuredGet(url, timeout: .seconds(1))
            if status != 200 { failed[lb, default: []].append("\(started.duration(to: .now)) \(url): \(status)") }
          } catch {
            failed[lb, default: []].append("\(started.duration(to: .now)) \(url): \(error)")
          }
        }
      }
      try? await Task.sleep(for: .milliseconds(100))
    }
    let counts = FaultCluster.lbNames.map { "\($0) \(failed[$0]?.count ?? 0)" }.joined(separator: ", ")
    note("own-port probes: \(probes), failed: \(counts)")
    return failed
  }

  private func checkPortClaim(_ lb: String, _ port: Int, _ owner: String) async {
    guard cluster.controller(lb)?.isRunning == true else {
      Issue.record("\(name): \(lb)'s controller died with tcpsvc on port \(port) (\(owner)): \(cluster.logTail(lb))")
      return
    }
    let state: NodeSnapshot
    do {
      state = try await cluster.state(lb)
    } catch {
      Issue.record("\(name): \(lb)'s /state does not answer with tcpsvc on port \(port) (\(owner)): \(error)")
      return
    }
    let pid = cluster.haproxyPID(lb)
    #expect(
      state.haproxyRunning && pid.map(StrayProcessGuard.isAlive) == true,
      "\(name): \(lb)'s HAProxy does not run with tcpsvc on port \(port)")
    let problems = state.routeProblems ?? []
    #expect(
      problems.contains { $0.contains("port \(port)") },
      "\(name): \(lb)'s /state does not say that port \(port) (\(owner)) is taken: routeProblems \(problems), lastError \(state.lastError ?? "none")"
    )
    let config = (try? String(contentsOfFile: "\(cluster.stateDirectory(lb))/haproxy.cfg", encoding: .utf8)) ?? ""
    #expect(!config.contains("frontend tcp_tcpsvc"), "\(name): \(lb)'s config opens tcpsvc on port \(port) (\(owner))")
    note("\(lb) with tcpsvc on \(port) (\(owner)): routeProblems \(problems), lastError \(state.lastError ?? "none")")
  }
}
