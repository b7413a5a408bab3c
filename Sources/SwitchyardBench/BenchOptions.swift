/// The sizes of a bench run: the full sizes, or small ones for `--quick`.
public struct BenchOptions: Sendable, Hashable {
  /// The scenarios, in the order they run.
  public static let allScenarios = [
    "convergence", "dataplane", "churn", "burst", "scale", "big-backend", "routes", "tls",
  ]
  /// The update strategies, in the order they run.
  public static let allStrategies = ["runtime", "reload"]

  /// Whether the small sizes are used.
  public var quick: Bool
  /// Which of ``allScenarios`` to run.
  public var scenarios: [String]
  /// The update strategies measured where both make sense.
  public var strategies: [String]
  /// Convergence: adds and deletes measured per strategy and variant.
  public var convergenceRuns: Int
  /// Convergence: fresh connections per polling round (more than the servers, so round robin can't hide one).
  public var pollParallel: Int
  /// Convergence: how long no request may reach a deleted instance before it counts as gone.
  public var removalQuietPeriod: Duration
  /// Keep-alive connections of the load in churn and data-plane runs.
  public var loadConnections: Int
  /// How long the data plane's direct load runs; each of its slices through the LB runs half of it.
  public var dataplaneDuration: Duration
  /// How long churn (and its control run) lasts.
  public var churnDuration: Duration
  /// Changes written per second during churn.
  public var churnRate: Int
  /// Adds (then deletes) in one burst.
  public var burstSize: Int
  /// The large fleet a burst also runs on.
  public var largeFleet: Int
  /// Scale: instances and services.
  public var scaleInstances: Int
  /// Scale: services the instances are spread over.
  public var scaleServices: Int
  /// Scale: how long idle CPU is measured.
  public var idleCPUDuration: Duration
  /// Scale: single changes measured on the large fleet.
  public var scaleChanges: Int
  /// Big backend: instances of the one service that single changes land beside.
  public var bigBackendServers: Int
  /// Big backend: single adds (each deleted again) measured.
  public var bigBackendChanges: Int
  /// TLS: how long each node's (and the lone HAProxy's) handshakes are counted.
  public var tlsDuration: Duration
  /// TLS: how long handshakes are counted while the certificate is renewed every second.
  public var tlsRenewalDuration: Duration
  /// TLS: clients handshaking at once.
  public var tlsConcurrency: Int
  /// The `switchyard` executable that runs the controllers.
  public var switchyardExecutable: String
  /// The HAProxy executable the controllers run (`--haproxy`): a name looked up in `PATH` or a path.
  public var haproxyExecutable: String

  /// The sizes (`quick == false`) or the small ones.
  public init(
    quick: Bool,
    switchyardExecutable: String,
    haproxyExecutable: String = "haproxy",
    scenarios: [String] = BenchOptions.allScenarios,
    strategies: [String] = BenchOptions.allStrategies
  ) {
    self.quick = quick
    self.haproxyExecutable = haproxyExecutable
    self.scenarios = scenarios
    self.switchyardExecutable = switchyardExecutable
    self.strategies = strategies
    convergenceRuns = quick ? 10 : 200
    pollParallel = 7
    removalQuietPeriod = quick ? .milliseconds(150) : .milliseconds(250)
    loadConnections = 64
    dataplaneDuration = quick ? .seconds(2) : .seconds(10)
    churnDuration = quick ? .seconds(5) : .seconds(30)
    churnRate = 20
    burstSize = quick ? 100 : 1000
    largeFleet = quick ? 500 : 10_000
    scaleInstances = quick ? 500 : 10_000
    scaleServices = quick ? 10 : 100
    idleCPUDuration = quick ? .seconds(2) : .seconds(10)
    scaleChanges = quick ? 3 : 100
    bigBackendServers = quick ? 2000 : 10_000
    bigBackendChanges = quick ? 50 : 200
    tlsDuration = quick ? .seconds(1) : .seconds(5)
    tlsRenewalDuration = quick ? .milliseconds(3500) : .seconds(10)
    tlsConcurrency = 8
  }
}
