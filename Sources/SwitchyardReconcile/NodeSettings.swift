import SwitchyardModel

/// What an operator configures for one load-balancer node: everything in HAProxy's configuration that
/// does not come from etcd.
///
/// Every field is validated when the settings are made, so the renderer can print them as they are.
public struct NodeSettings: Sendable, Hashable {
  /// Health checks of every server, as in the original demo: every 2 s, up after 2 good, down after 3 bad.
  public struct HealthCheck: Sendable, Hashable {
    /// Time between two checks of one server.
    public var interval: Duration
    /// Good checks in a row that make a server up.
    public var rise: Int
    /// Bad checks in a row that make a server down.
    public var fall: Int

    /// Creates health-check settings.
    public init(interval: Duration = .seconds(2), rise: Int = 2, fall: Int = 3) {
      self.interval = interval
      self.rise = rise
      self.fall = fall
    }
  }

  /// The node's name (`lb1`), shown on the stats page and in logs.
  public let nodeID: String
  /// Where clients connect.
  public let listen: HostPort
  /// Where the stats page is served.
  public let stats: HostPort
  /// The services this node serves, in order; the first is the frontend's default backend.
  public let services: [ServiceName]
  /// Absolute path of HAProxy's admin Runtime API socket.
  public let adminSocketPath: String
  /// Health checks of every server.
  public let healthCheck: HealthCheck
  /// How long an old worker may keep serving after a reload before it is stopped.
  public let hardStopAfter: Duration
  /// Tries per request: a connection refused by one server is retried, on another server (redispatch).
  public let retries: Int

  /// Longest accepted socket path (a Unix socket path holds at most 107 bytes).
  public static let maxSocketPathLength = 107

  /// Validates and creates settings. Errors name the setting and the problem.
  public init(
    nodeID: String,
    listen: HostPort,
    stats: HostPort,
    services: [ServiceName] = [.backend],
    adminSocketPath: String,
    healthCheck: HealthCheck = HealthCheck(),
    hardStopAfter: Duration = .seconds(30),
    retries: Int = 3
  ) throws(SettingsError) {
    do {
      _ = try InstanceID(validating: nodeID)
    } catch {
      throw SettingsError("node id", error.reason)
    }
    guard !services.isEmpty else { throw SettingsError("services", "at least one service is needed") }
    guard Set(services).count == services.count else { throw SettingsError("services", "a service is listed twice") }
    if listen == stats { throw SettingsError("stats", "is the same address as the listen address \(listen)") }
    if let problem = Self.pathProblem(adminSocketPath) { throw SettingsError("admin socket path", problem) }
    guard healthCheck.interval >= .milliseconds(100), healthCheck.interval <= .seconds(3600) else {
      throw SettingsError("health check interval", "must be between 100 ms and 1 hour")
    }
    guard (1...100).contains(healthCheck.rise), (1...100).contains(healthCheck.fall) else {
      throw SettingsError("health check rise/fall", "must be between 1 and 100")
    }
    guard hardStopAfter >= .seconds(1) else { throw SettingsError("hard-stop-after", "must be at least 1 s") }
    guard (0...10).contains(retries) else { throw SettingsError("retries", "must be between 0 and 10") }
    self.nodeID = nodeID
    self.listen = listen
    self.stats = stats
    self.services = services
    self.adminSocketPath = adminSocketPath
    self.healthCheck = healthCheck
    self.hardStopAfter = hardStopAfter
    self.retries = retries
  }

  /// Why `path` cannot be printed into HAProxy's configuration as a socket path, or `nil`.
  static func pathProblem(_ path: String) -> String? {
    guard path.hasPrefix("/") else { return "\"\(path)\" is not an absolute path" }
    guard path.utf8.count <= maxSocketPathLength else {
      return "is longer than \(maxSocketPathLength) bytes, the limit of a Unix socket path"
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
