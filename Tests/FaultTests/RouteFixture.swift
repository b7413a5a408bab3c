import EtcdClient
import Foundation
import SwitchyardModel
import SwitchyardTestSupport
import Synchronization
import Testing

/// What a scenario's setup started and wrote, for its teardown to remove.
final class ScenarioFixture: Sendable {
  private let backends = Mutex<[String]>([])
  private let keys = Mutex<[[UInt8]]>([])

  func started(_ name: String) { backends.withLock { if !$0.contains(name) { $0.append(name) } } }
  func wrote(_ key: [UInt8]) { keys.withLock { if !$0.contains(key) { $0.append(key) } } }
  func wrote(_ key: String) { wrote(Array(key.utf8)) }

  var startedBackends: [String] { backends.withLock { $0 } }
  var writtenKeys: [[UInt8]] { keys.withLock { $0 } }
}

/// The second service, its instances and the routes of the route scenarios.
///
/// The sample backend answers `GET /` only (any other path is a 404), so routes with a path prefix strip
/// it: what a service answers tells which route the request took.
enum RouteFixture {
  /// Instances of service `web`: id and host, on port ``webPort``.
  static let web = [(id: "web1", host: "be2"), (id: "web2", host: "be3"), (id: "web3", host: "be1")]
  static let webPort = 8083

  static func key(_ route: String) -> String { Route.root + route }

  // Requests, each through every node. Without a Host header a request carries the node's address,
  // which no host route names.
  static let webHost = RouteRequest(host: "web.example.com", path: "/")
  static let shop = RouteRequest(host: nil, path: "/shop/")
  static let move = RouteRequest(host: "move.example.com", path: "/")
  static let gone = RouteRequest(host: "gone.example.com", path: "/")
  static let new = RouteRequest(host: "new.example.com", path: "/v2/")
  static let late = RouteRequest(host: nil, path: "/late/x/")

  /// The routes in place before the fault.
  static let initialRoutes = [
    (name: "fault-web", value: #"{"service":"web","hosts":["web.example.com"]}"#),
    (name: "fault-shop", value: #"{"path_prefix":"/shop","service":"backend","strip_prefix":true}"#),
    (name: "fault-move", value: #"{"service":"web","hosts":["move.example.com"]}"#),
    (name: "fault-gone", value: #"{"service":"web","hosts":["gone.example.com"]}"#),
  ]

  /// What each request reaches before the fault: a service, or `nil` for a 404 (no route; the default
  /// service has no such path).
  static let before: [(RouteRequest, String?)] = [
    (webHost, "web"), (shop, "backend"), (move, "web"), (gone, "web"), (new, nil), (late, nil),
  ]
}

extension ScenarioContext {
  // MARK: - Fixture

  /// Starts instance `id` of `service` on `host` and records it for the teardown.
  func startInstance(_ id: String, of service: String, on host: String, port: Int) throws {
    try cluster.startBackend(id, on: host, port: port, service: service)
    fixture.started(id)
  }

  /// Writes `value` at `key` outside the scenario's figures, recorded for the teardown.
  func putFixture(_ key: String, _ value: String) async throws {
    _ = try await etcd.put(key, value: value)
    fixture.wrote(key)
  }

  /// Waits until every node answers each request from the service given (`nil`: a 404).
  func waitServed(_ expected: [(RouteRequest, String?)], timeout: Duration = .seconds(30)) async throws {
    do {
      try await waitServedOrThrow(expected, timeout: timeout)
    } catch {
      // Say what the nodes say about themselves: a stuck controller shows in its last error.
      var nodes: [String] = []
      for lb in FaultCluster.lbNames {
        let state = try? await cluster.state(lb)
        nodes.append(
          "\(lb): HAProxy running \(state.map { "\($0.haproxyRunning)" } ?? "?"), lastError \(state?.lastError ?? "none")"
        )
      }
      throw TestSupportError("\(error) (\(nodes.joined(separator: "; ")))")
    }
  }

  private func waitServedOrThrow(_ expected: [(RouteRequest, String?)], timeout: Duration) async throws {
    try await retrying(timeout: timeout, every: .milliseconds(100)) {
      for lb in FaultCluster.lbNames {
        for (request, service) in expected {
          let (status, body) = try await HTTPLoadClient.measuredGet(
            request.url(cluster, lb), host: request.host, timeout: .seconds(1))
          let answered = status == 200 ? Routing.service(answering: body) : nil
          guard answered == service, service != nil || status == 404 else {
            throw TestSupportError("\(lb) answers \(request) with \(status) \(body.prefix(80))")
          }
        }
      }
    }
  }

  /// Waits until no node has reloaded for `quiet`: a reload that the setup or teardown caused (a new
  /// service, settings) is over and cannot fall into the next scenario's figures.
  func waitReloadsSettled(quiet: Duration = .seconds(2), timeout: Duration = .seconds(20)) async throws {
    let clock = ContinuousClock()
    let deadline = clock.now + timeout
    var last = try await reloadCount()
    var since = clock.now
    while clock.now - since < quiet {
      guard clock.now < deadline else { throw TestSupportError("the nodes kept reloading for \(timeout)") }
      try await Task.sleep(for: .milliseconds(250))
      let now = try await reloadCount()
      if now != last { (last, since) = (now, clock.now) }
    }
  }

  /// A controller that reports its HAProxy as not running while that HAProxy still serves its state
  /// directory cannot apply anything (it refuses to start a second one and does not adopt it again):
  /// it is killed and started again, so that the scenarios after this one still measure something.
  func restartStuckControllers() async throws {
    for lb in FaultCluster.lbNames {
      guard let state = try? await cluster.state(lb), !state.haproxyRunning, let pid = cluster.haproxyPID(lb),
        StrayProcessGuard.isAlive(pid)
      else { continue }
      note("\(lb)'s controller was stuck (lastError: \(state.lastError ?? "none")); killed and started again")
      cluster.controller(lb)?.kill()
      _ = await cluster.controller(lb)?.waitForExit(timeout: .seconds(10))
      try cluster.startController(lb)
      try await cluster.waitReady(lb)
    }
  }

  /// Deletes the keys the scenario wrote, stops the instances it started (SIGTERM: they drain and
  /// deregister), and waits until the reloads that costs are over.
  func removeFixture() async throws {
    try await restartStuckControllers()
    for key in fixture.writtenKeys.reversed() { _ = try await etcd.delete(.key(key)) }
    let running = fixture.startedBackends.compactMap { cluster.backend($0) }.filter(\.isRunning)
    for process in running { process.signal(SIGTERM) }
    for process in running where await process.waitForExit(timeout: .seconds(20)) == nil {
      process.kill()
      Issue.record("\(name): an instance did not stop within 20 s of SIGTERM")
    }
    try await waitReloadsSettled()
  }

  /// The first change of the route scenarios: move.example.com's route moved from `web` to `backend`.
  func moveRouteToBackend(_ log: EtcdWriteLog) async throws -> RouteChange {
    try await change("move.example.com moved web → backend", RouteFixture.move, from: "web", to: "backend") {
      try await log.put(RouteFixture.key("fault-move"), #"{"service":"backend","hosts":["move.example.com"]}"#)
    }
  }
}
