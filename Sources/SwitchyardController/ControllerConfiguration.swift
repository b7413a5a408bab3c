import SwitchyardModel
import SwitchyardReconcile

/// How server changes reach HAProxy.
public enum UpdateStrategy: String, Sendable, CaseIterable {
  /// Through the Runtime API; a reload only for structural changes (the default).
  case runtime
  /// Rewrite the file and reload on every change, as the original demo did; for comparisons.
  case reload
}

/// Everything a controller needs besides its etcd client.
public struct ControllerConfiguration: Sendable {
  /// The node: listen and stats addresses, services, health checks.
  public var node: NodeSettings
  /// The private state directory: config, sockets, pid file, HAProxy's log.
  public var stateDirectory: String
  /// How watch events are batched into reconcile passes.
  public var coalescing: CoalescingPolicy
  /// How removed servers leave.
  public var removal: Planner.RemovalPolicy
  /// Whether HAProxy keeps running after the controller stops gracefully.
  public var leaveHAProxyRunning: Bool
  /// The HAProxy executable.
  public var haproxyExecutable: String
  /// How long a graceful HAProxy stop may take before it is forced.
  public var haproxyStopTimeout: Duration
  /// How often the controller asks etcd to prove the watch is current.
  public var watchProgressInterval: Duration {
    get { timings.watchProgressInterval }
    set { timings.watchProgressInterval = newValue }
  }
  /// How long without word from the watch before the node reports not ready.
  public var watchStaleAfter: Duration
  /// How server changes reach HAProxy.
  public var updateStrategy: UpdateStrategy
  /// How often a pass reads all of etcd and compares every backend, as a safety net: in between, a
  /// change costs work only for the services it touches.
  public var resyncInterval: Duration {
    get { timings.resyncInterval }
    set { timings.resyncInterval = newValue }
  }
  /// Every timing of the reconcile loop: follow-ups, retries, flushes, resyncs, refreshes, supervision,
  /// the watch's retries and progress requests.
  public var timings: LoopTimings
  /// How the node serves HTTPS (with ``NodeSettings/httpsListen``): the cluster key and the default
  /// certificate.
  public var tls = TLSSettings()

  /// Creates a configuration. `watchProgressInterval` and `resyncInterval`, when given, override the
  /// ones in `timings`.
  public init(
    node: NodeSettings,
    stateDirectory: String,
    coalescing: CoalescingPolicy = CoalescingPolicy(),
    removal: Planner.RemovalPolicy = Planner.RemovalPolicy(),
    leaveHAProxyRunning: Bool = false,
    haproxyExecutable: String = "haproxy",
    haproxyStopTimeout: Duration = .seconds(10),
    watchProgressInterval: Duration? = nil,
    watchStaleAfter: Duration = .seconds(6),
    updateStrategy: UpdateStrategy = .runtime,
    resyncInterval: Duration? = nil,
    timings: LoopTimings = LoopTimings()
  ) {
    self.timings = timings
    self.node = node
    self.stateDirectory = stateDirectory
    self.coalescing = coalescing
    self.removal = removal
    self.leaveHAProxyRunning = leaveHAProxyRunning
    self.haproxyExecutable = haproxyExecutable
    self.haproxyStopTimeout = haproxyStopTimeout
    self.watchStaleAfter = watchStaleAfter
    self.updateStrategy = updateStrategy
    if let watchProgressInterval { self.timings.watchProgressInterval = watchProgressInterval }
    if let resyncInterval { self.timings.resyncInterval = resyncInterval }
  }

  /// The etcd prefix the controller reads and watches: all registrations.
  public static let prefix = RegistrationKey.root
}
