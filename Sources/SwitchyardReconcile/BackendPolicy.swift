import SwitchyardModel

/// How one backend is run: a service's settings from etcd (``ServiceSettings``) over the node's
/// defaults. Every field is set; the renderer prints it as it is.
public struct BackendPolicy: Sendable, Hashable {
  /// `http` behind the routes, or `tcp` on a port of its own.
  public var mode: ServiceSettings.Mode
  /// The port a `tcp` service listens on (on the host of the node's listen address).
  public var port: Int?
  /// How requests are spread over the servers.
  public var balance: ServiceSettings.Balance
  /// Whether the active check is an HTTP request or a TCP connect.
  public var checkKind: ServiceSettings.Check.Kind
  /// The check path the settings name; `nil` leaves it to the registrations (``DesiredState``).
  public var checkPath: String?
  /// Intervals, timeout, rise and fall of the checks; the passive part stays the node's.
  public var healthCheck: NodeSettings.HealthCheck
  /// How long a connection to a server may take to open.
  public var connectTimeout: Duration
  /// How long a server may be silent while it answers.
  public var serverTimeout: Duration
  /// Tries per request (or connection, in `tcp` mode).
  public var retries: Int
  /// Requests (connections) a server takes at once; more wait in HAProxy's queue. `nil`: no limit.
  public var maxconn: Int?

  /// The node's defaults: today's behaviour, for a service without settings.
  public init(node: NodeSettings) {
    mode = .http
    port = nil
    balance = .roundrobin
    checkKind = .http
    checkPath = nil
    healthCheck = node.healthCheck
    // HAProxy 2.6 and 3.0 end a check of a server that accepts but never answers after `timeout
    // connect` (at most `inter`), whatever `timeout check` says: the check timeout bounds both.
    connectTimeout = node.healthCheck.timeout
    serverTimeout = node.serverTimeout
    retries = node.retries
    maxconn = nil
  }

  /// `settings` over the node's defaults; `nil` settings give ``init(node:)``.
  public init(settings: ServiceSettings?, node: NodeSettings) {
    self.init(node: node)
    guard let settings else { return }
    mode = settings.mode
    port = settings.port
    balance = settings.balance ?? .roundrobin
    if let check = settings.check {
      checkKind = check.kind
      checkPath = check.kind == .http ? check.path : nil
      if let interval = check.interval { healthCheck.interval = interval }
      if let timeout = check.timeout { healthCheck.timeout = timeout }
      if let rise = check.rise { healthCheck.rise = rise }
      if let fall = check.fall { healthCheck.fall = fall }
    }
    connectTimeout = settings.timeoutConnect ?? healthCheck.timeout
    if let timeout = settings.timeoutServer { serverTimeout = timeout }
    if let retries = settings.retries { self.retries = retries }
    maxconn = settings.maxconn
  }

  /// The algorithm a backend runs whose servers' weights add up to `weightSum`: the configured one, but
  /// `random` in place of round robin above ``roundRobinWeightLimit``, back to round robin only below
  /// ``roundRobinWeightResume`` (a fleet that hovers at the limit does not reload at every step).
  ///
  /// HAProxy's manual limits round robin to "4095 active servers per backend", but what breaks is the
  /// sum of the weights: measured on 2.6.12, 5,000 servers of equal weight were served exactly in turn,
  /// while 4,095 servers of weights 255 and 256 sent thousands of requests to two of them and a handful to
  /// the rest. Round robin orders servers by a 32-bit key of 256 × position × total weight / weight that
  /// overflows above a weight sum of 2^19 − 1 (`lb_fwrr.c`); `random` (with the explicit server ids the
  /// planner gives every added server, which HAProxy 2.6.12 needs to draw among runtime-added servers)
  /// has no such limit.
  public static func effectiveBalance(
    configured: ServiceSettings.Balance, weightSum: Int, previous: ServiceSettings.Balance?
  ) -> ServiceSettings.Balance {
    guard configured == .roundrobin else { return configured }
    if weightSum > roundRobinWeightLimit { return .random }
    if previous == .random && weightSum >= roundRobinWeightResume { return .random }
    return .roundrobin
  }

  /// The largest sum of server weights a round-robin backend is run with.
  public static let roundRobinWeightLimit = 524_287
  /// A backend moved to `random` above ``roundRobinWeightLimit`` goes back to round robin below this.
  public static let roundRobinWeightResume = 480_000

  /// The lines of a backend section that choose the server: `balance …` and, for `source`, consistent
  /// hashing (servers added at runtime need a dynamic algorithm).
  static func balanceLines(_ balance: ServiceSettings.Balance) -> [String] {
    switch balance {
    case .source: ["balance source", "hash-type consistent"]
    default: ["balance \(balance.rawValue)"]
    }
  }
}
