import ArgumentParser
import EtcdClient
import Foundation
import SwitchyardModel
import SwitchyardReconcile

/// `switchyard route …`: the host and path routes in etcd, `/switchyard/routes/<name>`.
struct RouteCommand: AsyncParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "route",
    abstract: "Show and change the host and path routes in etcd (/switchyard/routes/<name>).",
    discussion: """
      A request goes to the route of an exact host before one of a wildcard host (*.example.com, one label) \
      before one without hosts, and within each to the longest path prefix; a request that matches no route \
      goes to each node's default service. When two routes claim the same host and prefix, the one whose name \
      sorts first holds it, on every node, and `route ls` shows the other as shadowed. Plain etcdctl works \
      too: the value is JSON, {"hosts":["api.example.com"],"path_prefix":"/api","service":"api"}.
      """,
    subcommands: [RouteSetCommand.self, RouteRemoveCommand.self, RouteListCommand.self]
  )
}

/// `switchyard route set NAME --service SVC [--host HOST]... [--path-prefix PREFIX] [--strip-prefix]
/// [--redirect-https] [--hsts-max-age SECONDS [--hsts-include-subdomains]] [--acme]`.
struct RouteSetCommand: OperatorCommand {
  static let configuration = CommandConfiguration(
    commandName: "set",
    abstract: "Create or replace a route: requests for these hosts and path prefix go to a service.",
    discussion: """
      Everything is validated before anything is written. A route to a service without instances is \
      accepted; it answers 503 until the service registers.
      """
  )

  @Argument(help: "The route's name: letters, digits, -, _ and . (its key is /switchyard/routes/<name>).")
  var name: String
  @Option(help: "The service that takes the requests.") var service: String
  @Option(
    name: .customLong("host"),
    help:
      "A host the route matches: api.example.com, or *.example.com for any one label in front. Repeat for more; none: any host."
  )
  var hosts: [String] = []
  @Option(
    name: .customLong("path-prefix"),
    help: "The path prefix it matches, whole segments only (/api matches /api and /api/x, not /apix).")
  var pathPrefix = "/"
  @Flag(
    name: .customLong("strip-prefix"),
    help: "Remove the prefix before the request goes on (/api/users → /users).")
  var stripPrefix = false
  @Flag(
    name: .customLong("redirect-https"),
    help: "Answer plain HTTP requests with a 308 to the same host, path and query over HTTPS (nodes with HTTPS).")
  var redirectHTTPS = false
  @Option(
    name: .customLong("hsts-max-age"),
    help: "Send Strict-Transport-Security with this max-age (seconds, 0-63072000) on HTTPS answers, never on HTTP.")
  var hstsMaxAge: Int?
  @Flag(
    name: .customLong("hsts-include-subdomains"),
    help: "Add includeSubDomains to the HSTS header (needs --hsts-max-age).")
  var hstsIncludeSubdomains = false
  @Flag(
    name: .customLong("acme"),
    help: "Have the cluster obtain and renew a certificate for the route's hosts by ACME HTTP-01 (exact hosts only).")
  var acme = false
  @OptionGroup var etcd: EtcdOptions

  func validate() throws { _ = try route() }

  /// The route the arguments describe, validated by the model; errors name the flag.
  func route() throws -> Route {
    let routeName: RouteName
    do { routeName = try RouteName(validating: name) } catch { throw ValidationError("NAME: \(error.reason)") }
    let serviceName: ServiceName
    do { serviceName = try ServiceName(validating: service) } catch {
      throw ValidationError("--service: \(error.reason)")
    }
    var patterns: [HostPattern] = []
    for host in hosts {
      do { patterns.append(try HostPattern(validating: host)) } catch {
        throw ValidationError("--host \"\(RegistrationError.escape(host, limit: 64))\": \(error.reason)")
      }
    }
    let route: Route
    do {
      route = try Route(
        name: routeName, service: serviceName, hosts: patterns, pathPrefix: pathPrefix, stripPrefix: stripPrefix,
        redirectHTTPS: redirectHTTPS, hstsMaxAge: hstsMaxAge, hstsIncludeSubdomains: hstsIncludeSubdomains, acme: acme)
    } catch {
      let flag =
        switch error.field {
        case "hosts": "--host"
        case "hsts_max_age": "--hsts-max-age"
        case "hsts_include_subdomains": "--hsts-include-subdomains"
        case "acme": "--acme"
        default: "--path-prefix"
        }
      throw ValidationError("\(flag): \(error.reason)")
    }
    if stripPrefix && !route.stripPrefix {
      throw ValidationError("--strip-prefix: the path prefix \"/\" has nothing to strip; give --path-prefix too")
    }
    return route
  }

  /// Writes the route and says what it wrote, and what keeps it from taking requests, if anything.
  func execute(client: EtcdClient) async throws -> [String] {
    let route = try route()
    let written = try await client.put(route.path, value: route.encoded(), options: PutOptions(prevKV: true))
    let revision = written.header.revision
    let listing = try await RouteListing.read(from: client, revision: revision)
    var lines = [
      "route \(route.name) \(written.prevKV == nil ? "created" : "replaced") at etcd revision \(revision):",
      "  \(route.path) \(String(decoding: route.encoded(), as: UTF8.self))",
      "  \(RouteListing.summary(of: route)) -> \(route.service)",
    ]
    if listing.tcpServices.contains(route.service) {
      lines.append(
        "note: service \(route.service) runs in tcp mode on a port of its own; HTTP routes cannot reach it, "
          + "so the nodes leave this route out")
    } else if (listing.instanceCounts[route.service] ?? 0) == 0 {
      lines.append(
        "note: service \(route.service) has no registered instance; the route answers 503 until one registers")
    }
    for conflict in listing.table.conflicts where conflict.loser == route.name || conflict.winner == route.name {
      lines.append("note: \(conflict)")
    }
    return lines
  }
}

/// `switchyard route rm NAME`.
struct RouteRemoveCommand: OperatorCommand {
  static let configuration = CommandConfiguration(
    commandName: "rm",
    abstract: "Remove a route; its requests go to the next route that matches, or the default service.",
    aliases: ["remove"]
  )

  @Argument(help: "The route's name.") var name: String
  @OptionGroup var etcd: EtcdOptions

  func validate() throws { _ = try routeName() }

  /// The name, validated.
  func routeName() throws -> RouteName {
    do { return try RouteName(validating: name) } catch { throw ValidationError("NAME: \(error.reason)") }
  }

  /// Deletes the route and says whether there was one.
  func execute(client: EtcdClient) async throws -> [String] {
    let name = try routeName()
    let deleted = try await client.delete(.key(Route.path(for: name)), prevKV: true)
    guard let previous = deleted.prevKVs.first else {
      return ["route \(name): there was none; nothing removed (etcd revision \(deleted.header.revision))"]
    }
    let was: String
    do {
      let route = try Route.parse(key: previous.key, value: previous.value)
      was = "\(RouteListing.summary(of: route)) -> \(route.service)"
    } catch {
      was = "an invalid entry (\(error.withoutKey))"
    }
    return ["route \(name) removed at etcd revision \(deleted.header.revision); it was \(was)"]
  }
}

/// `switchyard route ls [--json]`.
struct RouteListCommand: OperatorCommand {
  static let configuration = CommandConfiguration(
    commandName: "ls",
    abstract: "List the routes in etcd with their service's instance count, conflicts and invalid entries.",
    aliases: ["list"]
  )

  @Flag(help: "Print JSON.") var json = false
  @OptionGroup var etcd: EtcdOptions

  /// The listing, as text lines or one JSON document.
  func execute(client: EtcdClient) async throws -> [String] {
    let listing = try await RouteListing.read(from: client)
    return json ? [try operatorJSON(listing.document)] : listing.lines
  }
}

// MARK: - Shared by the operator commands

/// A failure of an operator command that is not about its arguments: printed as `error: …`, exit status 1.
struct OperatorError: Error, CustomStringConvertible {
  /// What went wrong and what to do, in one line.
  var description: String

  /// Creates an error.
  init(_ description: String) { self.description = description }
}

/// A command that reads or writes routes or service settings: it connects with the usual etcd options (as
/// the operator user in a secure local cluster when they name no endpoint or credential), runs
/// ``execute(client:)`` and prints the lines it returns. An ``OperatorError`` or a ``ValidationError`` it
/// throws is printed as `error: …` and ends the command with status 1.
protocol OperatorCommand: AsyncParsableCommand {
  var etcd: EtcdOptions { get }
  /// What the command does with a connected client; the lines to print.
  func execute(client: EtcdClient) async throws -> [String]
}

extension OperatorCommand {
  func run() async throws {
    let lines: [String]
    do {
      lines = try await etcd.withClient(localCluster: .operator) { client in try await execute(client: client) }
    } catch let error as OperatorError {
      FileHandle.standardError.write(Data("error: \(error)\n".utf8))
      throw ExitCode.failure
    } catch let error as ValidationError {
      FileHandle.standardError.write(Data("error: \(error.message)\n".utf8))
      throw ExitCode.failure
    }
    for line in lines { print(line) }
  }
}

/// `value` as pretty JSON with sorted keys.
func operatorJSON(_ value: some Encodable) throws -> String {
  let encoder = JSONEncoder()
  encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
  return String(decoding: try encoder.encode(value), as: UTF8.self)
}

/// Rows as lines, each column padded to its widest cell and two spaces apart (the last is not padded).
func alignedColumns(_ rows: [[String]], indent: String = "") -> [String] {
  let columns = rows.map(\.count).max() ?? 0
  let widths = (0..<columns).map { column in rows.map { column < $0.count ? $0[column].count : 0 }.max() ?? 0 }
  return rows.map { row in
    let cells = row.enumerated().map { column, cell in
      column == row.count - 1 ? cell : cell.padding(toLength: widths[column] + 2, withPad: " ", startingAt: 0)
    }
    return indent + cells.joined()
  }
}

extension RegistrationError {
  /// The error without its key, for a line that names the key already.
  var withoutKey: String {
    var copy = self
    copy.key = nil
    return copy.description
  }
}

/// The valid registrations under `/services/` by service, and the invalid entries.
struct RegistrationCounts: Sendable {
  /// Every valid instance, sorted by key.
  let instances: [ServiceInstance]
  /// The entries that are not valid registrations.
  let invalid: [RegistrationError]
  /// Valid instances per service.
  let byService: [ServiceName: Int]

  /// Parses a read of `/services/` (or of one service's prefix).
  init(_ entries: [KeyValue]) {
    (instances, invalid) = ServiceInstance.parseAll(entries.map { ($0.key, $0.value, $0.modRevision) })
    byService = Dictionary(grouping: instances, by: \.key.service).mapValues(\.count)
  }
}
