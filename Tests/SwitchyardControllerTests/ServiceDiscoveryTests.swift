import EtcdClient
import Foundation
import HAProxyKit
import SwitchyardModel
import SwitchyardTestSupport
import Testing

/// Services, routes and service settings from etcd under load: route and server changes cost no request
/// and no reload, new services cost few reloads and serve within a second, settings reach HAProxy.
@Suite(.serialized) struct ServiceDiscoveryTests {
  @Test func routeAndServerChangesUnderLoadThroughTwoNodesCostNoRequestAndNoReload() async throws {
    try await withNodes(count: 2) { _, nodes, etcd in
      var servers: [String: HTTPTestServer] = [:]
      for (name, service) in [("web-1", "web"), ("web-2", "web"), ("web-3", "web"), ("api-1", "api"), ("api-2", "api")]
      {
        servers[name] = try await HTTPTestServer.start(name: name)
        if ["web-1", "web-2", "api-1"].contains(name) {
          try await etcd.register(name, port: servers[name]!.port, service: service)
        }
      }
      defer { Task { [servers] in for server in servers.values { await server.close() } } }
      try await etcd.putRoute("web", #"{"service":"web","hosts":["web.example.com"]}"#)
      try await etcd.putRoute("api", #"{"service":"api","path_prefix":"/api","strip_prefix":true}"#)
      for node in nodes {
        try await node.waitServing(["web-1", "web-2"], path: "/", host: "web.example.com")
        try await node.waitServing(["api-1"], path: "/api/items?x=1", host: nil)
      }
      var reloadsBefore: [Int] = []
      for node in nodes { reloadsBefore.append(try await node.reloadCount()) }

      let loads = try nodes.flatMap { node in
        [
          try HTTPLoadClient.start(url: node.origin + "/", connections: 3, host: "web.example.com"),
          try HTTPLoadClient.start(url: node.origin + "/api/items?x=1", connections: 3),
        ]
      }
      let changes: [(String, () async throws -> Int64)] = [
        ("register web-3", { try await etcd.register("web-3", port: servers["web-3"]!.port, service: "web") }),
        (
          "add route web-v2",
          { try await etcd.putRoute("web-v2", #"{"service":"api","hosts":["web.example.com"],"path_prefix":"/v2"}"#) }
        ),
        ("api: no strip", { try await etcd.putRoute("api", #"{"service":"api","path_prefix":"/api"}"#) }),
        ("deregister web-1", { try await etcd.deregister("web-1", service: "web") }),
        ("register api-2", { try await etcd.register("api-2", port: servers["api-2"]!.port, service: "api") }),
        ("api → web", { try await etcd.putRoute("api", #"{"service":"web","path_prefix":"/api"}"#) }),
        ("add route alt", { try await etcd.putRoute("alt", #"{"service":"api","hosts":["*.example.org"]}"#) }),
        ("delete route web-v2", { try await etcd.deleteRoute("web-v2") }),
        (
          "api → api, strip",
          { try await etcd.putRoute("api", #"{"service":"api","path_prefix":"/api","strip_prefix":true}"#) }
        ),
        ("deregister api-1", { try await etcd.deregister("api-1", service: "api") }),
        (
          "web: two hosts",
          { try await etcd.putRoute("web", #"{"service":"web","hosts":["web.example.com","www.example.com"]}"#) }
        ),
        ("register web-1 again", { try await etcd.register("web-1", port: servers["web-1"]!.port, service: "web") }),
      ]
      var revision: Int64 = 0
      for (description, change) in changes {
        revision = try await change()
        for node in nodes { try await node.waitApplied(revision) }
        print("under load: \(description) at revision \(revision), applied on both nodes")
        try await Task.sleep(for: .milliseconds(250))
      }
      for node in nodes { try await node.waitServing(["web-1", "web-2", "web-3"], path: "/", host: "www.example.com") }
      try await Task.sleep(for: .milliseconds(300))
      var reports: [HTTPLoadClient.LoadReport] = []
      for load in loads { reports.append(await load.stop()) }

      for (index, report) in reports.enumerated() {
        let node = nodes[index / 2]
        print("\(node.name) \(index % 2 == 0 ? "web.example.com/" : "/api/items?x=1"): \(report)")
        #expect(report.failures == 0, "\(node.name): \(report)")
        #expect(report.successes > 200, "\(node.name): \(report)")
      }
      // Every change reached the traffic: the new server, the switch of /api to web and back.
      for index in stride(from: 0, to: reports.count, by: 2) {
        #expect(reports[index].bodies["Hello from web-3\n", default: 0] > 0, "\(reports[index].bodies)")
        #expect(reports[index + 1].bodies["Hello from web-2\n", default: 0] > 0, "\(reports[index + 1].bodies)")
        #expect(reports[index + 1].bodies["Hello from api-2\n", default: 0] > 0, "\(reports[index + 1].bodies)")
      }
      let apiPaths = Set(servers["api-1"]!.receivedPaths + servers["api-2"]!.receivedPaths)
      #expect(apiPaths.isSuperset(of: ["/items?x=1", "/api/items?x=1"]), "api received \(apiPaths.sorted())")
      for (node, before) in zip(nodes, reloadsBefore) {
        let reloads = try await node.reloadCount()
        print("\(node.name): \(reloads - before) reloads during the changes")
        #expect(reloads == before, "\(node.name) reloaded \(reloads - before) times for route and server changes")
      }
      // Both nodes hold the same routes.
      #expect(try await nodes[0].routesInHAProxy() == nodes[1].routesInHAProxy())
      #expect(try await nodes[0].routesInHAProxy().count == 4)
    }
  }

  @Test func fiftyNewServicesInABurstCostFewReloadsAndNoRequestToAnother() async throws {
    try await withNodes { _, nodes, etcd in
      let node = nodes[0]
      let steady = try await ["b1", "b2"].asyncMap { try await HTTPTestServer.start(name: $0) }
      for server in steady { try await etcd.register(server.name, port: server.port) }
      try await node.waitServing(["b1", "b2"])
      let names = (1...50).map { String(format: "burst-%02d", $0) }
      var servers: [HTTPTestServer] = []
      for name in names { servers.append(try await HTTPTestServer.start(name: name)) }
      defer { Task { [servers] in for server in servers + steady { await server.close() } } }
      // The routes are there first: 0 reloads, 503 until their service registers. Eight hosts each make
      // a map of 400 entries and some 30 kB, more than one Runtime API request carries.
      var revision: Int64 = 0
      for name in names {
        let hosts =
          ["\(name).example.com"] + (1...7).map { "\(name)-\($0).a-rather-long-domain-name-for-maps.example.net" }
        let list = hosts.map { "\"\($0)\"" }.joined(separator: ",")
        revision = try await etcd.putRoute(name, #"{"service":"\#(name)","hosts":[\#(list)]}"#)
      }
      try await node.waitApplied(revision)
      #expect(try await node.request("/", host: "burst-01.example.com").status == 503)
      #expect(try await node.routesInHAProxy().count == 400)
      let reloadsBefore = try await node.reloadCount()
      let load = try HTTPLoadClient.start(url: node.url, connections: 4)
      try await Task.sleep(for: .milliseconds(300))

      let clock = ContinuousClock()
      let started = clock.now
      try await withThrowingTaskGroup(of: Void.self) { group in
        for (name, server) in zip(names, servers) {
          group.addTask { try await etcd.register(name, port: server.port, service: name) }
        }
        try await group.waitForAll()
      }
      let registered = started.duration(to: clock.now)
      var pending = Set(names)
      var servedAfter: [String: Duration] = [:]
      while !pending.isEmpty && started.duration(to: clock.now) < .seconds(15) {
        for name in pending.sorted() {
          if let (status, body) = try? await node.request("/", host: "\(name).example.com"), status == 200,
            servedBy(body) == name
          {
            servedAfter[name] = started.duration(to: clock.now)
            pending.remove(name)
          }
        }
        try await Task.sleep(for: .milliseconds(10))
      }
      // Reloads that come late count too.
      try await Task.sleep(for: .seconds(1))
      let reloads = try await node.reloadCount() - reloadsBefore
      let report = await load.stop()
      let slowest = servedAfter.values.max() ?? .zero
      let failedPasses = try await node.metric("switchyard_reconciles_total{result=\"failed\"}") ?? 0
      print(
        "burst: 50 services registered in \(registered); all serving after \(slowest); \(reloads) reloads; \(Int(failedPasses)) failed passes; load on another service: \(report)"
      )
      #expect(pending.isEmpty, "not serving after 15 s: \(pending.sorted())")
      let lastHost = "burst-50-7.a-rather-long-domain-name-for-maps.example.net"
      #expect(servedBy(try await node.request("/", host: lastHost).body) == "burst-50")
      #expect(slowest <= .seconds(3), "the last of 50 new services served \(slowest) after the burst started")
      #expect(reloads >= 1 && reloads <= 3, "50 new services cost \(reloads) reloads")
      #expect(report.failures == 0, "\(report)")
      #expect(report.successes > 100, "\(report)")
      #expect(try await node.showProc().failedReloads == 0)
      #expect(failedPasses == 0, "reconcile passes failed over new services")
    }
  }

  @Test func aNewServiceServesItsFirstRoutedRequestWithinASecondWhileAnotherIsUnderLoad() async throws {
    try await withNodes { _, nodes, etcd in
      let node = nodes[0]
      let steady = try await HTTPTestServer.start(name: "b1")
      try await etcd.register("b1", port: steady.port)
      try await node.waitServing(["b1"])
      let load = try HTTPLoadClient.start(url: node.url, connections: 4)
      var servers = [steady]
      defer { Task { [servers] in for server in servers { await server.close() } } }
      let clock = ContinuousClock()
      var times: [Duration] = []
      var registrations: [ContinuousClock.Instant] = []
      for index in 1...3 {
        let name = "fresh-\(index)"
        try await node.waitApplied(try await etcd.putRoute(name, #"{"service":"\#(name)","path_prefix":"/\#(name)"}"#))
        let server = try await HTTPTestServer.start(name: name)
        servers.append(server)
        // Further apart than the minimum interval between reloads.
        try await Task.sleep(for: .milliseconds(600))
        let registered = clock.now
        registrations.append(registered)
        try await etcd.register(name, port: server.port, service: name)
        var served: Duration?
        while served == nil && registered.duration(to: clock.now) < .seconds(5) {
          if let (status, body) = try? await node.request("/\(name)/hello"), status == 200, servedBy(body) == name {
            served = registered.duration(to: clock.now)
          } else {
            try await Task.sleep(for: .milliseconds(5))
          }
        }
        times.append(served ?? .seconds(5))
      }
      let report = await load.stop()
      let reloads = try await node.reloadCount()
      // When requests failed, as seconds after each registration: a reload's soft stop closes the old
      // worker's idle keep-alive connections.
      let failed = [report.firstFailure, report.lastFailure].compactMap { $0 }.map { instant in
        registrations.map { seconds($0.duration(to: instant)) }
      }
      print(
        "first routed request of a new service after its first registration: \(times); \(reloads) reloads; load on b1: \(report); first and last failure after each registration (s): \(failed)"
      )
      for (index, time) in times.enumerated() {
        #expect(time <= .seconds(1), "fresh-\(index + 1) served its first request \(time) after its registration")
      }
      #expect(
        report.failures == 0, "keep-alive requests to another service failed during \(reloads) reloads: \(report)")
    }
  }

  @Test func perServiceSettingsReachHAProxyAndAChangeReloadsOnce() async throws {
    try await withNodes { _, nodes, etcd in
      let node = nodes[0]
      try await etcd.putSettings("lc", #"{"balance":"leastconn","timeout_server":"5s","maxconn":10}"#)
      try await etcd.putSettings(
        "rnd", #"{"balance":"random","check":{"type":"http","path":"/ready","interval":"2s","rise":1,"fall":2}}"#)
      try await etcd.putSettings("src", #"{"balance":"source"}"#)
      // An HTTP service whose only server speaks no HTTP: up only with a TCP check.
      try await etcd.putSettings("raw", #"{"check":{"type":"tcp"}}"#)
      var servers: [HTTPTestServer] = []
      for (name, service) in [
        ("lc-1", "lc"), ("lc-2", "lc"), ("rnd-1", "rnd"), ("rnd-2", "rnd"), ("src-1", "src"), ("src-2", "src"),
      ] {
        let server = try await HTTPTestServer.start(name: name)
        servers.append(server)
        try await etcd.register(name, port: server.port, service: service)
      }
      let echo = try await TCPEchoServer.start()
      defer {
        Task { [servers] in
          for server in servers { await server.close() }
          await echo.close()
        }
      }
      try await etcd.register("raw-1", port: echo.port, service: "raw")
      for service in ["lc", "rnd", "src"] {
        try await etcd.putRoute(service, #"{"service":"\#(service)","hosts":["\#(service).example.com"]}"#)
      }
      try await node.waitServing(["lc-1", "lc-2"], path: "/", host: "lc.example.com")
      try await node.waitServing(["rnd-1", "rnd-2"], path: "/", host: "rnd.example.com")

      // The config file.
      let lc = try node.configSection("backend svc_lc")
      #expect(lc.contains("balance leastconn") && lc.contains("timeout server 5s"), "\(lc)")
      #expect(lc.filter { $0.hasPrefix("server ") }.allSatisfy { $0.contains(" maxconn 10 ") }, "\(lc)")
      let rnd = try node.configSection("backend svc_rnd")
      #expect(rnd.contains("balance random") && rnd.contains("option httpchk GET /ready"), "\(rnd)")
      #expect(
        rnd.filter { $0.hasPrefix("server ") }.allSatisfy {
          $0.contains(" inter 2s ") && $0.contains(" rise 1 fall 2 ")
        },
        "\(rnd)")
      let src = try node.configSection("backend svc_src")
      #expect(src.contains("balance source") && src.contains("hash-type consistent"), "\(src)")
      let raw = try node.configSection("backend svc_raw")
      #expect(!raw.isEmpty && !raw.contains { $0.hasPrefix("option httpchk") }, "\(raw)")

      // What HAProxy runs: the algorithms, and the checks' kinds.
      try await retrying(timeout: .seconds(6)) {
        let stats = try await node.stats()
        func row(_ proxy: String, _ server: String) -> StatRow? {
          stats.first { $0.proxyName == proxy && $0.serviceName == server }
        }
        // HAProxy 2.6 names `random` "unknown" in `show stat`; the config and /state say it.
        let algorithms = ["svc_lc", "svc_src"].map { row($0, "BACKEND")?["algo"] ?? "-" }
        guard algorithms == ["leastconn", "source"] else {
          throw TestSupportError("show stat algo: \(algorithms)")
        }
        guard row("svc_raw", "raw-1")?.status == "UP", row("svc_raw", "raw-1")?["check_status"] == "L4OK" else {
          throw TestSupportError("svc_raw/raw-1: \(row("svc_raw", "raw-1")?.fields ?? [:])")
        }
        guard row("svc_rnd", "rnd-1")?["check_status"] == "L7OK" else {
          throw TestSupportError("svc_rnd/rnd-1: \(row("svc_rnd", "rnd-1")?.fields ?? [:])")
        }
      }
      #expect(servers[2].receivedPaths.contains("/ready"), "rnd-1 was not checked at /ready")
      try await retrying(timeout: .seconds(5)) {
        let services = try await node.state().services
        let balances = ["lc", "rnd", "src"].map { name in services.first { $0.name == name }?.balance ?? "-" }
        guard balances == ["leastconn", "random", "source"] else {
          throw TestSupportError("/state balances \(balances): \(services)")
        }
      }
      // Source hashing: one client, one server.
      var bySource: Set<String> = []
      for _ in 0..<10 { bySource.insert(servedBy(try await node.request("/", host: "src.example.com").body) ?? "-") }
      #expect(bySource.count == 1, "source balancing sent one client to \(bySource.sorted())")

      // A changed setting: one reload, and no request lost.
      let reloadsBefore = try await node.reloadCount()
      let load = try HTTPLoadClient.start(url: node.origin + "/", connections: 4, host: "lc.example.com")
      try await Task.sleep(for: .milliseconds(300))
      try await etcd.putSettings("lc", #"{"balance":"roundrobin","timeout_server":"6s","maxconn":10}"#)
      try await retrying(timeout: .seconds(5)) {
        guard try node.configSection("backend svc_lc").contains("timeout server 6s") else {
          throw TestSupportError("svc_lc: \(try node.configSection("backend svc_lc"))")
        }
      }
      try await Task.sleep(for: .seconds(1))
      let report = await load.stop()
      let reloads = try await node.reloadCount() - reloadsBefore
      print("changed service settings under load: \(reloads) reloads; \(report)")
      #expect(reloads == 1, "a changed setting cost \(reloads) reloads")
      #expect(report.failures == 0, "\(report)")
      #expect(Set(report.bodies.keys) == ["Hello from lc-1\n", "Hello from lc-2\n"], "\(report.bodies)")
      let algorithm = try await node.stats().first { $0.proxyName == "svc_lc" && $0.isBackend }?["algo"]
      #expect(algorithm == "roundrobin")

      // Invalid settings: listed, and the last valid ones stay, also across a reload for another reason.
      let revision = try await etcd.putSettings("lc", #"{"balance":"bogus","timeout_server":"7s"}"#)
      try await node.waitApplied(revision)
      let invalid = try await node.state().invalidEntries
      #expect(invalid.contains { $0.key == "/switchyard/services/lc" }, "\(invalid)")
      let lcInvalid = try node.configSection("backend svc_lc")
      #expect(lcInvalid.contains("timeout server 6s"), "an invalid value replaced svc_lc's settings: \(lcInvalid)")
      #expect(try await node.reloadCount() == reloadsBefore + 1)
      let other = try await HTTPTestServer.start(name: "other-1")
      servers.append(other)
      try await etcd.register("other-1", port: other.port, service: "other")
      try await retrying(timeout: .seconds(5)) {
        guard try !node.configSection("backend svc_other").isEmpty else { throw TestSupportError("no svc_other yet") }
      }
      // The full pass after the reload, and whatever it does.
      try await Task.sleep(for: .seconds(1.5))
      let lcAfter = try node.configSection("backend svc_lc")
      let reloadsAfter = try await node.reloadCount() - reloadsBefore
      #expect(
        lcAfter.contains("timeout server 6s") && lcAfter.contains("balance roundrobin"),
        "after a reload for a new service, svc_lc lost its last valid settings: \(lcAfter)")
      #expect(reloadsAfter == 2, "one more reload for the new service expected, got \(reloadsAfter - 1)")
      #expect(try await node.state().invalidEntries.contains { $0.key == "/switchyard/services/lc" })
    }
  }
}

/// `0.43` for 430 ms: a duration in seconds, two decimals.
private func seconds(_ duration: Duration) -> String {
  let value = Double(duration.components.seconds) + Double(duration.components.attoseconds) / 1e18
  return String(format: "%.2f", value)
}
