/// Every timing of a controller's reconcile loop, in one place.
///
/// | key | default | what it times |
/// | --- | --- | --- |
/// | `followUpDelay` | 500 ms | The pass after one that left servers draining or deletes deferred. |
/// | `retryInitial`, `retryMaximum` | 200 ms, 1 s | The pass after a failed one: doubling per failure in a row, capped. |
/// | `fileCheckInterval` | 1 s | How often the loop asks whether the config file is behind or a resync is due. |
/// | `resyncInterval` | 300 s | A full pass (read everything, compare every backend) at least this often. |
/// | `refreshPerServer`, `refreshMinimum`, `refreshMaximum` | 1 ms, 1 s, 10 s | How often HAProxy's server states are read for `/state` and drift: in proportion to the fleet, within the bounds. |
/// | `superviseInterval` | 500 ms | How often the supervisor looks again when no HAProxy runs; the exit of one that runs is seen within 50 ms. |
/// | `watchRetryInitial`, `watchRetryMaximum` | 200 ms, 1 s | The watch's next attempt after a failure: doubling per failure in a row, capped. |
/// | `watchProgressInterval` | 2 s | How often etcd is asked to prove the watch is current. |
public struct LoopTimings: Sendable, Hashable {
  /// How long after a pass that left servers leaving the follow-up pass runs.
  public var followUpDelay: Duration
  /// The delay after the first failed pass in a row.
  public var retryInitial: Duration
  /// The longest delay after failed passes.
  public var retryMaximum: Duration
  /// How often the loop checks whether the config file is behind or a resync is due.
  public var fileCheckInterval: Duration
  /// How often a pass reads all of etcd and compares every backend, as a safety net: in between, a
  /// change costs work only for the services it touches.
  public var resyncInterval: Duration
  /// The refresh of HAProxy's server states waits this long per server…
  public var refreshPerServer: Duration
  /// …but at least this long…
  public var refreshMinimum: Duration
  /// …and at most this long.
  public var refreshMaximum: Duration
  /// How often the supervisor checks that HAProxy still runs.
  public var superviseInterval: Duration
  /// The delay after the first failure of the watch in a row.
  public var watchRetryInitial: Duration
  /// The longest delay between watch attempts.
  public var watchRetryMaximum: Duration
  /// How often the controller asks etcd to prove the watch is current.
  public var watchProgressInterval: Duration
  /// How long a structural change (a new service, changed service settings) waits for others to share
  /// its reload: fifty services registered together cost one reload, not fifty.
  public var reloadDelay: Duration
  /// The shortest time between two structural reloads.
  public var minimumReloadInterval: Duration

  /// Creates timings; the defaults are the ones a node runs with.
  public init(
    followUpDelay: Duration = .milliseconds(500),
    retryInitial: Duration = .milliseconds(200),
    retryMaximum: Duration = .seconds(1),
    fileCheckInterval: Duration = .seconds(1),
    resyncInterval: Duration = .seconds(300),
    refreshPerServer: Duration = .milliseconds(1),
    refreshMinimum: Duration = .seconds(1),
    refreshMaximum: Duration = .seconds(10),
    superviseInterval: Duration = .milliseconds(500),
    watchRetryInitial: Duration = .milliseconds(200),
    watchRetryMaximum: Duration = .seconds(1),
    watchProgressInterval: Duration = .seconds(2),
    reloadDelay: Duration = .milliseconds(200),
    minimumReloadInterval: Duration = .milliseconds(500)
  ) {
    self.followUpDelay = followUpDelay
    self.retryInitial = retryInitial
    self.retryMaximum = retryMaximum
    self.fileCheckInterval = fileCheckInterval
    self.resyncInterval = resyncInterval
    self.refreshPerServer = refreshPerServer
    self.refreshMinimum = refreshMinimum
    self.refreshMaximum = refreshMaximum
    self.superviseInterval = superviseInterval
    self.watchRetryInitial = watchRetryInitial
    self.watchRetryMaximum = watchRetryMaximum
    self.watchProgressInterval = watchProgressInterval
    self.reloadDelay = reloadDelay
    self.minimumReloadInterval = minimumReloadInterval
  }

  /// The delay before the next pass after `failures` failed passes in a row (1 or more).
  public func retryDelay(failures: Int) -> Duration {
    Self.doubling(from: retryInitial, to: retryMaximum, failures: failures)
  }

  /// The delay before the watch's next attempt after `failures` failures in a row (1 or more).
  public func watchRetryDelay(failures: Int) -> Duration {
    Self.doubling(from: watchRetryInitial, to: watchRetryMaximum, failures: failures)
  }

  /// The wait before the next refresh of HAProxy's server states, for a fleet of `servers`: reading them
  /// costs HAProxy and the controller CPU in proportion to the fleet.
  public func refreshInterval(servers: Int) -> Duration {
    min(refreshMaximum, max(refreshMinimum, refreshPerServer * servers))
  }

  /// `initial` doubled for each failure after the first, capped at `maximum`.
  private static func doubling(from initial: Duration, to maximum: Duration, failures: Int) -> Duration {
    var delay = initial
    for _ in 1..<max(1, min(failures, 64)) {
      delay *= 2
      if delay >= maximum { return maximum }
    }
    return min(delay, maximum)
  }
}
