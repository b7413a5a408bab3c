import EtcdClient
import SwitchyardModel

/// The second sample service, `web`: one instance (`web-1`, a `switchyard backend --service web`) beside the
/// `backend` instances, reached through two routes that `up` writes to etcd before the LB nodes start:
///
/// - `web`: path prefix `/web`, stripped (`/web/` reaches the instance as `/`);
/// - `web-host`: host `web.localhost`, any path.
///
/// Two routes, because one route's hosts and path prefix must both match: a route with host
/// `web.localhost` and prefix `/web` would not take `curl localhost:8001/web/`. Every other request goes to
/// the default service, `backend`, so `curl localhost:8001` round-robins the backends as in the original.
extension ClusterLayout {
  /// The second sample service's name (its instances are parts of kind ``PartKind/web``).
  public static let webService = "web"
  /// The host of the route `web-host`.
  public static let webHost = "web.localhost"
  /// The path prefix of the route `web`.
  public static let webPathPrefix = "/web"

  /// The routes `up` writes for `web`: `web-host`, then `web`.
  public static func webRoutes() throws -> [Route] {
    let service = try ServiceName(validating: webService)
    return [
      try Route(name: RouteName(validating: "web-host"), service: service, hosts: [HostPattern(validating: webHost)]),
      try Route(name: RouteName(validating: "web"), service: service, pathPrefix: webPathPrefix, stripPrefix: true),
    ]
  }

  /// The path a client asks an LB node for to reach `web` through the route `web`.
  public static var webPath: String { webPathPrefix + "/" }

  /// The commands that reach `web` through each of its routes on the first LB node: what `up` prints.
  public var webExamples: [String] {
    let lb = "http://127.0.0.1:\(ports.lb.first ?? 8001)"
    return ["curl \(lb)\(Self.webPath)", "curl -H 'Host: \(Self.webHost)' \(lb)/"]
  }

  /// Writes ``webRoutes()`` in one transaction, so that one etcd revision holds both (an LB node that routes
  /// one has the other too), as the operator user in a secure cluster; returns that revision.
  @discardableResult
  func writeWebRoutes() async throws -> Int64 {
    let puts = try Self.webRoutes().map { TxnOp.put($0.path, $0.encoded()) }
    return try await withOperatorEtcd { etcd in try await etcd.txn(Txn(success: puts)).header.revision }
  }

  /// Runs `body` with a client of the cluster's etcd that may write routes, service settings and overrides:
  /// the `operator` user in a secure cluster (never `root`), no user otherwise.
  func withOperatorEtcd<Result: Sendable>(_ body: (EtcdClient) async throws -> Result) async throws -> Result {
    if secure { return try await withEtcd(as: AccessPolicy.operatorUser, body) }
    return try await withPlainEtcd(body)
  }
}
