import ArgumentParser
import EtcdClient
import Foundation
import Logging
import ServiceLifecycle
import SwitchyardACME
import SwitchyardAgent
import SwitchyardController
import SwitchyardModel
import SwitchyardReconcile

/// `switchyard controller`: one load-balancer node, a controller that keeps its own HAProxy in step with etcd.
struct ControllerCommand: AsyncParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "controller",
    abstract: "Run a load-balancer node: a controller that keeps its HAProxy in step with the registrations in etcd.",
    discussion: """
      The controller renders DIR/haproxy.cfg from /services/<service>/<id> in etcd, runs HAProxy in \
      master-worker mode with its sockets in DIR, and applies server changes through HAProxy's Runtime API \
      (a seamless reload only for structural changes). Admin endpoints: /healthz, /readyz, /metrics, /state. \
      SIGTERM or SIGINT stops the controller and, unless --leave-haproxy-running is given, its HAProxy.
      """
  )

  @Option(name: .customLong("node-id"), help: "This node's name, such as lb1 (letters, digits, -, _, .).")
  var nodeID: String

  @OptionGroup var etcd: EtcdOptions

  @OptionGroup(title: "HTTPS") var edgeTLS: EdgeTLSOptions

  @Option(help: "Where HAProxy accepts client traffic, host:port.")
  var listen: String = "127.0.0.1:8001"

  @Option(help: "Where HAProxy serves its stats page, host:port. Loopback by default.")
  var stats: String = "127.0.0.1:8401"

  @Option(
    name: .customLong("stats-auth"),
    help: ArgumentHelp(
      "Protect the stats page with HTTP basic authentication: USER:PASSWORDFILE.",
      discussion: """
        The password is the first line of PASSWORDFILE; haproxy.cfg holds only its SHA-512 crypt hash. \
        The user name holds only letters, digits, ., _, - and @.
        """,
      valueName: "user:password-file"
    )
  )
  var statsAuth: String?

  @Option(help: "Where the controller serves /healthz, /readyz, /metrics and /state, host:port. Loopback by default.")
  var admin: String = "127.0.0.1:9101"

  @Option(
    name: .customLong("admin-tls-cert"),
    help: "PEM certificate (then any intermediates) to serve the admin endpoints over HTTPS; needs --admin-tls-key.",
    completion: .file()
  )
  var adminTLSCertificate: String?

  @Option(
    name: .customLong("admin-tls-key"),
    help: "PEM private key of --admin-tls-cert.",
    completion: .file()
  )
  var adminTLSKey: String?

  @Option(
    name: .customLong("admin-url"),
    help: ArgumentHelp(
      "The admin URL other hosts reach this node at, announced in etcd (http(s)://host:port).",
      discussion: "Default: http://<--admin> (https with --admin-tls-cert); needed when --admin is 0.0.0.0 or [::].",
      valueName: "url"
    )
  )
  var adminURL: String?

  @Option(
    name: .customLong("dashboard-auth"),
    help: ArgumentHelp(
      "Ask for a login on the dashboard (/, /api/…): USER:PASSWORDFILE, HTTP basic authentication.",
      discussion: """
        The password is the first line of PASSWORDFILE, read at start. Serve the admin endpoints over TLS \
        (--admin-tls-cert) when they are reached from elsewhere: basic authentication sends the password in clear.
        """,
      valueName: "user:password-file"
    )
  )
  var dashboardAuth: String?

  @Option(
    name: .customLong("admin-cacert"),
    help: ArgumentHelp(
      "PEM CA that signs the other nodes' admin certificates, for the dashboard's requests to https admin URLs.",
      discussion: "Default: --cacert (the etcd CA), else the system's trusted roots.",
      valueName: "file"
    ),
    completion: .file()
  )
  var adminCACertificate: String?

  @Option(
    name: .customLong("state-dir"),
    help: "Private directory (created with mode 0700) for haproxy.cfg, the sockets, the pid file and HAProxy's log.",
    completion: .directory
  )
  var stateDir: String

  @Option(
    name: .customLong("service"),
    help: """
      Serve only this service (repeatable). Default: every service with registrations in etcd. The first \
      is the default service unless --default-service says otherwise.
      """
  )
  var services: [String] = []

  @Option(
    name: .customLong("default-service"),
    help: "Where requests that match no route go (default: backend, as in the original)."
  )
  var defaultService: String?

  @Flag(
    name: .customLong("no-default-service"),
    help: "Answer requests that match no route with a 404 instead of sending them to a default service."
  )
  var noDefaultService = false

  @Option(name: .customLong("quiet-window-ms"), help: "Coalescing: apply once watch events pause this long.")
  var quietWindowMilliseconds: Int = 0

  @Option(name: .customLong("max-wait-ms"), help: "Coalescing: never hold a change back longer than this.")
  var maxWaitMilliseconds: Int = 1000

  @Option(
    name: .customLong("resync-interval"),
    help: """
      Seconds between full passes (read all of etcd, compare every backend) as a safety net; in between, \
      a change costs work only for the services it touches.
      """
  )
  var resyncInterval: Int = 300

  @Option(
    name: .customLong("drain-timeout"),
    help: "Seconds a removed server may keep its connections before they are closed."
  )
  var drainTimeout: Double = 30

  @Option(name: .customLong("hard-stop-after"), help: "Seconds an old HAProxy worker may serve after a reload.")
  var hardStopAfter: Int = 30

  @Flag(
    name: .customLong("leave-haproxy-running"),
    help: "On SIGTERM/SIGINT, stop the controller but leave HAProxy serving (a restarted controller adopts it)."
  )
  var leaveHAProxyRunning = false

  @Option(
    name: .customLong("update-strategy"),
    help:
      "How server changes reach HAProxy: runtime (Runtime API; reload only for structure) or reload (rewrite and reload on every change, the original demo's way, for comparisons)."
  )
  var updateStrategy: String = "runtime"

  @Option(name: .customLong("haproxy"), help: "The HAProxy executable.")
  var haproxy: String = "haproxy"

  @Option(
    name: .customLong("access-log"),
    help: ArgumentHelp(
      "HAProxy's request log: stdout, a file, or off.",
      discussion: """
        One line per HTTP request and per TCP connection of a tcp service. A file is appended to, and opened \
        again when it is moved away or removed (logrotate) and on SIGHUP.
        """,
      valueName: "stdout|file|off"
    ),
    completion: .file()
  )
  var accessLog: String = "off"

  @Option(
    name: .customLong("access-log-format"),
    help: "The access log's lines: text (key=value pairs) or json (one object per line)."
  )
  var accessLogFormat: String = "text"

  @Option(
    name: .customLong("backend-ca"),
    help: "PEM file of the CA certificates that backends registered with TLS must present a certificate from.",
    completion: .file())
  var backendCA: String?

  @OptionGroup(title: "Server health") var health: ServerHealthOptions

  @OptionGroup var logging: LoggingOptions

  func validate() throws {
    _ = try makeConfiguration()
    _ = try makeAdminTLS()
    _ = try makeAdminURL()
    _ = try makeDashboardLogin()
    _ = try makeAdminCACertificate()
  }

  /// The admin server's certificate and key, or `nil` without `--admin-tls-cert`.
  func makeAdminTLS() throws -> AdminTLS? {
    switch (adminTLSCertificate, adminTLSKey) {
    case (nil, nil): return nil
    case (.some, nil): throw ValidationError("--admin-tls-cert needs --admin-tls-key")
    case (nil, .some): throw ValidationError("--admin-tls-key needs --admin-tls-cert")
    case (.some(let certificate), .some(let key)):
      do {
        return try AdminTLS(certificatePath: certificate, keyPath: key)
      } catch {
        throw ValidationError("\(error.file == .key ? "--admin-tls-key" : "--admin-tls-cert"): \(error)")
      }
    }
  }

  /// The stats page's user and password hash from `--stats-auth`, or `nil` without it. The hash of the
  /// last configuration in `stateDirectory` is kept when it matches the password, so a restarted controller
  /// renders the same file and its HAProxy needs no reload.
  func makeStatsAuth(stateDirectory: String) throws -> NodeSettings.StatsAuth? {
    guard let statsAuth else { return nil }
    let (user, passwordFile) = try Self.parseStatsAuth(statsAuth)
    let password = try readSecretFile(passwordFile, flag: "--stats-auth")
    let hash: String
    if let previous = Self.previousHash(user: user, stateDirectory: stateDirectory),
      PasswordHash.matches(password, hash: previous)
    {
      hash = previous
    } else {
      do {
        hash = try PasswordHash.sha512(password)
      } catch {
        throw ValidationError("--stats-auth: \(error)")
      }
    }
    do {
      return try NodeSettings.StatsAuth(user: user, passwordHash: hash)
    } catch {
      throw ValidationError("--stats-auth: \(error.reason)")
    }
  }

  /// Splits `USER:PASSWORDFILE` and checks the user name.
  static func parseStatsAuth(_ text: String) throws -> (user: String, passwordFile: String) {
    try parseLogin(text, flag: "--stats-auth", userProblem: NodeSettings.StatsAuth.userProblem)
  }

  /// Splits a `USER:PASSWORDFILE` login flag (`--stats-auth`, `--dashboard-auth`) and checks the user name
  /// with `userProblem`; errors name `flag`.
  static func parseLogin(
    _ text: String, flag: String, userProblem: (String) -> String?
  ) throws -> (user: String, passwordFile: String) {
    guard let colon = text.firstIndex(of: ":") else {
      throw ValidationError("\(flag): expected USER:PASSWORDFILE (the password is read from the file)")
    }
    let user = String(text[..<colon])
    let passwordFile = String(text[text.index(after: colon)...])
    if let problem = userProblem(user) { throw ValidationError("\(flag): \(problem)") }
    guard !passwordFile.isEmpty else { throw ValidationError("\(flag): the password file is missing after \":\"") }
    return (user, passwordFile)
  }

  /// The hash for `user` in the configuration a previous run left in `stateDirectory`.
  private static func previousHash(user: String, stateDirectory: String) -> String? {
    guard let text = try? String(contentsOfFile: stateDirectory + "/haproxy.cfg", encoding: .utf8) else { return nil }
    return ConfigRenderer.statsPasswordHash(of: user, in: text)
  }

  /// Where the access log goes and how it is written, or `nil` with `--access-log off`.
  func makeAccessLog() throws -> (destination: AccessLogDestination, style: AccessLogStyle)? {
    guard let style = AccessLogStyle(rawValue: accessLogFormat) else {
      throw ValidationError("--access-log-format must be text or json, not \"\(accessLogFormat)\"")
    }
    switch accessLog {
    case "off": return nil
    case "stdout": return (.standardOutput, style)
    case "": throw ValidationError("--access-log must be stdout, a file or off")
    default: return (.file(URL(fileURLWithPath: accessLog).standardizedFileURL.path), style)
    }
  }

  func makeConfiguration() throws -> ControllerConfiguration {
    let listenAddress = try parseHostPort(listen, flag: "--listen")
    let statsAddress = try parseHostPort(stats, flag: "--stats")
    let adminAddress = try parseHostPort(admin, flag: "--admin")
    if adminAddress == listenAddress || adminAddress == statsAddress {
      throw ValidationError("--admin: \(adminAddress) is already used by --listen or --stats")
    }
    let serviceNames: [ServiceName]
    do {
      serviceNames = try services.map { try ServiceName(validating: $0) }
    } catch let error as RegistrationError {
      throw ValidationError("--service: \(error.reason)")
    }
    if noDefaultService && defaultService != nil {
      throw ValidationError("--default-service and --no-default-service exclude each other")
    }
    let defaultServiceName: ServiceName?
    do {
      defaultServiceName =
        noDefaultService
        ? nil : try defaultService.map { try ServiceName(validating: $0) } ?? serviceNames.first ?? .backend
    } catch let error as RegistrationError {
      throw ValidationError("--default-service: \(error.reason)")
    }
    guard (0...60_000).contains(quietWindowMilliseconds) else {
      throw ValidationError("--quiet-window-ms must be from 0 to 60000")
    }
    guard (quietWindowMilliseconds...600_000).contains(maxWaitMilliseconds) else {
      throw ValidationError("--max-wait-ms must be at least --quiet-window-ms and at most 600000")
    }
    guard (1...86_400).contains(resyncInterval) else {
      throw ValidationError("--resync-interval must be from 1 to 86400 seconds")
    }
    guard drainTimeout.isFinite, (0...3600).contains(drainTimeout) else {
      throw ValidationError("--drain-timeout must be from 0 to 3600 seconds")
    }
    guard (1...3600).contains(hardStopAfter) else { throw ValidationError("--hard-stop-after must be 1 to 3600") }
    guard !stateDir.isEmpty else { throw ValidationError("--state-dir must not be empty") }
    let directory = URL(fileURLWithPath: stateDir).standardizedFileURL.path
    let statsAuthentication = try makeStatsAuth(stateDirectory: directory)
    guard let serverTimeout = health.serverTimeoutDuration else {
      throw ValidationError("--server-timeout must be a number of seconds")
    }
    let accessLogSocket = try makeAccessLog() == nil ? nil : directory + "/access.sock"
    let backendCAPath = try makeBackendCAPath()
    let httpsListen = try edgeTLS.httpsListenAddress()
    let node: NodeSettings
    do {
      node = try NodeSettings(
        nodeID: nodeID,
        listen: listenAddress,
        httpsListen: httpsListen,
        stats: statsAddress,
        statsAuth: statsAuthentication,
        serviceFilter: serviceNames.isEmpty ? nil : serviceNames,
        defaultService: defaultServiceName,
        adminSocketPath: directory + "/admin.sock",
        reservedPorts: [adminAddress.port],
        healthCheck: health.healthCheck,
        hardStopAfter: .seconds(hardStopAfter),
        retries: health.retries,
        serverTimeout: serverTimeout,
        accessLogSocketPath: accessLogSocket,
        backendCAPath: backendCAPath
      )
    } catch {
      let flag =
        switch error.setting {
        case "node id": "--node-id"
        case "admin socket path": "--state-dir"
        case "stats": "--stats"
        case "https listen": "--listen-https"
        case "stats auth user", "stats auth password hash": "--stats-auth"
        case "services": "--service"
        case "default service": "--default-service"
        case "routes map path", "access log socket path": "--state-dir"
        case "backend CA path": "--backend-ca"
        default: ServerHealthOptions.flag(of: error.setting) ?? error.setting
        }
      throw ValidationError("\(flag): \(error.reason)")
    }
    guard let strategy = UpdateStrategy(rawValue: updateStrategy) else {
      throw ValidationError("--update-strategy must be runtime or reload, not \"\(updateStrategy)\"")
    }
    let tls = try edgeTLS.makeSettings()
    var configuration = ControllerConfiguration(
      node: node,
      stateDirectory: directory,
      coalescing: CoalescingPolicy(
        quietWindow: .milliseconds(quietWindowMilliseconds),
        maxWait: .milliseconds(maxWaitMilliseconds)
      ),
      removal: Planner.RemovalPolicy(drainTimeout: .milliseconds(Int64(drainTimeout * 1000))),
      leaveHAProxyRunning: leaveHAProxyRunning,
      haproxyExecutable: haproxy,
      updateStrategy: strategy,
      resyncInterval: .seconds(resyncInterval)
    )
    configuration.tls = tls
    return configuration
  }

  func run() async throws {
    var etcdConfiguration = try etcd.makeConfiguration()
    // HAProxy, started later, inherits this environment: the etcd password must not be in it.
    unsetenv(EtcdOptions.passwordVariable)
    let configuration = try makeConfiguration()
    let adminAddress = try parseHostPort(admin, flag: "--admin")
    let adminTLS = try makeAdminTLS()
    let announcedAdminURL = try makeAdminURL()
    var logger = logging.makeLogger(label: "switchyard.controller")
    logger[metadataKey: "node"] = "\(nodeID)"
    for warning in ExposureCheck.warnings(
      admin: adminAddress,
      adminTLS: adminTLS != nil,
      stats: configuration.node.stats,
      statsAuth: configuration.node.statsAuth != nil
    ) {
      logger.warning("\(warning.message)", metadata: warning.metadata)
    }
    // A quiet watch's member is probed every second, so a hung member (a frozen process) loses the
    // watch within about two seconds and changes keep reaching HAProxy.
    etcdConfiguration.watchProgressInterval = min(configuration.watchProgressInterval, .seconds(1))
    let client = try EtcdClient(configuration: etcdConfiguration, logger: logger)
    let status = ControllerStatus(node: nodeID, watchStaleAfter: configuration.watchStaleAfter)
    let metrics = ControllerMetrics()
    let controller: Controller
    do {
      controller = try Controller(
        configuration: configuration,
        client: client,
        status: status,
        metrics: metrics,
        logger: logger
      )
    } catch {
      throw ValidationError("--state-dir: \(error)")
    }
    // Bound before HAProxy starts, so that its first lines find the socket.
    var accessLogService: [ServiceGroupConfiguration.ServiceConfiguration] = []
    if let (destination, style) = try makeAccessLog(), let socket = configuration.node.accessLogSocketPath {
      do {
        let receiver = try AccessLogReceiver(
          socketPath: socket, destination: destination, style: style, node: nodeID, metrics: metrics, logger: logger)
        accessLogService = [.init(service: receiver)]
      } catch {
        throw ValidationError("--access-log: \(error)")
      }
    }
    let dashboard = try makeDashboard(
      client: client, configuration: configuration, adminURL: announcedAdminURL, status: status, logger: logger)
    let adminServer = try AdminServer.makeApplication(
      host: adminAddress.address.text,
      port: adminAddress.port,
      tls: adminTLS,
      status: status,
      metrics: metrics,
      dashboard: dashboard,
      logger: logger
    )
    let acme = try edgeTLS.makeACME(nodeID: nodeID, clusterKey: configuration.tls.clusterKey).map { settings in
      let coordinator = ACMECoordinator(configuration: settings, etcd: client, logger: logger)
      status.showACME { coordinator.report }
      return coordinator
    }
    let announcer = try makeAnnouncer(
      client: client, configuration: configuration, adminURL: announcedAdminURL, status: status, logger: logger)
    // Shutdown runs in reverse: the node's key leaves etcd, then the admin server stops, then the controller
    // (which stops HAProxy), then etcd.
    let group = ServiceGroup(
      configuration: .init(
        // The access log stops last, after HAProxy, and so receives the last requests' lines.
        services: accessLogService + [
          .init(service: EtcdClientService(client: client)),
          .init(service: controller),
          .init(service: adminServer),
          .init(service: announcer),
        ] + (acme.map { [.init(service: $0)] } ?? []) + [
          // Stopped first: its event streams end, so the admin server can stop.
          .init(service: dashboard)
        ],
        gracefulShutdownSignals: [.sigterm, .sigint],
        logger: logger
      )
    )
    try await group.run()
  }
}
