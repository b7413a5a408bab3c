import EtcdClient
import Foundation
import SwitchyardModel
import SwitchyardTestSupport
import Testing

/// Routes and service settings a careless or hostile operator might put under `/switchyard/`: every one
/// invalid, and every one carries `evil` where a line taken from it would show in a map or the config.
enum HostileRoutes {
  /// Route values: map syntax, line breaks, `;`, spaces, `#`, quotes, backslashes, overlong hosts and
  /// paths, unknown fields, what is not JSON, what is not UTF-8.
  static let values: [[UInt8]] = {
    let label = String(repeating: "e", count: 63)
    let texts = [
      #"{"service":"web","hosts":["a.example.com\nadd map @1 /evil svc_backend:0"]}"#,
      #"{"service":"web","hosts":["a b\nadd map /evil svc_backend:0"]}"#,
      #"{"service":"web","hosts":["evil.example.com\r\n"]}"#,
      #"{"service":"web","hosts":["evil.example.com svc_backend:0"]}"#,
      #"{"service":"web","hosts":["evil.example.com;show map"]}"#,
      ##"{"service":"web","hosts":["#evil.example.com"]}"##,
      #"{"service":"web","hosts":["\"evil\".example.com"]}"#,
      #"{"service":"web","hosts":["'evil'.example.com"]}"#,
      #"{"service":"web","hosts":["evil\\.example.com"]}"#,
      #"{"service":"web","hosts":["evil.example.com:8000"]}"#,
      #"{"service":"web","hosts":["évil.example.com"]}"#,
      #"{"service":"web","hosts":["evil.*.example.com"]}"#,
      #"{"service":"web","hosts":["*"]}"#,
      #"{"service":"web","hosts":[""# + [label, label, label, label].joined(separator: ".") + #".evil"]}"#,
      #"{"service":"web","hosts":[""# + String(repeating: "e", count: 64) + #".evil.com"]}"#,
      #"{"service":"web","path_prefix":"/evil\nadd map @1 / svc_backend:0"}"#,
      #"{"service":"web","path_prefix":"/evil svc_backend:0"}"#,
      #"{"service":"web","path_prefix":"/evil;clear map"}"#,
      #"{"service":"web","path_prefix":"/evil#x"}"#,
      ##"{"service":"web","path_prefix":"#evil"}"##,
      #"{"service":"web","path_prefix":"/\"evil\""}"#,
      #"{"service":"web","path_prefix":"/evil\\x"}"#,
      #"{"service":"web","path_prefix":"/evil/../x"}"#,
      #"{"service":"web","path_prefix":"/evil?x"}"#,
      #"{"service":"web","path_prefix":"/"# + String(repeating: "e", count: 256) + #"vil"}"#,
      #"{"service":"web","path_prefix":""# + String(repeating: "/evil", count: 17) + #""}"#,
      #"{"service":"web\nbackend evil"}"#,
      #"{"service":"web evil"}"#,
      #"{"service":"web","strip_prefix":"evil"}"#,
      #"{"service":"web","evil":1}"#,
      #"{"service":"web","path_prefx":"/evil"}"#,
      #"{"service":"web","hosts":["evil.example.com"]"#,
      #"EVIL not json"#,
      #"["evil"]"#,
      #"{"service":"web","evil":""# + String(repeating: "A", count: 5000) + #""}"#,
    ]
    return texts.map { Array($0.utf8) } + [
      Array(#"{"service":"web","hosts":["evil"#.utf8) + [0xFF] + Array(#".example.com"]}"#.utf8),
      Array(#"{"service":"web","path_prefix":"/evil"#.utf8) + [0xC0, 0x8A] + Array(#""}"#.utf8),
    ]
  }()

  /// Names under the routes' root that are no route name, each written with a valid value.
  static let keys: [[UInt8]] = {
    let names = [
      "evil route", "evil\nadd map @1 /x svc_backend:0", "evil;x", "#evil", "evil\"x", "evil\\x", "evil/extra",
      String(repeating: "e", count: 129) + "vil",
    ]
    return names.map { Array((Route.root + $0).utf8) } + [Array((Route.root + "evil").utf8) + [0xFF, 0xFE]]
  }()

  /// A valid route under the hostile keys: if one were taken, `evil-key.example.com` would show in the map.
  static let valueForHostileKeys = #"{"service":"web","hosts":["evil-key.example.com"]}"#

  /// Settings values for service `web` (which runs with `{"balance":"leastconn"}`): each invalid.
  static let webSettings = [
    #"{"mode":"tcp","port":0}"#,
    #"{"mode":"tcp","port":70000}"#,
    #"{"balance":"evil"}"#,
    #"{"balance":"roundrobin\n  server evil 6.6.6.6:80"}"#,
    #"{"check":{"path":"/healthz\nevil"}}"#,
    #"{"check":{"path":"/healthz HTTP/1.0\r\nX-Evil: 1"}}"#,
    #"{"check":{"path":"/evil#x"}}"#,
    #"{"check":{"type":"evil"}}"#,
    #"{"timeout_server":"1s\n  server evil 6.6.6.6:80"}"#,
    #"{"maxconn":"100 evil"}"#,
    #"{"balance":"leastconn","evil":1}"#,
    #"{"balance":"leastconn""#,
  ]

  /// Settings values for the tcp service (which runs on port 7000): invalid ports.
  static let tcpSettings = [
    #"{"mode":"tcp","port":0,"evil":0}"#,
    #"{"mode":"tcp","port":70000}"#,
    #"{"mode":"tcp","port":"7000 evil"}"#,
    #"{"mode":"tcp"}"#,
  ]

  /// Keys under the settings' root that name no service, with a valid value.
  static let settingsKeys: [[UInt8]] = {
    let names = ["evil svc", "evil\nbackend x", "evil;x", "#evil", "evil/extra"]
    return names.map { Array((ServiceSettings.root + $0).utf8) } + [
      Array((ServiceSettings.root + "evil").utf8) + [0xC3, 0x28]
    ]
  }()
}

extension ScenarioContext {
  /// The tcp service of the settings scenarios: one instance, on its own port at every node.
  static let tcpPort = 7000
  static let tcpRequest = RouteRequest(host: nil, path: "/", port: tcpPort)

  /// The route that takes hostile value `index` after its valid one, and the request it serves.
  static func target(_ index: Int) -> (name: String, value: String, request: RouteRequest) {
    let name = String(format: "target-%02d", index)
    let host = String(format: "t%02d.example.com", index)
    return (name, #"{"service":"web","hosts":[""# + host + #""]}"#, RouteRequest(host: host, path: "/"))
  }

  /// Service `web` (two instances, balanced `leastconn`), a tcp service on port 7000, the route
  /// `fault-web`, and one valid route for every hostile value to be written over.
  func hostileRoutesSetup() async throws {
    for instance in RouteFixture.web.prefix(2) {
      try startInstance(instance.id, of: "web", on: instance.host, port: RouteFixture.webPort)
    }
    try startInstance("tcpsvc1", of: "tcpsvc", on: "be1", port: 8084)
    try await putFixture(ServiceSettings.root + "web", #"{"balance":"leastconn"}"#)
    try await putFixture(
      ServiceSettings.root + "tcpsvc", #"{"check":{"type":"tcp"},"mode":"tcp","port":\#(Self.tcpPort)}"#)
    try await putFixture(RouteFixture.key("fault-web"), RouteFixture.initialRoutes[0].value)
    for index in HostileRoutes.values.indices {
      let target = Self.target(index)
      try await putFixture(RouteFixture.key(target.name), target.value)
    }
    for key in HostileRoutes.keys + HostileRoutes.settingsKeys { fixture.wrote(key) }
    try await waitServed([
      (RouteFixture.webHost, "web"), (Self.target(0).request, "web"),
      (Self.target(HostileRoutes.values.count - 1).request, "web"), (Self.tcpRequest, "tcpsvc"),
    ])
    try await retrying(timeout: .seconds(20), every: .milliseconds(200)) {
      for lb in FaultCluster.lbNames {
        if let why = await routesMismatch(lb) { throw TestSupportError("\(lb): \(why)") }
        let web = try await cluster.state(lb).services.first { $0.name == "web" }
        guard web?.balance == "leastconn" else {
          throw TestSupportError("\(lb) balances web \(String(describing: web))")
        }
      }
    }
    try await waitReloadsSettled()
    // One more change, applied by both nodes: whatever pass the setup's reloads left to run has run, so
    // the body's first phase sees only watch events.
    try await putFixture(RouteFixture.key("fault-poke"), #"{"service":"web","hosts":["poke.example.com"]}"#)
    try await retrying(timeout: .seconds(10), every: .milliseconds(100)) {
      for lb in FaultCluster.lbNames {
        if let why = await routesMismatch(lb) { throw TestSupportError("\(lb): \(why)") }
      }
    }
  }

  /// Makes both controllers read everything again, as they do after a reload, a failed pass, a repaired
  /// drift and every 5 minutes: a health check disabled behind their backs is drift, repaired by a full
  /// pass. Returns once both have enabled it again.
  func forceFullRead() async throws {
    for lb in FaultCluster.lbNames { _ = try await cluster.runtimeAPI(lb).send("disable health svc_backend/be1") }
    try await retrying(timeout: .seconds(15), every: .milliseconds(100)) {
      for lb in FaultCluster.lbNames {
        let be1 = try await cluster.runtimeAPI(lb).serversState(backend: "svc_backend").first { $0.server == "be1" }
        guard be1?.isCheckEnabled == true else { throw TestSupportError("\(lb) has not repaired be1's check") }
      }
    }
  }

  /// Hostile routes and settings written under load, over valid ones: none may reach HAProxy's map (`show
  /// map`), the map file or the configuration; `/state` lists each; the valid route or settings of the
  /// same key stay in force; 0 failed requests, 0 reloads, 0 writes by the controllers.
  func hostileRoutes() async throws {
    let log = EtcdWriteLog(etcd, from: try await etcd.get(.key("/")).header.revision + 1)
    defer { log.stop() }
    let reloadsBefore = try await reloadCount()
    var reportsBefore: [String: Int] = [:]
    for lb in FaultCluster.lbNames { reportsBefore[lb] = invalidEntryReports(lb) }
    var mapsBefore: [String: Set<String>] = [:]
    for lb in FaultCluster.lbNames { mapsBefore[lb] = try await cluster.routesInHAProxy(lb) }
    let loaded = [RouteFixture.webHost, Self.target(0).request, Self.tcpRequest]
    let load = try RoutedLoad.start(cluster, loaded)
    let seen: [RouteRequest: RoutedLoad.Seen]
    do {
      try await Task.sleep(for: .seconds(1))
      // Each hostile value over the valid route of its own key, then all of them over fault-web's, which
      // carries load; hostile keys beside them; hostile settings over web's and the tcp service's.
      for (index, value) in HostileRoutes.values.enumerated() {
        try await log.put(RouteFixture.key(Self.target(index).name), value)
      }
      for key in HostileRoutes.keys { try await log.put(key, HostileRoutes.valueForHostileKeys) }
      for value in HostileRoutes.values { try await log.put(RouteFixture.key("fault-web"), value) }
      for value in HostileRoutes.webSettings { try await log.put(ServiceSettings.root + "web", value) }
      for value in HostileRoutes.tcpSettings { try await log.put(ServiceSettings.root + "tcpsvc", value) }
      for key in HostileRoutes.settingsKeys { try await log.put(key, #"{"balance":"leastconn"}"#) }
      let written = ContinuousClock.now
      try await retrying(timeout: .seconds(10), every: .milliseconds(200)) {
        for lb in FaultCluster.lbNames {
          let listed = try await cluster.state(lb).invalidEntries.count
          guard listed >= Self.hostileKeysListed.count else { throw TestSupportError("\(lb) lists \(listed)") }
        }
      }
      note("every node listed the hostile entries \(written.duration(to: .now)) after the last write")
      try await Task.sleep(for: .seconds(1))
      for lb in FaultCluster.lbNames {
        try await checkNothingHostile(
          lb, "after the writes", mapBefore: mapsBefore[lb] ?? [], reportsBefore: reportsBefore[lb] ?? 0)
      }
      note("reloads after the writes: \(Int(try await reloadCount() - reloadsBefore))")
      // The last valid value must stay in force also when a controller reads everything again.
      try await forceFullRead()
      try await Task.sleep(for: .seconds(2))
      for lb in FaultCluster.lbNames {
        try await checkNothingHostile(
          lb, "after a full read", mapBefore: mapsBefore[lb] ?? [], reportsBefore: reportsBefore[lb] ?? 0)
      }
      seen = await load.stop()
    } catch {
      _ = await load.stop()
      throw error
    }
    await healed()
    for (request, result) in seen.sorted(by: { $0.key.description < $1.key.description }) {
      addRequests(result.requests, failures: result.failures, errors: result.errors)
      let expected = request == Self.tcpRequest ? "tcpsvc" : "web"
      #expect(Set(result.services.keys) == [expected], "\(name): \(request) was answered by \(result.services)")
      note("load on \(request): \(result.requests) requests, \(result.totalFailures) failed")
    }
    try await judgeWrites(log)
    // The runner holds the scenario to its reload limit (0); this says which phase reloaded.
    note("reloads after the full read too: \(Int(try await reloadCount() - reloadsBefore))")
  }

  /// The keys `/state` must list as invalid (escaped as the controller escapes them): the hostile keys,
  /// and the valid keys that hold a hostile value now.
  static var hostileKeysListed: Set<String> {
    var keys = HostileRoutes.keys + HostileRoutes.settingsKeys
    keys += HostileRoutes.values.indices.map { Array(RouteFixture.key(target($0).name).utf8) }
    keys += [RouteFixture.key("fault-web"), ServiceSettings.root + "web", ServiceSettings.root + "tcpsvc"].map {
      Array($0.utf8)
    }
    return Set(keys.map { RegistrationError.escape(String(decoding: $0, as: UTF8.self), limit: 200) })
  }

  /// What `lb` runs after the hostile writes: the same map (in HAProxy and on disk), no line with `evil`
  /// in the map or the configuration, a configuration `haproxy -c` accepts, every hostile key listed in
  /// `/state`, and the valid routes and settings in force and serving.
  private func checkNothingHostile(
    _ lb: String, _ phase: String, mapBefore: Set<String>, reportsBefore: Int
  ) async throws {
    let name = "\(self.name) (\(phase))"
    let map = try await cluster.routesInHAProxy(lb)
    #expect(
      map == mapBefore,
      "\(name): \(lb)'s map changed: \(map.subtracting(mapBefore).count) lines more \(map.subtracting(mapBefore).sorted().prefix(3)), \(mapBefore.subtracting(map).count) fewer \(mapBefore.subtracting(map).sorted().prefix(3))"
    )
    let disk = try cluster.routesOnDisk(lb)
    #expect(
      disk == mapBefore,
      "\(name): \(lb)'s map file changed: \(disk.subtracting(mapBefore).count) lines more, \(mapBefore.subtracting(disk).count) fewer"
    )
    for line in map.union(disk) where line.lowercased().contains("evil") {
      Issue.record("\(name): \(lb)'s map holds a line from a hostile entry: \(line.debugDescription)")
    }
    let configPath = "\(cluster.stateDirectory(lb))/haproxy.cfg"
    let config = try String(contentsOfFile: configPath, encoding: .utf8)
    let hostileLines = config.split(separator: "\n").filter {
      $0.lowercased().contains("evil") || $0.contains("6.6.6.6")
    }
    #expect(hostileLines.isEmpty, "\(name): \(lb)'s config has lines from hostile entries: \(hostileLines)")
    do {
      try await ManagedProcess.run("haproxy", arguments: ["-c", "-q", "-f", configPath])
    } catch {
      Issue.record("\(name): \(lb)'s config fails haproxy -c: \(error)")
    }
    let state = try await cluster.state(lb)
    let listed = Set(state.invalidEntries.map(\.key))
    let missing = Self.hostileKeysListed.subtracting(listed)
    #expect(missing.isEmpty, "\(name): \(lb)'s /state does not list \(missing.sorted())")
    #expect(
      state.invalidEntryCount == Self.hostileKeysListed.count,
      "\(name): \(lb) counts \(String(describing: state.invalidEntryCount)) invalid entries, not \(Self.hostileKeysListed.count)"
    )
    // The valid routes of those keys stay in force: listed, and serving.
    let routes = Dictionary((state.routes ?? []).map { ($0.name, $0) }, uniquingKeysWith: { first, _ in first })
    var notInForce: [String] = []
    var misrouted: [String] = []
    for index in HostileRoutes.values.indices {
      let target = Self.target(index)
      let route = routes[target.name]
      if route?.service != "web" || route?.hosts != [target.request.host ?? ""] || route?.target != "svc_web" {
        notInForce.append(target.name)
      }
      let (status, body) = try await HTTPLoadClient.measuredGet(
        target.request.url(cluster, lb), host: target.request.host, timeout: .seconds(1))
      if status != 200 || Routing.service(answering: body) != "web" {
        misrouted.append("\(target.request.host ?? ""): \(status) \(body.prefix(40).trimmingCharacters(in: .newlines))")
      }
    }
    if routes["fault-web"]?.service != "web" { notInForce.append("fault-web") }
    #expect(
      notInForce.isEmpty,
      "\(name): \(lb) lost the valid route of \(notInForce.count) keys that hold a hostile value: \(notInForce)")
    #expect(
      misrouted.isEmpty,
      "\(name): \(lb) no longer sends \(misrouted.count) hosts of those routes to web: \(misrouted.prefix(3)) …")
    let web = state.services.first { $0.name == "web" }
    #expect(
      web?.balance == "leastconn",
      "\(name): \(lb) lost web's valid settings ({\"balance\":\"leastconn\"}): it balances \(web?.balance ?? "nothing")"
    )
    let tcp = state.services.first { $0.name == "tcpsvc" }
    #expect(
      tcp?.mode == "tcp" && tcp?.port == Self.tcpPort,
      "\(name): \(lb) lost tcpsvc's valid settings (tcp on port \(Self.tcpPort)): it runs mode \(tcp?.mode ?? "none"), port \(tcp?.port.map(String.init) ?? "none")"
    )
    #expect(
      config.contains("\n  bind \(cluster.lab.host(lb).address):\(Self.tcpPort)\n"),
      "\(name): \(lb) dropped tcpsvc's listener")
    // One episode in the log, not a line per entry.
    let reports = invalidEntryReports(lb) - reportsBefore
    #expect((1...3).contains(reports), "\(name): \(lb) logged \(reports) lines about invalid entries")
    note("\(lb): \(state.invalidEntryCount ?? 0) invalid entries listed, \(reports) log lines about them")
  }

  /// How many lines `lb`'s controller has logged about invalid entries.
  func invalidEntryReports(_ lb: String) -> Int {
    let lines = cluster.controller(lb)?.logTail(bytes: 4_000_000).split(separator: "\n") ?? []
    return lines.filter { $0.contains("invalid entries") }.count
  }
}
