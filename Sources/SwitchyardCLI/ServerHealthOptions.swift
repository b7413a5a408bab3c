import ArgumentParser
import SwitchyardReconcile

/// The controller's flags for how HAProxy checks, watches and retries the servers.
struct ServerHealthOptions: ParsableArguments {
  private static let defaults = NodeSettings.HealthCheck()

  @Option(name: .customLong("check-interval-ms"), help: "Time between two health checks of a server that is up.")
  var interval: Int = Self.defaults.interval.wholeMilliseconds

  @Option(
    name: .customLong("check-timeout-ms"),
    help: "How long a health check may wait for an answer (also HAProxy's connect timeout to servers).")
  var timeout: Int = Self.defaults.timeout.wholeMilliseconds

  @Option(
    name: .customLong("check-fast-interval-ms"), help: "Time between two checks of a server going up or down.")
  var fastInterval: Int = Self.defaults.fastInterval.wholeMilliseconds

  @Option(name: .customLong("check-down-interval-ms"), help: "Time between two checks of a server that is down.")
  var downInterval: Int = Self.defaults.downInterval.wholeMilliseconds

  @Option(name: .customLong("check-rise"), help: "Good checks in a row that make a server up.")
  var rise: Int = Self.defaults.rise

  @Option(name: .customLong("check-fall"), help: "Bad checks in a row that make a server down.")
  var fall: Int = Self.defaults.fall

  @Option(
    name: .customLong("check-error-limit"),
    help: "Errors in a row on real traffic (timeouts, resets, 5xx) that count as a failed check; 0: off.")
  var errorLimit: Int = Self.defaults.errorLimit

  @Option(
    name: .customLong("server-timeout"),
    help: "Seconds a server may stay silent while it answers a request (HAProxy's timeout server).")
  var serverTimeout: Double = 30

  @Option(help: "Tries per request; safe methods are sent to another server when one fails to answer.")
  var retries: Int = 3

  /// The health-check settings the flags describe (validated with the rest of the node's settings).
  var healthCheck: NodeSettings.HealthCheck {
    NodeSettings.HealthCheck(
      interval: .milliseconds(interval), rise: rise, fall: fall, timeout: .milliseconds(timeout),
      fastInterval: .milliseconds(fastInterval), downInterval: .milliseconds(downInterval), errorLimit: errorLimit)
  }

  /// `--server-timeout` as a duration, when it is a number of seconds at all.
  var serverTimeoutDuration: Duration? {
    serverTimeout.isFinite && serverTimeout >= 0 && serverTimeout <= 86_400
      ? .milliseconds(Int64((serverTimeout * 1000).rounded())) : nil
  }

  /// The flag of a setting these options set, for error messages.
  static func flag(of setting: String) -> String? {
    switch setting {
    case "health check interval": "--check-interval-ms"
    case "health check timeout": "--check-timeout-ms"
    case "health check fast interval": "--check-fast-interval-ms"
    case "health check down interval": "--check-down-interval-ms"
    case "health check rise/fall": "--check-rise/--check-fall"
    case "health check error limit": "--check-error-limit"
    case "server timeout": "--server-timeout"
    case "retries": "--retries"
    default: nil
    }
  }
}

extension Duration {
  fileprivate var wholeMilliseconds: Int {
    Int(components.seconds * 1000 + components.attoseconds / 1_000_000_000_000_000)
  }
}
