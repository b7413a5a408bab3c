import SwitchyardModel

/// The routes of a node as HAProxy matches them: one map entry per host and path prefix of each valid
/// route, in the map file that the frontend looks requests up in.
///
/// HAProxy looks a request up three times, each time the longest matching key (`map_beg`):
/// 1. `host/path/`: an exact host;
/// 2. `*.parent/path/`: a wildcard host, its first label replaced by `*` (one label only);
/// 3. `/path/`: routes without a host.
/// The first lookup that matches wins, so an exact host comes before a wildcard before no host, and
/// within each the longest path prefix. The path gets a `/` appended and every key ends with one, so
/// `/api` matches `/api` and `/api/x` but not `/apix`.
///
/// A key holds `backend:strip`: the backend to use and how many path segments to remove first. A route
/// with TLS options holds `backend:strip:flags:hstsMaxAge` instead (see ``Entry/value``), so maps of
/// routes without options stay as they were. The options change through the map, without a reload.
/// Nothing from etcd reaches a key or value unvalidated: hosts are DNS names (``HostPattern``), paths
/// are checked by ``Route/pathPrefixProblem(_:)``, backends are built from ``ServiceName``s.
public struct RouteTable: Sendable, Hashable {
  /// One line of the map.
  public struct Entry: Sendable, Hashable, Comparable {
    /// What the request is looked up by: host (or nothing), path prefix, `/`.
    public let key: String
    /// The backend that takes the request.
    public let backend: String
    /// Path segments removed before the request goes on.
    public let stripSegments: Int
    /// The route it comes from.
    public let route: RouteName
    /// Whether plain HTTP requests are redirected to HTTPS (flag `r`).
    public private(set) var redirectHTTPS: Bool = false
    /// The HSTS max-age sent over HTTPS, in seconds; `nil` sends none.
    public private(set) var hstsMaxAge: Int? = nil
    /// Whether the HSTS header says `includeSubDomains` (flag `s`).
    public private(set) var hstsIncludeSubdomains: Bool = false

    /// Whether the entry carries any TLS option.
    public var hasOptions: Bool { redirectHTTPS || hstsMaxAge != nil || hstsIncludeSubdomains }

    /// The flags field: `r` (redirect to HTTPS) and `s` (HSTS includeSubDomains), or `-` for none.
    public var flags: String {
      let text = (redirectHTTPS ? "r" : "") + (hstsIncludeSubdomains ? "s" : "")
      return text.isEmpty ? "-" : text
    }

    /// The map's value: `backend:strip`, or `backend:strip:flags:hstsMaxAge` when the route has an option
    /// (`-` for no HSTS): `be_api:1:rs:31536000`, `be_web:0:r:-`.
    public var value: String {
      guard hasOptions else { return "\(backend):\(stripSegments)" }
      return "\(backend):\(stripSegments):\(flags):\(hstsMaxAge.map(String.init) ?? "-")"
    }

    /// Orders by key.
    public static func < (lhs: Entry, rhs: Entry) -> Bool { lhs.key < rhs.key }
  }

  /// Two routes claiming the same host and path prefix: the one whose name sorts first is used, on every
  /// node, and the other is reported.
  public struct Conflict: Sendable, Hashable, CustomStringConvertible {
    /// The host (`*` for any) and path prefix both claim.
    public let claim: String
    /// The route in force.
    public let winner: RouteName
    /// The route left out for this host and prefix.
    public let loser: RouteName

    /// `route "b" claims any host /api, which route "a" holds (the name that sorts first wins)`.
    public var description: String {
      "route \"\(loser)\" claims \(claim), which route \"\(winner)\" holds (the name that sorts first wins)"
    }
  }

  /// A valid route that this node cannot use, and why.
  public struct Rejected: Sendable, Hashable, CustomStringConvertible {
    /// The route.
    public let route: RouteName
    /// Why.
    public let reason: String

    /// `route "db": …`.
    public var description: String { "route \"\(route)\": \(reason)" }
  }

  /// The backend of a route whose service has no backend on this node (no instance, or not served here):
  /// it has no server, so HAProxy answers 503.
  public static let unavailableBackend = "sy_unavailable"

  /// The map's lines, sorted by key.
  public let entries: [Entry]
  /// The routes that claim what another holds.
  public let conflicts: [Conflict]
  /// The routes that cannot be used here.
  public let rejected: [Rejected]
  /// How many valid routes there are (in force or not).
  public let routeCount: Int

  /// No routes.
  public static let empty = RouteTable(entries: [], conflicts: [], rejected: [], routeCount: 0)

  private init(entries: [Entry], conflicts: [Conflict], rejected: [Rejected], routeCount: Int) {
    self.entries = entries
    self.conflicts = conflicts
    self.rejected = rejected
    self.routeCount = routeCount
  }

  /// Builds the table of `routes` for a node whose HTTP backends are `httpBackends` (by service) and
  /// whose `tcp` services are `tcpServices`.
  public init(routes: [Route], httpBackends: [ServiceName: String], tcpServices: Set<ServiceName>) {
    var byKey: [String: Entry] = [:]
    var conflicts: [Conflict] = []
    var rejected: [Rejected] = []
    for route in routes.sorted(by: { $0.name < $1.name }) {
      if tcpServices.contains(route.service) {
        rejected.append(
          Rejected(
            route: route.name,
            reason: "service \"\(route.service)\" runs in tcp mode on a port of its own; HTTP routes cannot reach it"))
        continue
      }
      let backend = httpBackends[route.service] ?? Self.unavailableBackend
      let strip = route.stripPrefix ? route.pathSegments : 0
      let hosts: [HostPattern?] = route.hosts.isEmpty ? [nil] : route.hosts
      for host in hosts {
        let key = Self.key(host: host, pathPrefix: route.pathPrefix)
        if let holder = byKey[key] {
          conflicts.append(
            Conflict(claim: "\(host?.text ?? "any host") \(route.pathPrefix)", winner: holder.route, loser: route.name))
          continue
        }
        byKey[key] = Entry(
          key: key, backend: backend, stripSegments: strip, route: route.name, redirectHTTPS: route.redirectHTTPS,
          hstsMaxAge: route.hstsMaxAge, hstsIncludeSubdomains: route.hstsIncludeSubdomains)
      }
    }
    self.init(
      entries: byKey.values.sorted(), conflicts: conflicts, rejected: rejected, routeCount: routes.count)
  }

  /// This table with the entries of `backends` sent to ``unavailableBackend`` instead (backends a reload
  /// removes).
  public func redirecting(_ backends: Set<String>) -> RouteTable {
    guard entries.contains(where: { backends.contains($0.backend) }) else { return self }
    return RouteTable(
      entries: entries.map { entry in
        backends.contains(entry.backend)
          ? Entry(
            key: entry.key, backend: Self.unavailableBackend, stripSegments: entry.stripSegments, route: entry.route,
            redirectHTTPS: entry.redirectHTTPS, hstsMaxAge: entry.hstsMaxAge,
            hstsIncludeSubdomains: entry.hstsIncludeSubdomains)
          : entry
      },
      conflicts: conflicts, rejected: rejected, routeCount: routeCount)
  }

  /// The map key of a host (or none) and a normalized path prefix: `api.example.com/v1/`, `*.example.com/`,
  /// `/static/`.
  public static func key(host: HostPattern?, pathPrefix: String) -> String {
    (host?.text ?? "") + (pathPrefix == "/" ? "/" : pathPrefix + "/")
  }

  /// The map file: one `key value` line per entry.
  public var mapText: String {
    var text = ""
    text.reserveCapacity(entries.count * 48)
    for entry in entries { text += "\(entry.key) \(entry.value)\n" }
    return text
  }

  /// The entry HAProxy's three lookups find for a request, as the frontend's rules do it; `nil` sends
  /// the request to the default service. `host` is the Host header (any case, perhaps with a port).
  /// Pure: for tests, `switchyard route ls` and the docs' examples.
  public func match(host: String?, path: String) -> Entry? {
    // As the frontend: lower-cased, a trailing `:digits` removed (`[::1]:8001` keeps its brackets).
    var lowered = host?.lowercased() ?? ""
    if let colon = lowered.lastIndex(of: ":"), lowered[lowered.index(after: colon)...].allSatisfy(\.isASCIIDigit) {
      lowered = String(lowered[..<colon])
    }
    let slashed = path + "/"
    var candidates = [lowered + slashed]
    if !lowered.isEmpty {
      let rest = lowered.firstIndex(of: ".").map { lowered[$0...] } ?? ""
      candidates.append("*" + rest + slashed)
      candidates.append(slashed)
    }
    for input in candidates {
      if let entry = longestPrefix(of: input) { return entry }
    }
    return nil
  }

  private func longestPrefix(of input: String) -> Entry? {
    entries.filter { input.hasPrefix($0.key) }.max { $0.key.utf8.count < $1.key.utf8.count }
  }
}

extension Character {
  fileprivate var isASCIIDigit: Bool { ("0"..."9").contains(self) }
}
