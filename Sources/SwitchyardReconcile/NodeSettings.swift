import SwitchyardModel

/// What an operator configures for one load-balancer node: everything in HAProxy's configuration that
/// does not come from etcd.
///
/// Every field is validated when the settings are made, so the renderer can print them as they are.
public struct NodeSettings: Sendable, Hashable {
  /// Health checks of every server, active and passive, tuned so that a server that stops answering is
  /// out of rotation within about two seconds on every node.
  ///
  /// Active: a check every ``interval`` while the server is up, every ``fastInterval`` while it is going
  /// up or down, every ``downInterval`` while it is down; a check that gets no answer within ``timeout``
  /// fails; ``rise`` good checks in a row make a server up, ``fall`` bad ones down. Passive: real traffic is
  /// watched too (`observe layer7`): ``errorLimit`` errors in a row (timeouts, resets, 5xx but 501 and 505)
  /// bring the next check forward and leave one failed check before the server is down
  /// (`on-error sudden-death`); a passing check restores it, so a burst of application errors cannot
  /// eject every server. 0 turns the passive part off.
  ///
  /// A server that stops answering is down after at most about interval + 2 × timeout + fastInterval
  /// (1 + 0.8 + 0.2 s by default): the next check, its timeout, a fast check and its timeout.
  public struct HealthCheck: Sendable, Hashable {
    /// Time between two checks of a server that is up.
    public var interval: Duration
    /// Good checks in a row that make a server up.
    public var rise: Int
    /// Bad checks in a row that make a server down.
    public var fall: Int
    /// How long a check may wait for an answer.
    public var timeout: Duration
    /// Time between two checks of a server going up or down.
    public var fastInterval: Duration
    /// Time between two checks of a server that is down.
    public var downInterval: Duration
    /// Errors in a row on real traffic that count as a failed check; 0 watches no traffic.
    public var errorLimit: Int

    /// Creates health-check settings.
    public init(
      interval: Duration = .seconds(1),
      rise: Int = 2,
      fall: Int = 2,
      timeout: Duration = .milliseconds(400),
      fastInterval: Duration = .milliseconds(200),
      downInterval: Duration = .seconds(2),
      errorLimit: Int = 10
    ) {
      self.interval = interval
      self.rise = rise
      self.fall = fall
      self.timeout = timeout
      self.fastInterval = fastInterval
      self.downInterval = downInterval
      self.errorLimit = errorLimit
    }

    /// The setting that cannot be used and why, or `nil`.
    func problem() -> SettingsError? {
      let durations: [(String, Duration)] = [
        ("health check interval", interval), ("health check timeout", timeout),
        ("health check fast interval", fastInterval), ("health check down interval", downInterval),
      ]
      for (name, value) in durations where value < .milliseconds(100) || value > .seconds(3600) {
        return SettingsError(name, "must be between 100 ms and 1 hour")
      }
      guard timeout <= interval else {
        return SettingsError("health check timeout", "must not be longer than the interval")
      }
      guard (1...100).contains(rise), (1...100).contains(fall) else {
        return SettingsError("health check rise/fall", "must be between 1 and 100")
      }
      guard (0...1000).contains(errorLimit) else {
        return SettingsError("health check error limit", "must be between 0 and 1000")
      }
      return nil
    }
  }

  /// HTTP basic authentication in front of the stats page: one user and the crypt(3) hash of its
  /// password, printed into a `userlist`. The password itself is never part of the settings; whoever
  /// makes them hashes it first.
  public struct StatsAuth: Sendable, Hashable, CustomStringConvertible {
    /// The user name a browser sends.
    public let user: String
    /// A SHA-crypt hash of the password: `$6$salt$hash` (SHA-512) or `$5$salt$hash` (SHA-256),
    /// optionally with `rounds=N$` after the prefix, as `openssl passwd -6` and crypt(3) make them.
    public let passwordHash: String

    /// Longest accepted user name.
    public static let maxUserLength = 64

    /// Validates and creates the authentication settings. Errors name `stats auth user` or
    /// `stats auth password hash`.
    public init(user: String, passwordHash: String) throws(SettingsError) {
      if let problem = Self.userProblem(user) { throw SettingsError("stats auth user", problem) }
      if let problem = Self.hashProblem(passwordHash) { throw SettingsError("stats auth password hash", problem) }
      self.user = user
      self.passwordHash = passwordHash
    }

    /// The user name, and the hash left out: it is no password, but it lets anyone who reads it guess
    /// passwords offline.
    public var description: String { "StatsAuth(user: \(user), password hash: <redacted>)" }

    /// Why `user` cannot name a user of HAProxy's `userlist` (nor of HTTP basic authentication), or `nil`.
    /// Only letters, digits, `.`, `_`, `-` and `@`: no space, control character, quote, `#`, `\` or
    /// `:` (which ends the user name in HTTP basic authentication).
    public static func userProblem(_ user: String) -> String? {
      guard !user.isEmpty else { return "the user name is empty" }
      guard user.utf8.count <= maxUserLength else { return "the user name is longer than \(maxUserLength) bytes" }
      for scalar in user.unicodeScalars {
        switch scalar {
        case "a"..."z", "A"..."Z", "0"..."9", ".", "_", "-", "@": continue
        default:
          let what: String
          if scalar == " " {
            what = "a space"
          } else if scalar.properties.generalCategory == .control {
            what = "a control character (U+\(String(scalar.value, radix: 16)))"
          } else {
            what = "\"\(Character(scalar))\""
          }
          return "the user name contains \(what); use only letters, digits, \".\", \"_\", \"-\" and \"@\""
        }
      }
      return nil
    }

    /// Why `hash` is not a SHA-crypt string that HAProxy can print and check, or `nil`.
    public static func hashProblem(_ hash: String) -> String? {
      let hashLength: Int
      var rest: Substring
      if hash.hasPrefix("$6$") {
        hashLength = 86
        rest = hash.dropFirst(3)
      } else if hash.hasPrefix("$5$") {
        hashLength = 43
        rest = hash.dropFirst(3)
      } else {
        return "is not a SHA-crypt hash (it must start with $6$ or $5$)"
      }
      if rest.hasPrefix("rounds=") {
        let fields = rest.dropFirst("rounds=".count).split(
          separator: "$", maxSplits: 1, omittingEmptySubsequences: false)
        guard fields.count == 2, let rounds = Int(fields[0]), fields[0].allSatisfy(\.isASCII),
          (1000...999_999_999).contains(rounds)
        else { return "has a rounds field that is not a number from 1000 to 999999999" }
        rest = fields[1]
      }
      let parts = rest.split(separator: "$", omittingEmptySubsequences: false)
      guard parts.count == 2 else { return "does not have the form $id$salt$hash" }
      guard (1...16).contains(parts[0].utf8.count), parts[0].utf8.allSatisfy(isCryptCharacter) else {
        return "has a salt that is not 1 to 16 characters of [./0-9A-Za-z]"
      }
      guard parts[1].utf8.count == hashLength, parts[1].utf8.allSatisfy(isCryptCharacter) else {
        return "has a hash part that is not \(hashLength) characters of [./0-9A-Za-z]"
      }
      return nil
    }

    private static func isCryptCharacter(_ byte: UInt8) -> Bool {
      switch byte {
      case UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "A")...UInt8(ascii: "Z"),
        UInt8(ascii: "0")...UInt8(ascii: "9"), UInt8(ascii: "."), UInt8(ascii: "/"):
        true
      default: false
      }
    }
  }

  /// The node's name (`lb1`), shown on the stats page and in logs.
  public let nodeID: String
  /// Where clients connect.
  public let listen: HostPort
  /// Where clients connect over HTTPS (the same `frontend http`, TLS terminated by HAProxy); `nil`
  /// serves no HTTPS.
  public let httpsListen: HostPort?
  /// Where the stats page is served.
  public let stats: HostPort
  /// Who may read the stats page; `nil` leaves it open to anyone who can reach ``stats``.
  public let statsAuth: StatsAuth?
  /// The services this node serves, when it serves only some (`--service`): each has its backend from
  /// the start, registered or not; `nil` serves every service that has registrations in etcd.
  public let serviceFilter: Set<ServiceName>?
  /// Where a request that matches no route goes; `nil` answers it with a 404. Its backend exists even
  /// while the service has no instance (it then answers 503), as the original's `backend` did.
  public let defaultService: ServiceName?
  /// Other ports of the node that a `tcp` service must not take (the controller's admin endpoint).
  public let reservedPorts: Set<Int>
  /// Absolute path of the map file that holds the routes (``RouteTable``); the controller keeps it and
  /// HAProxy's copy of it in step.
  public let routesMapPath: String
  /// Absolute path of HAProxy's admin Runtime API socket.
  public let adminSocketPath: String
  /// Directory of the TLS files, `tls` next to the admin socket: the default certificate, the crt-list
  /// and `certs/`.
  public let tlsDirectoryPath: String
  /// The certificate (chain and key in one PEM file) served when no SNI name matches, or when the client
  /// sends none: the `crt` given first on the HTTPS bind.
  public let defaultCertificatePath: String
  /// The crt-list file that names every other certificate and the SNI names it serves.
  public let crtListPath: String
  /// Absolute path of the map of ACME HTTP-01 challenges (token → key authorization), next to the admin
  /// socket; always in the configuration, empty when no challenge is pending.
  public let acmeMapPath: String
  /// Health checks of every server.
  public let healthCheck: HealthCheck
  /// How long an old worker may keep serving after a reload before it is stopped.
  public let hardStopAfter: Duration
  /// Tries per request: a connection refused by one server is retried, on another server (redispatch).
  public let retries: Int
  /// How long a server may be silent while it answers a request (HAProxy's `timeout server`).
  public let serverTimeout: Duration
  /// Absolute path of the datagram socket HAProxy sends its access log to (one line per request or TCP
  /// connection, see ``AccessLogFormat``), where the controller reads it; `nil` logs nothing, and the
  /// configuration then has no `log` line at all.
  public let accessLogSocketPath: String?
  /// Absolute path of the PEM file of CA certificates that backends registered with `"tls": true` must
  /// present a certificate from (`--backend-ca`); `nil`: such registrations are not served.
  public let backendCAPath: String?

  /// Longest accepted socket path (a Unix socket path holds at most 107 bytes).
  public static let maxSocketPathLength = 107

  /// Validates and creates settings. Errors name the setting and the problem.
  public init(
    nodeID: String,
    listen: HostPort,
    httpsListen: HostPort? = nil,
    stats: HostPort,
    statsAuth: StatsAuth? = nil,
    serviceFilter: [ServiceName]? = nil,
    defaultService: ServiceName? = .backend,
    adminSocketPath: String,
    routesMapPath: String? = nil,
    reservedPorts: Set<Int> = [],
    healthCheck: HealthCheck = HealthCheck(),
    hardStopAfter: Duration = .seconds(30),
    retries: Int = 3,
    serverTimeout: Duration = .seconds(30),
    accessLogSocketPath: String? = nil,
    backendCAPath: String? = nil
  ) throws(SettingsError) {
    do {
      _ = try InstanceID(validating: nodeID)
    } catch {
      throw SettingsError("node id", error.reason)
    }
    if let serviceFilter {
      guard !serviceFilter.isEmpty else { throw SettingsError("services", "at least one service is needed") }
      guard Set(serviceFilter).count == serviceFilter.count else {
        throw SettingsError("services", "a service is listed twice")
      }
      if let defaultService, !serviceFilter.contains(defaultService) {
        throw SettingsError("default service", "\(defaultService) is not one of the services this node serves")
      }
    }
    if listen == stats { throw SettingsError("stats", "is the same address as the listen address \(listen)") }
    if let httpsListen, httpsListen == listen || httpsListen == stats {
      throw SettingsError(
        "https listen", "is the same address as the \(httpsListen == listen ? "listen" : "stats") address")
    }
    if let problem = Self.pathProblem(adminSocketPath) { throw SettingsError("admin socket path", problem) }
    let mapPath = routesMapPath ?? Self.siblingPath(of: adminSocketPath, named: "routes.map")
    if let problem = Self.pathProblem(mapPath) { throw SettingsError("routes map path", problem) }
    let tlsDirectory = Self.siblingPath(of: adminSocketPath, named: "tls")
    let tlsPaths = [
      ("TLS directory", tlsDirectory), ("default certificate path", tlsDirectory + "/default.pem"),
      ("crt-list path", tlsDirectory + "/crt-list"),
      (
        "certificate path",
        tlsDirectory + "/certs/" + String(repeating: "x", count: Self.maxCertificateNameLength) + ".pem"
      ),
    ]
    for (name, path) in tlsPaths {
      if let problem = Self.pathProblem(path, maxLength: Self.maxFilePathLength) { throw SettingsError(name, problem) }
    }
    let acmeMap = Self.siblingPath(of: adminSocketPath, named: "acme.map")
    if let problem = Self.pathProblem(acmeMap) { throw SettingsError("ACME map path", problem) }
    if let problem = healthCheck.problem() { throw problem }
    guard serverTimeout >= .milliseconds(100), serverTimeout <= .seconds(3600) else {
      throw SettingsError("server timeout", "must be between 100 ms and 1 hour")
    }
    guard hardStopAfter >= .seconds(1) else { throw SettingsError("hard-stop-after", "must be at least 1 s") }
    guard (0...10).contains(retries) else { throw SettingsError("retries", "must be between 0 and 10") }
    if let accessLogSocketPath, let problem = Self.pathProblem(accessLogSocketPath) {
      throw SettingsError("access log socket path", problem)
    }
    if let backendCAPath, let problem = Self.pathProblem(backendCAPath, maxLength: Self.maxFilePathLength) {
      throw SettingsError("backend CA path", problem)
    }
    self.nodeID = nodeID
    self.listen = listen
    self.httpsListen = httpsListen
    self.stats = stats
    self.statsAuth = statsAuth
    self.serviceFilter = serviceFilter.map(Set.init)
    self.defaultService = defaultService
    self.routesMapPath = mapPath
    self.reservedPorts = reservedPorts
    self.adminSocketPath = adminSocketPath
    self.tlsDirectoryPath = tlsDirectory
    self.defaultCertificatePath = tlsDirectory + "/default.pem"
    self.crtListPath = tlsDirectory + "/crt-list"
    self.acmeMapPath = acmeMap
    self.healthCheck = healthCheck
    self.hardStopAfter = hardStopAfter
    self.retries = retries
    self.serverTimeout = serverTimeout
    self.accessLogSocketPath = accessLogSocketPath
    self.backendCAPath = backendCAPath
  }

  /// Whether this node serves `service`.
  public func serves(_ service: ServiceName) -> Bool { serviceFilter?.contains(service) ?? true }

  /// Longest certificate name ``certificatePath(for:)`` is checked for when the settings are made.
  public static let maxCertificateNameLength = 128
  /// Longest accepted path of a file that is no socket (PATH_MAX is 4096; far below it).
  public static let maxFilePathLength = 1024

  /// The PEM file of the certificate named `name`: `<tls>/certs/<name>.pem`. The caller validates `name`
  /// (a certificate name: letters, digits, `-`, `_`, `.`, at most ``maxCertificateNameLength`` bytes).
  public func certificatePath(for name: String) -> String { tlsDirectoryPath + "/certs/" + name + ".pem" }

  /// `name` in the directory of `path`.
  static func siblingPath(of path: String, named name: String) -> String {
    guard let slash = path.lastIndex(of: "/") else { return name }
    return String(path[...slash]) + name
  }

  /// Why `path` cannot be printed into HAProxy's configuration as a socket path, or `nil`.
  static func pathProblem(_ path: String, maxLength: Int = maxSocketPathLength) -> String? {
    guard path.hasPrefix("/") else { return "\"\(path)\" is not an absolute path" }
    guard path.utf8.count <= maxLength else {
      return maxLength == maxSocketPathLength
        ? "is longer than \(maxSocketPathLength) bytes, the limit of a Unix socket path"
        : "is longer than \(maxLength) bytes"
    }
    for scalar in path.unicodeScalars {
      switch scalar {
      case "a"..."z", "A"..."Z", "0"..."9", "/", ".", "_", "-", "+", "@", ",", "=": continue
      default:
        return
          "contains a character HAProxy's configuration cannot hold unquoted (U+\(String(scalar.value, radix: 16)))"
      }
    }
    return nil
  }
}

/// A setting that cannot be used, with its name.
public struct SettingsError: Error, Hashable, Sendable, CustomStringConvertible {
  /// The setting.
  public var setting: String
  /// What is wrong with it.
  public var reason: String

  /// Creates an error.
  public init(_ setting: String, _ reason: String) {
    self.setting = setting
    self.reason = reason
  }

  /// `node id: contains a space…`
  public var description: String { "\(setting): \(reason)" }
}
