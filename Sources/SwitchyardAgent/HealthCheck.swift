import Logging
import NIOCore
import NIOPosix
import ServiceLifecycle
import SwitchyardHTTP

/// How to probe a service.
public enum HealthProbe: Sendable, Hashable {
  /// HTTP GET of `path` on the address; healthy on a 2xx status.
  case http(path: String)
  /// A TCP connection to the address succeeds.
  case tcp
}

/// Probes a service periodically and reports transitions between healthy and unhealthy,
/// HAProxy-style: `rise` consecutive successes to become healthy, `fall` consecutive failures to
/// become unhealthy.
public final class HealthChecker: Service, Sendable {
  /// Where and how to probe.
  public struct Configuration: Sendable {
    /// Host of the checked service.
    public var host: String
    /// Port of the checked service.
    public var port: Int
    /// The probe.
    public var probe: HealthProbe
    /// Time between probes.
    public var interval: Duration
    /// Time a probe may take.
    public var timeout: Duration
    /// Consecutive successes needed to become healthy.
    public var rise: Int
    /// Consecutive failures needed to become unhealthy.
    public var fall: Int

    /// Creates a configuration (defaults as HAProxy's: rise 2, fall 3).
    public init(
      host: String,
      port: Int,
      probe: HealthProbe,
      interval: Duration = .seconds(2),
      timeout: Duration = .seconds(1),
      rise: Int = 2,
      fall: Int = 3
    ) {
      self.host = host
      self.port = port
      self.probe = probe
      self.interval = interval
      self.timeout = timeout
      self.rise = rise
      self.fall = fall
    }
  }

  private let configuration: Configuration
  private let logger: Logger
  private let onChange: @Sendable (Bool) async -> Void

  /// Creates a checker; `onChange` is called with the new health on every transition, and once
  /// with the first verdict. The service is assumed healthy until `fall` probes fail.
  public init(configuration: Configuration, logger: Logger, onChange: @escaping @Sendable (Bool) async -> Void) {
    self.configuration = configuration
    self.logger = logger
    self.onChange = onChange
  }

  /// Probes until graceful shutdown.
  public func run() async throws {
    await cancelWhenGracefulShutdown {
      var tracker = HealthTracker(rise: self.configuration.rise, fall: self.configuration.fall)
      while !Task.isCancelled {
        let ok = await self.probeOnce()
        if let change = tracker.record(success: ok) {
          self.logger.info(
            change ? "service healthy" : "service unhealthy",
            metadata: ["check.target": "\(self.configuration.host):\(self.configuration.port)"]
          )
          await self.onChange(change)
        }
        try? await Task.sleep(for: self.configuration.interval)
      }
    }
  }

  /// Runs one probe.
  public func probeOnce() async -> Bool {
    switch configuration.probe {
    case .tcp:
      return await Self.tcpProbe(host: configuration.host, port: configuration.port, timeout: configuration.timeout)
    case .http(let path):
      return await Self.httpProbe(
        host: configuration.host,
        port: configuration.port,
        path: path,
        timeout: configuration.timeout
      )
    }
  }

  static func tcpProbe(host: String, port: Int, timeout: Duration) async -> Bool {
    let bootstrap = ClientBootstrap(group: MultiThreadedEventLoopGroup.singleton)
      .connectTimeout(TimeAmount(timeout))
    do {
      let channel = try await bootstrap.connect(host: host, port: port).get()
      try? await channel.close()
      return true
    } catch {
      return false
    }
  }

  /// One HTTP GET on a connection of its own; anything but a 2xx status within the timeout is a failure.
  static func httpProbe(host: String, port: Int, path: String, timeout: Duration) async -> Bool {
    guard let (status, _) = try? await HTTPCheck.get(host: host, port: port, path: path, timeout: timeout) else {
      return false
    }
    return (200..<300).contains(status)
  }
}

/// Rise/fall hysteresis, kept apart from the probing so it can be tested without I/O.
public struct HealthTracker: Sendable {
  /// Successes needed to turn healthy.
  public let rise: Int
  /// Failures needed to turn unhealthy.
  public let fall: Int
  /// Current verdict (`nil` before the first one).
  public private(set) var healthy: Bool?
  private var streak = 0
  private var streakIsSuccess = true

  /// Creates a tracker.
  public init(rise: Int, fall: Int) {
    self.rise = max(rise, 1)
    self.fall = max(fall, 1)
  }

  /// Records a probe; returns the new verdict when it changed (or is first given).
  public mutating func record(success: Bool) -> Bool? {
    if success == streakIsSuccess {
      streak += 1
    } else {
      streakIsSuccess = success
      streak = 1
    }
    let next: Bool?
    switch healthy {
    case nil:
      // First verdict: healthy on the first success, unhealthy only after `fall` failures.
      next = success ? true : (streak >= fall ? false : nil)
    case true?:
      next = (!success && streak >= fall) ? false : nil
    case false?:
      next = (success && streak >= rise) ? true : nil
    }
    if let next {
      healthy = next
      return next
    }
    return nil
  }
}

extension Duration {
  var seconds: Double {
    let (whole, attoseconds) = components
    return Double(whole) + Double(attoseconds) / 1e18
  }
}
