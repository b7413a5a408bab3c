import EtcdClient
import SwitchyardModel
import SwitchyardReconcile

/// The routes in etcd as `switchyard route ls` shows them: each valid route with its service's instance
/// count and what keeps it from taking requests, the conflicts, and the invalid entries. Built from one read
/// of the routes, the registrations and the service settings at one revision; pure once read.
struct RouteListing: Sendable {
  /// One route, as `route ls --json` prints it.
  struct Item: Sendable, Hashable, Codable {
    /// The route's name.
    var name: String
    /// Its hosts; empty for any.
    var hosts: [String]
    /// Its path prefix.
    var pathPrefix: String
    /// Whether the prefix is removed.
    var stripPrefix: Bool
    /// Whether plain HTTP is redirected to HTTPS; absent when not.
    var redirectHTTPS: Bool?
    /// The HSTS max-age; absent when no header is sent.
    var hstsMaxAge: Int?
    /// Whether HSTS says includeSubDomains; absent when not.
    var hstsIncludeSubdomains: Bool?
    /// Whether ACME obtains the route's certificate; absent when not.
    var acme: Bool?
    /// The service it sends requests to.
    var service: String
    /// Valid registrations of that service.
    var instances: Int
    /// `ok`, or why it does not (always) take requests: shadowed, 503, a tcp service.
    var status: String
  }

  /// Two routes claiming one host and prefix, as `route ls --json` prints it.
  struct Conflict: Sendable, Hashable, Codable {
    /// The host (or `any host`) and prefix.
    var claim: String
    /// The route that holds it (its name sorts first).
    var winner: String
    /// The route left out for it.
    var loser: String
  }

  /// An entry that is not a valid route.
  typealias Invalid = NodeSnapshot.InvalidEntry

  /// What `route ls --json` prints.
  struct Document: Sendable, Codable {
    /// The etcd revision everything was read at.
    var revision: Int64
    /// The valid routes, by name.
    var routes: [Item]
    /// Routes that claim what another holds.
    var conflicts: [Conflict]
    /// Entries under `/switchyard/routes/` that are not valid routes.
    var invalid: [Invalid]
  }

  /// The etcd revision everything was read at.
  let revision: Int64
  /// The valid routes, by name.
  let routes: [Route]
  /// The entries that are not valid routes, by key.
  let invalid: [RegistrationError]
  /// Valid registrations per service.
  let instanceCounts: [ServiceName: Int]
  /// The services whose valid settings say `tcp`: HTTP routes cannot reach them.
  let tcpServices: Set<ServiceName>
  /// The routes as every node matches them (conflicts resolved the same way everywhere).
  let table: RouteTable

  /// Builds the listing from the entries under `/switchyard/routes/`, `/services/` and
  /// `/switchyard/services/`.
  init(revision: Int64, routeEntries: [KeyValue], registrationEntries: [KeyValue], settingsEntries: [KeyValue]) {
    var routes: [Route] = []
    var invalid: [RegistrationError] = []
    for entry in routeEntries {
      do { routes.append(try Route.parse(key: entry.key, value: entry.value, modRevision: entry.modRevision)) } catch {
        invalid.append(error)
      }
    }
    var tcpServices: Set<ServiceName> = []
    for entry in settingsEntries {
      if let settings = try? ServiceSettings.parse(key: entry.key, value: entry.value), settings.mode == .tcp {
        tcpServices.insert(settings.service)
      }
    }
    self.revision = revision
    self.routes = routes.sorted { $0.name < $1.name }
    self.invalid = invalid.sorted { ($0.key ?? "") < ($1.key ?? "") }
    instanceCounts = RegistrationCounts(registrationEntries).byService
    self.tcpServices = tcpServices
    table = RouteTable(routes: routes, httpBackends: [:], tcpServices: tcpServices)
  }

  /// Reads the three prefixes at `revision` (0: the latest, then every read at the first one's revision).
  static func read(from client: EtcdClient, revision: Int64 = 0) async throws -> RouteListing {
    let routes = try await client.getPaginated(.prefix(Route.root), options: GetOptions(revision: revision))
    let atRevision = GetOptions(revision: routes.header.revision)
    let registrations = try await client.getPaginated(.prefix(RegistrationKey.root), options: atRevision)
    let settings = try await client.getPaginated(.prefix(ServiceSettings.root), options: atRevision)
    return RouteListing(
      revision: routes.header.revision, routeEntries: routes.kvs, registrationEntries: registrations.kvs,
      settingsEntries: settings.kvs)
  }

  /// `api.example.com,*.example.com /api (strip)`, `* /`: what a route matches.
  static func summary(of route: Route) -> String {
    hostsText(route) + " " + route.pathPrefix + (route.stripPrefix ? " (strip)" : "")
  }

  /// `redirect,hsts=31536000+subdomains,acme`, or `-` without TLS options.
  static func tlsText(_ route: Route) -> String {
    var parts: [String] = []
    if route.redirectHTTPS { parts.append("redirect") }
    if let maxAge = route.hstsMaxAge {
      parts.append("hsts=\(maxAge)" + (route.hstsIncludeSubdomains ? "+subdomains" : ""))
    }
    if route.acme { parts.append("acme") }
    return parts.isEmpty ? "-" : parts.joined(separator: ",")
  }

  private static func hostsText(_ route: Route) -> String {
    route.hosts.isEmpty ? "*" : route.hosts.map(\.text).joined(separator: ",")
  }

  /// `ok`, or what keeps `route` from taking (all of) its requests: a tcp service, another route that
  /// holds what it claims, no instance (503).
  func status(of route: Route) -> String {
    if tcpServices.contains(route.service) { return "unused: \(route.service) is a tcp service" }
    var problems: [String] = []
    let lost = table.conflicts.filter { $0.loser == route.name }
    if !lost.isEmpty {
      let winners = Set(lost.map(\.winner)).sorted().map(\.rawValue).joined(separator: ",")
      problems.append(
        lost.count >= max(1, route.hosts.count) ? "shadowed by \(winners)" : "partly shadowed by \(winners)")
    }
    if (instanceCounts[route.service] ?? 0) == 0 { problems.append("503: no instances") }
    return problems.isEmpty ? "ok" : problems.joined(separator: "; ")
  }

  /// The listing as `route ls --json` prints it.
  var document: Document {
    Document(
      revision: revision,
      routes: routes.map { route in
        Item(
          name: route.name.rawValue, hosts: route.hosts.map(\.text), pathPrefix: route.pathPrefix,
          stripPrefix: route.stripPrefix, redirectHTTPS: route.redirectHTTPS ? true : nil,
          hstsMaxAge: route.hstsMaxAge, hstsIncludeSubdomains: route.hstsIncludeSubdomains ? true : nil,
          acme: route.acme ? true : nil, service: route.service.rawValue,
          instances: instanceCounts[route.service] ?? 0, status: status(of: route))
      },
      conflicts: table.conflicts.map {
        Conflict(claim: $0.claim, winner: $0.winner.rawValue, loser: $0.loser.rawValue)
      },
      invalid: invalid.map { Invalid(key: $0.escapedKey ?? "", reason: $0.withoutKey) }
    )
  }

  /// The listing as `route ls` prints it: a table by name, then conflicts and invalid entries. Every
  /// printed name, host and prefix comes from a validated type; invalid entries are escaped.
  var lines: [String] {
    var lines: [String] = []
    if routes.isEmpty {
      lines.append(
        "No valid routes in etcd (revision \(revision)): every request goes to each node's default service.")
    } else {
      lines.append("Routes in etcd (revision \(revision)):")
      // The TLS column only when a route has a TLS option, so listings without any stay as they were.
      let showTLS = routes.contains { Self.tlsText($0) != "-" }
      var rows = [
        ["NAME", "HOSTS", "PREFIX", "STRIP"] + (showTLS ? ["TLS"] : []) + ["SERVICE", "INSTANCES", "STATUS"]
      ]
      for route in routes {
        rows.append(
          [route.name.rawValue, Self.hostsText(route), route.pathPrefix, route.stripPrefix ? "yes" : "no"]
            + (showTLS ? [Self.tlsText(route)] : []) + [
              route.service.rawValue, String(instanceCounts[route.service] ?? 0), status(of: route),
            ])
      }
      lines += alignedColumns(rows)
    }
    if !table.conflicts.isEmpty {
      lines.append("")
      lines.append("Conflicts (resolved the same way on every node):")
      lines += table.conflicts.map { "  \($0)" }
    }
    if !invalid.isEmpty {
      lines.append("")
      lines.append("Invalid entries (skipped; a node keeps the last valid route of that name it read):")
      lines += invalid.map { "  \($0.escapedKey ?? "?"): \($0.withoutKey)" }
    }
    return lines
  }
}
