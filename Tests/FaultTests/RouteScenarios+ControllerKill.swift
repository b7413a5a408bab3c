import EtcdClient
import Foundation
import SwitchyardModel
import SwitchyardTestSupport
import Synchronization
import Testing

extension ScenarioContext {
  // MARK: - Routes and settings while a controller is killed

  /// lb2's controller killed (-9) while routes change, started again 3 s later (it adopts the HAProxy
  /// that kept serving), then web's settings changed sixteen times (a reload each, on both nodes, lb2's
  /// on the adopted HAProxy), then one more route.
  ///
  /// Expected: lb1 serves each route change within the change deadline; lb2's HAProxy serves the old
  /// routes while it has no controller and the new ones within the deadline after its controller is
  /// ready; every settings change reaches both nodes within the deadline; the last route too (no node is
  /// stuck); 0 failed requests (a reload keeps idle keep-alive connections: `idle-close-on-response`), 0
  /// etcd writes by the controllers; both nodes equal etcd at the end.
  func routesWhileControllerKilled() async throws {
    let log = EtcdWriteLog(etcd, from: try await etcd.get(.key("/")).header.revision + 1)
    defer { log.stop() }
    let load = try RoutedLoad.start(
      cluster, [RouteFixture.webHost, RouteFixture.shop, RouteFixture.move], keepAlive: 0, perRequest: 2)
    let prober = RouteProber(cluster, [RouteFixture.move, RouteFixture.new, RouteFixture.late])
    var changes: [RouteChange] = []
    var ready = ContinuousClock.now
    do {
      try await Task.sleep(for: .seconds(1))
      cluster.controller("lb2")?.kill()
      faultBegins()
      try await Task.sleep(for: .milliseconds(500))
      changes.append(try await moveRouteToBackend(log))
      changes.append(
        try await change("new.example.com/v2 added → web", RouteFixture.new, from: nil, to: "web") {
          try await log.put(
            RouteFixture.key("fault-new"),
            #"{"path_prefix":"/v2","service":"web","strip_prefix":true,"hosts":["new.example.com"]}"#)
        })
      try await holdFault(for: .seconds(3))
      try cluster.startController("lb2")
      try await cluster.waitReady("lb2")
      ready = .now
      let adopted = try await cluster.state("lb2").haproxyAdopted
      #expect(adopted, "\(name): lb2's controller did not adopt the HAProxy that kept serving")
      note("lb2's controller ready \(elapsedSinceFault) after the kill, adopted its HAProxy: \(adopted)")
      try await toggleWebSettings(times: 16, log: log)
      changes.append(
        try await change("/late added → backend", RouteFixture.late, from: nil, to: "backend") {
          try await log.put(
            RouteFixture.key("fault-late"), #"{"path_prefix":"/late/x","service":"backend","strip_prefix":true}"#)
        })
      try await Task.sleep(for: .seconds(2))
      await routesHealed()
    } catch {
      await prober.stop()
      _ = await load.stop()
      throw error
    }
    await prober.stop()
    let seen = await load.stop()
    // lb2 had no controller when the first changes were written: they are timed from its restart.
    judge(changes, prober, writtenFor: { lb, change in lb == "lb2" && change.written < ready ? ready : change.written })
    judge(
      seen,
      allowed: [RouteFixture.webHost: ["web"], RouteFixture.shop: ["backend"], RouteFixture.move: ["web", "backend"]])
    try await judgeWrites(log)
  }

  /// Sets web's balance `times` times, alternating leastconn and roundrobin: each a structural change, one
  /// reload per node. Each must reach both nodes (`/state` shows the algorithm) within the change deadline
  /// (plus the reload gate's wait).
  private func toggleWebSettings(times: Int, log: EtcdWriteLog) async throws {
    fixture.wrote(ServiceSettings.root + "web")
    var applied: [String] = []
    for round in 0..<times {
      let balance = round % 2 == 0 ? "leastconn" : "roundrobin"
      let written = ContinuousClock.now
      try await log.put(ServiceSettings.root + "web", #"{"balance":"\#(balance)"}"#)
      let times = await cluster.timeUntil(
        nodes: FaultCluster.lbNames, timeout: FaultSuiteTests.changeDeadline + .seconds(2), every: .milliseconds(50)
      ) { lb, _ in
        (try? await cluster.state(lb))?.services.first { $0.name == "web" }?.balance == balance
      } refresh: {
        nil
      }
      var stuck: [String] = []
      for lb in FaultCluster.lbNames {
        guard let time = times[lb] ?? nil, time <= FaultSuiteTests.changeDeadline + .milliseconds(500) else {
          let state = try? await cluster.state(lb)
          let running = state.map { "\($0.haproxyRunning)" } ?? "?"
          let message =
            "\(name): \(lb) did not apply web's settings change \(round + 1) (balance \(balance)) within 3.5 s: "
            + "HAProxy running \(running), lastError \(state?.lastError ?? "none")"
          Issue.record(Comment(rawValue: message))
          stuck.append(lb)
          continue
        }
        applied.append(
          String(format: "%.2f", Double(time.components.attoseconds) / 1e18 + Double(time.components.seconds)))
      }
      // A node that is stuck stays stuck: the rounds after would only repeat it.
      if !stuck.isEmpty { break }
      try await Task.sleep(until: written + .milliseconds(1200), clock: .continuous)
    }
    note("web's settings changes applied after (s, lb1 and lb2 per round): \(applied.joined(separator: " "))")
  }
}
