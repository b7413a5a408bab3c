import EtcdClient
import Foundation
import SwitchyardModel
import SwitchyardTestSupport
import Synchronization

/// A request the route scenarios send through a node: a `Host` header (none: the node's address) and a path.
struct RouteRequest: Sendable, Hashable, CustomStringConvertible {
  var host: String?
  var path: String
  /// The node's port: its HTTP listener, or a tcp service's.
  var port = FaultCluster.listenPort

  var description: String {
    port == FaultCluster.listenPort ? "\(host ?? "<any host>")\(path)" : "port \(port)\(path)"
  }

  /// The URL of this request on `lb`.
  func url(_ cluster: FaultCluster, _ lb: String) -> String {
    "http://\(cluster.lab.host(lb).address):\(port)\(path)"
  }
}

/// What the route scenarios need to know about routes, beside the controller's own code: which service
/// answered a request, and the map a node must hold for the routes in etcd.
enum Routing {
  /// The service whose instance answered: the sample backend says `Hello from <id>`, and the scenarios
  /// give instances of other services ids that start with the service's name (`web1`, `tcpsvc1`).
  static func service(answering body: String) -> String? {
    guard body.hasPrefix("Hello from ") else { return nil }
    let id = body.dropFirst("Hello from ".count).trimmingCharacters(in: .whitespacesAndNewlines)
    for service in ["web", "tcpsvc"] where id.hasPrefix(service) { return service }
    return "backend"
  }

  /// The valid routes in etcd, as every controller must read them.
  static func routes(in etcd: EtcdClient) async throws -> [Route] {
    let result = try await etcd.getPaginated(.prefix(Route.root), pageSize: 500)
    return result.kvs.compactMap { try? Route.parse(key: $0.key, value: $0.value, modRevision: $0.modRevision) }
  }

  /// The map lines (`key value`) a node must hold for `routes`, worked out here from the documented
  /// rules rather than with the controller's code (docs/routing.md): one line per host (or none) and
  /// prefix, `host/prefix/ svc_<service>:<segments stripped>`; the route whose name sorts first holds a
  /// claim; a route to a service without a backend on the node gets `sy_unavailable`, one to a tcp
  /// service no line.
  static func expectedMap(_ routes: [Route], services: [NodeSnapshot.Service]) -> Set<String> {
    let modes = Dictionary(services.map { ($0.name, $0.mode ?? "http") }, uniquingKeysWith: { first, _ in first })
    var lines: [String: String] = [:]
    for route in routes.sorted(by: { $0.name < $1.name }) {
      let mode = modes[route.service.rawValue]
      if mode == "tcp" { continue }
      let backend = mode == nil ? "sy_unavailable" : "svc_\(route.service.rawValue)"
      let strip = route.stripPrefix ? route.pathSegments : 0
      let path = route.pathPrefix == "/" ? "/" : route.pathPrefix + "/"
      for host in route.hosts.isEmpty ? [""] : route.hosts.map(\.text) where lines[host + path] == nil {
        lines[host + path] = "\(backend):\(strip)"
      }
    }
    return Set(lines.map { "\($0.key) \($0.value)" })
  }
}

/// Requests sent one after the other, each on a new connection, through every node, recording what
/// answered and when: how long a route change took to serve on each node, and that it never went back.
final class RouteProber: Sendable {
  struct Answer: Sendable {
    var sent: ContinuousClock.Instant
    var received: ContinuousClock.Instant
    var status: Int
    var body: String

    var service: String? { status == 200 ? Routing.service(answering: body) : nil }
  }

  private let log = Mutex<[String: [Answer]]>([:])
  private let task = Mutex<Task<Void, Never>?>(nil)

  init(_ cluster: FaultCluster, _ requests: [RouteRequest], pause: Duration = .milliseconds(30)) {
    let targets = FaultCluster.lbNames.flatMap { lb in
      requests.map { (key: Self.key(lb, $0), url: $0.url(cluster, lb), host: $0.host) }
    }
    let task = Task {
      while !Task.isCancelled {
        for target in targets {
          let sent = ContinuousClock.now
          let answer: Answer
          do {
            let (status, body) = try await HTTPLoadClient.measuredGet(
              target.url, host: target.host, timeout: SteadyLoad.requestTimeout)
            answer = Answer(sent: sent, received: .now, status: status, body: body)
          } catch {
            // A request cut short by stop() is no answer.
            if Task.isCancelled { return }
            answer = Answer(sent: sent, received: .now, status: 0, body: "\(error)")
          }
          self.log.withLock { $0[target.key, default: []].append(answer) }
        }
        try? await Task.sleep(for: pause)
      }
    }
    self.task.withLock { $0 = task }
  }

  private static func key(_ lb: String, _ request: RouteRequest) -> String { "\(lb) \(request)" }

  func answers(_ lb: String, _ request: RouteRequest) -> [Answer] { log.withLock { $0[Self.key(lb, request)] ?? [] } }

  func stop() async {
    let running = task.withLock { $0 }
    running?.cancel()
    await running?.value
  }

  /// What one node did with a change that makes `request` go to `to` (a service, or `nil` for a 404: no
  /// route, and the default service has no such path): asked for at `requested`, acknowledged by etcd at
  /// `written`.
  struct Switch {
    /// From the acknowledgement to the first answer from the new target (0 when it came first).
    var applied: Duration?
    /// Answers from the old target to requests sent after the new one had answered.
    var wentBack: Int
    /// Requests answered by neither target (a failure, or a 404 where a service was due).
    var failed: [String]
  }

  /// How `lb` followed a change of `request`'s route from `from` to `to`.
  func change(
    _ lb: String, _ request: RouteRequest, from: String?, to: String?, requested: ContinuousClock.Instant,
    written: ContinuousClock.Instant
  ) -> Switch {
    func matches(_ answer: Answer, _ target: String?) -> Bool {
      target == nil ? answer.status == 404 : answer.status == 200 && answer.service == target
    }
    let answers = answers(lb, request)
    let first = answers.first { $0.sent >= requested && matches($0, to) }
    var result = Switch(
      applied: first.map { max(.zero, written.duration(to: $0.received)) }, wentBack: 0, failed: [])
    for answer in answers {
      let described = "\(answer.status) \(answer.body.prefix(80))"
      if answer.sent < requested {
        if !matches(answer, from) { result.failed.append(described) }
      } else if let first, answer.sent >= first.received {
        if matches(answer, to) { continue }
        if matches(answer, from) { result.wentBack += 1 } else { result.failed.append(described) }
      } else if !matches(answer, from) && !matches(answer, to) {
        // In flight: either target is right.
        result.failed.append(described)
      }
    }
    return result
  }
}

/// Steady load on routed requests through both nodes, as ``SteadyLoad`` does on the default service:
/// per node and request, keep-alive connections and connections opened per request.
struct RoutedLoad {
  let clients: [(lb: String, request: RouteRequest, client: HTTPLoadClient)]

  static func start(
    _ cluster: FaultCluster, _ requests: [RouteRequest], keepAlive: Int = 1, perRequest: Int = 1,
    pause: Duration = .milliseconds(50)
  ) throws -> RoutedLoad {
    var clients: [(String, RouteRequest, HTTPLoadClient)] = []
    for lb in FaultCluster.lbNames {
      for request in requests {
        for (newConnections, count) in [(false, keepAlive), (true, perRequest)] where count > 0 {
          let client = try HTTPLoadClient.start(
            url: request.url(cluster, lb), connections: count, newConnections: newConnections, pause: pause,
            requestTimeout: SteadyLoad.requestTimeout, host: request.host)
          clients.append((lb, request, client))
        }
      }
    }
    return RoutedLoad(clients: clients)
  }

  /// What the load saw for one request through all nodes: requests, failures by node, the first errors,
  /// and how many answers each service gave.
  struct Seen {
    var requests = 0
    var failures: [String: Int] = [:]
    var errors: [String] = []
    var services: [String: Int] = [:]

    var totalFailures: Int { failures.values.reduce(0, +) }
  }

  func stop() async -> [RouteRequest: Seen] {
    var seen: [RouteRequest: Seen] = [:]
    for (lb, request, client) in clients {
      let report = await client.stop(timeout: .seconds(10))
      seen[request, default: Seen()].requests += report.totalRequests
      seen[request, default: Seen()].failures[lb, default: 0] += report.failures
      seen[request, default: Seen()].errors += report.errors.prefix(3).map { "\(lb): \($0)" }
      for (body, count) in report.bodies {
        seen[request, default: Seen()].services[Routing.service(answering: body) ?? "?", default: 0] += count
      }
    }
    return seen
  }
}
