import SwitchyardModel

/// A rendered HAProxy configuration.
public struct RenderedConfig: Sendable, Hashable {
  /// The whole file.
  public let text: String
  /// The part that only a reload can change: the file without the servers that the Runtime API
  /// manages. When it differs from what HAProxy runs, HAProxy must reload.
  public let structure: String
  /// The routes map file (``RouteTable/mapText``), which the configuration names by its path.
  public let routesMap: String

  /// Creates a rendered configuration.
  public init(text: String, structure: String, routesMap: String = "") {
    self.text = text
    self.structure = structure
    self.routesMap = routesMap
  }
}

/// Renders a node's HAProxy configuration. Deterministic: the same state and settings give the same
/// bytes, on any machine.
///
/// Everything printed comes from validated types: settings from `NodeSettings`, names from
/// `ServiceName`/`InstanceID`, addresses, ports, weights and check paths from `Registration`. Their
/// character sets hold no space, quote, `#`, backslash or line break, so no value can end a token, start a
/// comment or add a line.
public enum ConfigRenderer {
  /// Renders `desired` for the node described by `settings`.
  public static func render(_ desired: DesiredState, settings: NodeSettings) -> RenderedConfig {
    let full = lines(desired, settings: settings, includeDynamicServers: true)
    let structure = lines(desired, settings: settings, includeDynamicServers: false)
    return RenderedConfig(
      text: full.joined(separator: "\n") + "\n", structure: structure.joined(separator: "\n") + "\n",
      routesMap: desired.routes.mapText)
  }

  /// The structure of `desired` alone (``RenderedConfig/structure``): what a pass compares with what
  /// HAProxy runs, without the cost of printing every server.
  public static func structure(_ desired: DesiredState, settings: NodeSettings) -> String {
    lines(desired, settings: settings, includeDynamicServers: false).joined(separator: "\n") + "\n"
  }

  /// The keywords after `server <name> <address>` in the config file, and after `add server` in the
  /// Runtime API (which does not apply `default-server` lines): weight, health check, and how soon idle
  /// backend connections are closed (`pool-purge-delay 1s`, HAProxy's default being 5 s): a removed
  /// server can only be deleted once its pooled idle connections are gone.
  public static func serverOptions(weight: Int, policy: BackendPolicy) -> [String] {
    ["weight", String(weight)] + checkOptions(policy: policy) + (policy.maxconn.map { ["maxconn", String($0)] } ?? [])
      + ["pool-purge-delay", "1s"]
  }

  /// What HAProxy 2.6 gives a server read from the file but not one added with `add server`: idle
  /// connections to the backend kept for reuse (`pool-max-conn -1`, no limit). Without it every request
  /// to a runtime-added server opens a new backend connection. Only the `add server` line needs it; the
  /// file's servers have it by default.
  public static let runtimeParityOptions = ["pool-max-conn", "-1"]

  /// The TLS keywords of a server registered with `"tls": true`, the same in the file and after `add
  /// server`: TLS verified against `caFile` (never `verify none`), the health check over TLS too
  /// (`check-ssl`: HAProxy 2.6.12 and 3.0.11 check a server added at runtime in plain text without it,
  /// even with `ssl`; measured), and with a server name, that name as SNI, checked against the
  /// certificate (`verifyhost`) and sent by the check (`check-sni`). Empty for a plain server.
  ///
  /// A TLS server on a node without a CA file (which serves none; ``RegistrationMirror`` reports them) still
  /// gets `verify required` without `ca-file`, which HAProxy refuses: a mistake fails loudly, never unverified.
  public static func tlsOptions(for server: DesiredServer, caFile: String?) -> [String] {
    guard server.tls else { return [] }
    var words = ["ssl", "verify", "required"] + (caFile.map { ["ca-file", $0] } ?? []) + ["check-ssl"]
    if let name = server.tlsServerName {
      words += ["sni", "str(\(name))", "verifyhost", name, "check-sni", name]
    }
    return words
  }

  /// `default-server ca-file <backendCAPath>` in every backend of a node with a backend CA: HAProxy 2.6.12
  /// and 3.0.11 load a CA file only while they read the configuration, and answer `add server … ca-file F`
  /// for an F that no line named with `'ca-file' : unable to load F.` (measured). The line loads it, so a
  /// TLS server can be added at runtime to any backend; servers without `ssl` ignore it.
  static func backendCALines(settings: NodeSettings) -> [String] {
    settings.backendCAPath.map { ["  default-server ca-file \($0)"] } ?? []
  }

  /// The health-check keywords of a server line: active checks and the watching of real traffic. They go
  /// on every server line because `add server` applies no `default-server`.
  ///
  /// Not `on-marked-down shutdown-sessions`: it would end the requests a hung server holds at once, but
  /// it also ends a request caught connecting to a server that just crashed, which a retry would have
  /// saved (measured: one failed request per crash under load).
  static func checkOptions(policy: BackendPolicy) -> [String] {
    let check = policy.healthCheck
    var words = [
      "check", "inter", duration(check.interval), "fastinter", duration(check.fastInterval), "downinter",
      duration(check.downInterval), "rise", String(check.rise), "fall", String(check.fall),
    ]
    if check.errorLimit > 0 {
      // A `tcp` service's traffic is watched at the connection level: layer 7 needs HTTP.
      let layer = policy.mode == .tcp ? "layer4" : "layer7"
      words += ["observe", layer, "error-limit", String(check.errorLimit), "on-error", "sudden-death"]
    }
    return words
  }

  /// The methods whose requests HAProxy may send again to another server (RFC 9110's idempotent ones:
  /// `METH_GET` covers HEAD too). A POST or PATCH is never sent twice.
  public static let retriedMethods = ["METH_GET", "METH_OPTIONS", "METH_TRACE", "METH_PUT", "METH_DELETE"]

  /// A duration as HAProxy writes it: `2s`, or `1500ms` when not whole seconds.
  public static func duration(_ value: Duration) -> String {
    let milliseconds = value.components.seconds * 1000 + value.components.attoseconds / 1_000_000_000_000_000
    return milliseconds % 1000 == 0 ? "\(milliseconds / 1000)s" : "\(milliseconds)ms"
  }

  /// The `userlist` that holds the stats page's user, when ``NodeSettings/statsAuth`` is set.
  public static let statsUserlist = "switchyard_stats"
  /// The password hash of the stats page's `user` in a configuration this renderer wrote, if any.
  public static func statsPasswordHash(of user: String, in config: String) -> String? {
    let prefix = statsUserLinePrefix(user)
    return config.split(separator: "\n").first { $0.hasPrefix(prefix) }.map { String($0.dropFirst(prefix.count)) }
  }

  private static func statsUserLinePrefix(_ user: String) -> String { "  user \(user) password " }

  /// The realm of the stats page's basic authentication, which browsers show when they ask for a password.
  public static let statsRealm = "switchyard"

  private static func lines(_ desired: DesiredState, settings: NodeSettings, includeDynamicServers: Bool) -> [String] {
    var out: [String] = [
      "# HAProxy configuration of Switchyard node \(settings.nodeID).",
      "# Written by the switchyard controller from the registrations in etcd; edits are overwritten.",
      "",
      "global",
      "  node \(settings.nodeID)",
      "  stats socket \(settings.adminSocketPath) mode 600 level admin",
      "  stats timeout 30s",
      "  hard-stop-after \(duration(settings.hardStopAfter))",
      // Each check interval ± up to 5 %: servers that went down together (10,000 behind a closed port)
      // would otherwise be checked in one burst every `downinter`, during which HAProxy 2.6 answered its
      // admin socket up to 16 ms late.
      "  spread-checks 5",
      "",
      "defaults",
      "  mode http",
      // HAProxy 2.6 and 3.0 end a check of a server that accepts but never answers after `timeout
      // connect` (at most `inter`), whatever `timeout check` says: the check timeout bounds both.
      "  timeout connect \(duration(settings.healthCheck.timeout))",
      "  timeout client 30s",
      "  timeout server \(duration(settings.serverTimeout))",
      "  timeout http-request 10s",
      "  timeout http-keep-alive 10s",
      "  timeout check \(duration(settings.healthCheck.timeout))",
      // A request that cannot be sent, gets no answer or an empty one is retried on another server
      // (every retry redispatches); the frontend keeps unsafe methods from being sent twice.
      "  retries \(settings.retries)",
      "  option redispatch 1",
      "  retry-on conn-failure empty-response response-timeout",
      // A request whose client has gone is not sent again, nor kept in a queue.
      "  option abortonclose",
      // On a reload the old worker keeps its idle keep-alive connections until their next request, and
      // answers that one with `Connection: close`: closing them at once races a client that is sending
      // on one (measured: a few failed requests per reload under keep-alive load).
      "  option idle-close-on-response",
      "",
      "frontend http",
      "  bind \(settings.listen)",
    ]
    out += httpsBindLines(settings: settings)
    out += accessLogLines(.http, settings: settings)
    out += [
      "  http-request disable-l7-retry unless \(retriedMethods.joined(separator: " || "))"
    ]
    out += edgeRules(settings: settings)
    out += routingRules(settings: settings)
    out.append("")
    if let auth = settings.statsAuth {
      // HAProxy checks the password with crypt(3); the file holds only its hash.
      out += ["userlist \(statsUserlist)", statsUserLinePrefix(auth.user) + auth.passwordHash, ""]
    }
    out += [
      "frontend stats",
      "  bind \(settings.stats)",
      "  stats enable",
      "  stats uri /",
      "  stats refresh 5s",
      "  stats show-node",
    ]
    // HAProxy's Prometheus exporter; with authentication it asks for the page's credentials.
    if settings.statsAuth != nil {
      out.append(
        "  http-request auth realm \(statsRealm) if { path \(metricsPath) } !{ http_auth(\(statsUserlist)) }")
    }
    out.append("  http-request use-service prometheus-exporter if { path \(metricsPath) }")
    if settings.statsAuth != nil {
      out.append("  stats http-request auth realm \(statsRealm) unless { http_auth(\(statsUserlist)) }")
    }
    for backend in desired.backends {
      let policy = BackendPolicy(settings: backend.settings, node: settings)
      out += ["", "backend \(backend.name)"]
      out += backendLines(backend, policy: policy)
      out += backendCALines(settings: settings)
      var keywords: [Int: String] = [:]
      for server in backend.servers {
        if includeDynamicServers {
          out.append(
            "  " + serverLine(server, policy: policy, caFile: settings.backendCAPath, keywords: &keywords))
        } else if !server.isDynamic {
          // A host-name server is in the structure, but its weight and state are not: the Runtime
          // API changes those on a server from the file as on any other, with no reload.
          out.append("  " + structuralServerLine(server, policy: policy, caFile: settings.backendCAPath))
        }
      }
    }
    // The backend of routes whose service has no backend here: no server, so a 503.
    out += ["", "backend \(RouteTable.unavailableBackend)"]
    out += tcpFrontends(desired, settings: settings)
    return out
  }

  /// The lines of a backend section before its servers. A service without settings gets today's: the
  /// `defaults` section's mode, timeouts and retries.
  static func backendLines(_ backend: DesiredBackend, policy: BackendPolicy) -> [String] {
    var lines: [String] = []
    // A tcp client may half-close its side and still wait for the answer: not an abort there.
    if backend.mode == .tcp { lines += ["mode tcp", "no option abortonclose"] }
    lines += BackendPolicy.balanceLines(backend.balance)
    if policy.checkKind == .http { lines.append("option httpchk GET \(backend.checkPath)") }
    if backend.settings != nil {
      lines += [
        "timeout connect \(duration(policy.connectTimeout))",
        "timeout server \(duration(policy.serverTimeout))",
        "timeout check \(duration(policy.healthCheck.timeout))",
        "retries \(policy.retries)",
      ]
    }
    return lines.map { "  " + $0 }
  }

  /// The HTTP frontend's routing: three lookups in the routes map (exact host, wildcard host, no host;
  /// each the longest path prefix, see ``RouteTable``), the path's prefix stripped when the route says
  /// so, then the backend the route names, else the default service, else a 404.
  static func routingRules(settings: NodeSettings) -> [String] {
    let map = settings.routesMapPath
    var lines = [
      "# Routes: \(map), kept by the controller through the Runtime API (host and path routes in etcd).",
      // The Host header without its port (`[::1]:8001` keeps its brackets), lower-cased.
      "http-request set-var(txn.sy_host) req.hdr(host),lower,regsub(:[0-9]*$,)",
      "http-request set-var(txn.sy_key) path,concat(/)",
      "http-request set-var(txn.sy_route) var(txn.sy_host),concat(,txn.sy_key),map_beg(\(map))",
      "http-request set-var(txn.sy_route) var(txn.sy_host),regsub(^[^.]*,*),concat(,txn.sy_key),map_beg(\(map))"
        + " if !{ var(txn.sy_route) -m found } { var(txn.sy_host) -m found }",
      "http-request set-var(txn.sy_route) var(txn.sy_key),map_beg(\(map)) if !{ var(txn.sy_route) -m found }",
      "http-request set-var(txn.sy_backend) var(txn.sy_route),field(1,:) if { var(txn.sy_route) -m found }",
      "http-request set-var(txn.sy_strip) var(txn.sy_route),field(2,:) if { var(txn.sy_route) -m found }",
    ]
    lines += routeOptionRules(settings: settings)
    // HAProxy 2.6 takes no variable in `bytes()` or `regsub()`: one rule per segment count. The rest of
    // the path keeps a leading `/`, and the query string is left as it is.
    for segments in 1...Route.maxPathSegments {
      lines.append(
        "http-request replace-path ^(?:/[^/]*){\(segments)}/?(.*)$ /\\1 if { var(txn.sy_strip) -m int \(segments) }")
    }
    if settings.defaultService == nil {
      lines.append(
        "http-request return status 404 content-type text/plain string \"\(noRouteBody)\" if !{ var(txn.sy_backend) -m found }"
      )
    }
    lines.append("use_backend %[var(txn.sy_backend)] if { var(txn.sy_backend) -m found }")
    if let service = settings.defaultService { lines.append("default_backend \(service.haproxyBackendName)") }
    return lines.map { "  " + $0 }
  }

  /// Where the stats address serves HAProxy's own Prometheus exporter (per frontend, backend and server:
  /// requests, responses by status class, errors, bytes, queue and response times).
  public static let metricsPath = "/metrics"

  /// A frontend's access log: every request (or TCP connection) as one datagram on the node's access log
  /// socket, in the format ``AccessLogFormat`` reads. A datagram socket never blocks HAProxy: when the
  /// controller does not read, the kernel's queue fills and HAProxy drops the line and counts it (`show
  /// info` DroppedLogs). Nothing without ``NodeSettings/accessLogSocketPath``.
  static func accessLogLines(_ mode: AccessRecord.Mode, settings: NodeSettings) -> [String] {
    guard let socket = settings.accessLogSocketPath else { return [] }
    return [
      "  log unix@\(socket) len \(AccessLogFormat.maxLineLength) format raw local0 info",
      "  log-format \"\(AccessLogFormat.logFormat(mode))\"",
    ]
  }

  /// The body of the 404 a request gets when no route matches and the node has no default service.
  public static let noRouteBody = "no route for this host and path"

  /// One frontend per `tcp` service, on its port at the host of the node's listen address. A port that
  /// the node or a service before it (in the backends' order) uses already is left out
  /// (``DesiredState/tcpPortConflicts(node:)`` reports it).
  static func tcpFrontends(_ desired: DesiredState, settings: NodeSettings) -> [String] {
    var out: [String] = []
    for (backend, port) in desired.tcpListeners(node: settings).listeners {
      let policy = BackendPolicy(settings: backend.settings, node: settings)
      out += [
        "",
        "frontend tcp_\(backend.service.rawValue)",
        "  mode tcp",
        // An HTTP-only option of the defaults section.
        "  no option idle-close-on-response",
        "  bind \(settings.listen.address.hostPort(port))",
      ]
      out += accessLogLines(.tcp, settings: settings)
      out += [
        "  timeout client \(duration(policy.serverTimeout))",
        "  default_backend \(backend.name)",
      ]
    }
    return out
  }

  /// A host-name server as the structure sees it: the server line without weight and state.
  static func structuralServerLine(_ server: DesiredServer, policy: BackendPolicy, caFile: String? = nil) -> String {
    var words = ["server", server.name, server.address.hostPort(server.port)]
    words += checkOptions(policy: policy) + (policy.maxconn.map { ["maxconn", String($0)] } ?? [])
    words += tlsOptions(for: server, caFile: caFile)
    words += ["init-addr", "libc,none"]
    return words.joined(separator: " ")
  }

  /// `server backend-1 127.0.0.1:9001 weight 100 check inter 1s …`. A draining server gets
  /// weight 0 (the config file has no drain state; the controller sets it again after a reload), a
  /// server in maintenance `disabled`, and a server with a host name `init-addr libc,none`.
  static func serverLine(_ server: DesiredServer, policy: BackendPolicy, caFile: String? = nil) -> String {
    var keywords: [Int: String] = [:]
    return serverLine(server, policy: policy, caFile: caFile, keywords: &keywords)
  }

  /// ``serverLine(_:policy:)`` for the servers of one backend, which share `policy`: `keywords` keeps their
  /// rendered keywords by weight, so that a backend of 10,000 servers builds them a few times, not once per
  /// server (the config file is written again every second while changes come).
  static func serverLine(
    _ server: DesiredServer, policy: BackendPolicy, caFile: String? = nil, keywords: inout [Int: String]
  ) -> String {
    let weight = server.state == .drain ? 0 : server.weight
    let options: String
    if let known = keywords[weight] {
      options = known
    } else {
      options = serverOptions(weight: weight, policy: policy).joined(separator: " ")
      keywords[weight] = options
    }
    var line = "server " + server.name + " " + server.address.hostPort(server.port) + " " + options
    if server.tls { line += " " + tlsOptions(for: server, caFile: caFile).joined(separator: " ") }
    // A host name is resolved when HAProxy starts; one that does not resolve leaves that server without
    // an address instead of failing the whole configuration.
    if !server.isDynamic { line += " init-addr libc,none" }
    if server.state == .maint { line += " disabled" }
    return line
  }
}
