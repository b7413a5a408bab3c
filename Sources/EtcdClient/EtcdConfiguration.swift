import AddressText
import Foundation

/// One etcd member's client address.
///
/// Parsed from the forms operators write: `host:port`, `http://host:port`, `https://host:port`,
/// and IPv6 literals in brackets (`[::1]:2379`). A missing port means etcd's default, 2379.
public struct EtcdEndpoint: Sendable, Hashable, CustomStringConvertible {
  /// Host name or IP address, without brackets for IPv6.
  public var host: String
  /// TCP port of the member's client URL.
  public var port: Int
  /// Whether the URL asked for TLS (`https://`). TLS is used when this is set or when the client
  /// configuration has TLS settings.
  public var usesTLS: Bool

  /// Creates an endpoint from its parts.
  public init(host: String, port: Int, usesTLS: Bool = false) {
    self.host = host
    self.port = port
    self.usesTLS = usesTLS
  }

  /// Parses `host:port`, `http://host:port` or `https://host:port`.
  ///
  /// - Throws: ``EtcdError`` with code ``EtcdError/Code/invalidArgument`` naming what is wrong.
  public init(parsing text: String) throws(EtcdError) {
    var rest = Substring(text.trimmingWhitespace())
    var tls = false
    if rest.hasPrefix("https://") {
      tls = true
      rest = rest.dropFirst("https://".count)
    } else if rest.hasPrefix("http://") {
      rest = rest.dropFirst("http://".count)
    } else if rest.contains("://") {
      throw .invalidArgument("endpoint \"\(text)\": only http:// and https:// URLs are supported")
    }
    if rest.hasSuffix("/") { rest = rest.dropLast() }
    guard !rest.isEmpty else { throw .invalidArgument("endpoint \"\(text)\" is empty") }

    let host: Substring
    var portText: Substring?
    if rest.hasPrefix("[") {
      guard let close = rest.firstIndex(of: "]") else {
        throw .invalidArgument("endpoint \"\(text)\": IPv6 address lacks its closing \"]\"")
      }
      host = rest[rest.index(after: rest.startIndex)..<close]
      let after = rest[rest.index(after: close)...]
      if !after.isEmpty {
        guard after.hasPrefix(":") else {
          throw .invalidArgument("endpoint \"\(text)\": expected \":port\" after the IPv6 address")
        }
        portText = after.dropFirst()
      }
    } else if let colon = rest.lastIndex(of: ":") {
      host = rest[..<colon]
      portText = rest[rest.index(after: colon)...]
    } else {
      host = rest
    }
    guard !host.isEmpty, !host.contains(where: { $0 == "/" || $0 == " " || $0 == "@" }) else {
      throw .invalidArgument("endpoint \"\(text)\": invalid host")
    }
    var port = 2379
    if let portText {
      guard let value = Int(portText), (1...65535).contains(value) else {
        throw .invalidArgument("endpoint \"\(text)\": port must be a number from 1 to 65535")
      }
      port = value
    }
    self.init(host: String(host), port: port, usesTLS: tls)
  }

  /// Parses a comma-separated list, as given to `--etcd-endpoints` or `ETCD_ENDPOINTS`.
  public static func parseList(_ text: String) throws(EtcdError) -> [EtcdEndpoint] {
    let parts = text.split(separator: ",").map { String($0).trimmingWhitespace() }.filter { !$0.isEmpty }
    guard !parts.isEmpty else { throw .invalidArgument("no etcd endpoints given") }
    var endpoints: [EtcdEndpoint] = []
    for part in parts { endpoints.append(try EtcdEndpoint(parsing: part)) }
    return endpoints
  }

  /// `host:port`, with brackets around IPv6 literals.
  public var description: String {
    HostPortText.format(host: host, port: port)
  }
}

/// How an ``EtcdClient`` connects, authenticates and retries.
///
/// | Setting | Default | Meaning |
/// | --- | --- | --- |
/// | `endpoints` | (required) | Members to use; calls fail over between them. |
/// | `dialTimeout` | 2 s | How long one attempt waits on a member that is not known to be up. |
/// | `requestTimeout` | 10 s | Total time for one unary call, retries included. |
/// | `credentials` | none | User name and password; the token is fetched and refreshed on demand. |
/// | `tls` | none | CA and optional client certificate; enables TLS for every endpoint. |
/// | `backoff` | 50 ms doubling to 1 s | Delay between retries; least time between the starts of two stream attempts. |
/// | `watchProgressInterval` | 5 s | After this much silence a watch stream gets a progress request and its member a probe. |
/// | `keepAliveInterval` | 6 s | Silence on the watch stream after which an HTTP/2 PING goes out on its connection. |
/// | `keepAliveTimeout` | 3 s | An HTTP/2 ping not acknowledged within this closes the connection. |
/// | `maxResponseBytes` | 2 GiB − 1 | Largest reply accepted (Go's client accepts the same). |
public struct EtcdConfiguration: Sendable {
  /// The members to talk to, in order of preference.
  public var endpoints: [EtcdEndpoint]
  /// How long one attempt may wait for a member that is not known to be reachable.
  public var dialTimeout: Duration
  /// Total time budget of a unary call, including retries on other members.
  public var requestTimeout: Duration
  /// Username and password for etcd's authentication, when it is enabled.
  public var credentials: Credentials?
  /// TLS settings; when present, every endpoint is dialled with TLS.
  public var tls: TLS?
  /// Delay policy for retries and for re-establishing watch and keepalive streams.
  public var backoff: Backoff
  /// Silence on a watch stream after which the client asks for a progress notification and
  /// probes the stream's member with a status call. A member that does not answer the probe within
  /// `min(dialTimeout, watchProgressInterval)` is treated as hung and the stream moves to another
  /// one. An unanswered progress request alone never ends a stream: newer etcd releases ignore
  /// progress requests while a watcher is catching up or waits for a future revision.
  public var watchProgressInterval: Duration
  /// Silence on the watch stream after which an HTTP/2 PING goes out on its connection, and the
  /// interval of further PINGs while the silence lasts.
  ///
  /// etcd refuses pings more often than its `--grpc-keepalive-min-time` (5 s by default) and
  /// closes the connection after a few, so keep this at or above the server's setting.
  public var keepAliveInterval: Duration
  /// Time within which a keepalive PING must be acknowledged; otherwise the member is taken as dead
  /// or hung and the watch stream moves to another one. This is what tells a dead member from a
  /// quiet one without relying on etcd's answers to progress requests.
  public var keepAliveTimeout: Duration
  /// The largest reply message accepted, in bytes. gRPC transports default to 4 MiB, which a
  /// large range read exceeds; like Go's client, this one accepts up to 2 GiB − 1 by default.
  /// Prefer ``EtcdClient/getPaginated(_:pageSize:options:)`` for large prefixes.
  public var maxResponseBytes: Int

  /// A user name and password for etcd authentication.
  ///
  /// Printing credentials, or a configuration that holds them, never shows the password: `description`,
  /// `debugDescription` and the mirror that `dump(_:)` and the default descriptions of enclosing types
  /// use all replace it with `<redacted>`.
  public struct Credentials: Sendable, Hashable, CustomStringConvertible, CustomDebugStringConvertible,
    CustomReflectable
  {
    /// etcd user name.
    public var username: String
    /// The user's password.
    public var password: String

    /// Creates credentials.
    public init(username: String, password: String) {
      self.username = username
      self.password = password
    }

    /// `Credentials(username: "app", password: <redacted>)`
    public var description: String { "Credentials(username: \(String(reflecting: username)), password: <redacted>)" }

    /// The same as ``description``: the password is never printed.
    public var debugDescription: String { description }

    /// The user name, and the password replaced with `<redacted>`.
    public var customMirror: Mirror {
      Mirror(self, children: ["username": username, "password": "<redacted>"], displayStyle: .struct)
    }
  }

  /// PEM files for TLS.
  public struct TLS: Sendable, Hashable {
    /// CA certificate(s) that sign the members' certificates; `nil` uses the system trust roots.
    public var caCertificatePath: String?
    /// Client certificate for mutual TLS.
    public var clientCertificatePath: String?
    /// Private key of the client certificate.
    public var clientKeyPath: String?
    /// Name to verify the server certificate against, when it differs from the endpoint host.
    public var serverHostname: String?
    /// How often the client looks whether the files above changed (a renewed certificate). When they
    /// did, and were the same at the next look, it sets up new connections with them; calls in flight and
    /// open streams finish on the old ones.
    public var reloadInterval: Duration = .seconds(60)

    /// Creates TLS settings.
    public init(
      caCertificatePath: String? = nil,
      clientCertificatePath: String? = nil,
      clientKeyPath: String? = nil,
      serverHostname: String? = nil
    ) {
      self.caCertificatePath = caCertificatePath
      self.clientCertificatePath = clientCertificatePath
      self.clientKeyPath = clientKeyPath
      self.serverHostname = serverHostname
    }
  }

  /// Creates a configuration with the documented defaults.
  public init(
    endpoints: [EtcdEndpoint],
    dialTimeout: Duration = .seconds(2),
    requestTimeout: Duration = .seconds(10),
    credentials: Credentials? = nil,
    tls: TLS? = nil,
    backoff: Backoff = Backoff(),
    watchProgressInterval: Duration = .seconds(5),
    keepAliveInterval: Duration = .seconds(6),
    keepAliveTimeout: Duration = .seconds(3),
    maxResponseBytes: Int = Int(Int32.max)
  ) {
    self.endpoints = endpoints
    self.dialTimeout = dialTimeout
    self.requestTimeout = requestTimeout
    self.credentials = credentials
    self.tls = tls
    self.backoff = backoff
    self.watchProgressInterval = watchProgressInterval
    self.keepAliveInterval = keepAliveInterval
    self.keepAliveTimeout = keepAliveTimeout
    self.maxResponseBytes = maxResponseBytes
  }

  /// Convenience: parses a comma-separated endpoint list.
  public init(endpoints: String) throws(EtcdError) {
    self.init(endpoints: try EtcdEndpoint.parseList(endpoints))
  }

  func validate() throws(EtcdError) {
    guard !endpoints.isEmpty else { throw .invalidArgument("no etcd endpoints configured") }
    guard dialTimeout > .zero, requestTimeout > .zero else {
      throw .invalidArgument("timeouts must be positive")
    }
    guard watchProgressInterval > .zero, keepAliveInterval > .zero, keepAliveTimeout > .zero else {
      throw .invalidArgument("the watch progress interval and the keepalive interval and timeout must be positive")
    }
    guard maxResponseBytes >= 1024 * 1024 else {
      throw .invalidArgument("maxResponseBytes must be at least 1 MiB, not \(maxResponseBytes)")
    }
    if let tls, (tls.clientCertificatePath == nil) != (tls.clientKeyPath == nil) {
      throw .invalidArgument("a client certificate needs its key, and a key its certificate")
    }
  }
}

/// Capped exponential backoff with jitter: the one retry delay policy of the project.
public struct Backoff: Sendable, Hashable {
  /// First delay.
  public var initial: Duration
  /// Largest delay.
  public var maximum: Duration
  /// Growth factor per attempt.
  public var multiplier: Double
  /// Fraction of each delay that is randomised (0 = none, 0.2 = ±20 %).
  public var jitter: Double

  /// Creates a policy.
  public init(
    initial: Duration = .milliseconds(50),
    maximum: Duration = .seconds(1),
    multiplier: Double = 2,
    jitter: Double = 0.2
  ) {
    self.initial = initial
    self.maximum = maximum
    self.multiplier = multiplier
    self.jitter = jitter
  }

  /// The delay before attempt `attempt` (0-based), before jitter.
  public func baseDelay(attempt: Int) -> Duration {
    let initialSeconds = initial.seconds
    let maximumSeconds = maximum.seconds
    let raw = initialSeconds * pow(multiplier, Double(min(attempt, 64)))
    return .seconds(min(raw, maximumSeconds))
  }

  /// The delay before attempt `attempt`, with jitter applied.
  public func delay(attempt: Int) -> Duration {
    var generator = SystemRandomNumberGenerator()
    return delay(attempt: attempt, using: &generator)
  }

  /// The delay before attempt `attempt`, with jitter from the given generator (for tests).
  public func delay(attempt: Int, using generator: inout some RandomNumberGenerator) -> Duration {
    let base = baseDelay(attempt: attempt).seconds
    guard jitter > 0 else { return .seconds(base) }
    let factor = Double.random(in: (1 - jitter)...(1 + jitter), using: &generator)
    return .seconds(max(0, base * factor))
  }

  /// What is left to wait before attempt `attempt` when the failed attempt itself took `elapsed`.
  ///
  /// Attempts start at least one delay apart, and no more: an attempt that failed at once waits the
  /// whole delay, one that spent its time waiting on an unresponsive member goes again at once. A
  /// member that comes back is then found after one transport reconnect, not after that plus a sleep.
  public func remainingDelay(attempt: Int, after elapsed: Duration) -> Duration {
    var generator = SystemRandomNumberGenerator()
    return remainingDelay(attempt: attempt, after: elapsed, using: &generator)
  }

  /// ``remainingDelay(attempt:after:)`` with jitter from the given generator (for tests).
  public func remainingDelay(
    attempt: Int, after elapsed: Duration, using generator: inout some RandomNumberGenerator
  ) -> Duration {
    max(.zero, delay(attempt: attempt, using: &generator) - elapsed)
  }
}

extension Duration {
  /// The duration in seconds as a floating-point number.
  var seconds: Double {
    let (whole, attoseconds) = components
    return Double(whole) + Double(attoseconds) / 1e18
  }
}

extension String {
  func trimmingWhitespace() -> String {
    var view = Substring(self)
    while let first = view.first, first.isWhitespace { view = view.dropFirst() }
    while let last = view.last, last.isWhitespace { view = view.dropLast() }
    return String(view)
  }
}
