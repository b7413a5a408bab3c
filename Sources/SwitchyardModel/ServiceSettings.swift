import Foundation

/// How one service is served, kept in etcd under `/switchyard/services/<service>` as JSON:
/// `{"balance":"leastconn","check":{"interval":"2s","type":"tcp"},"mode":"tcp","port":6379}`.
///
/// Every field is optional: `nil` means the node's default, which is how services were served before
/// settings existed, so a service without settings behaves as it always did. Operators write these
/// keys, never registrars: one instance must not change how its whole service is balanced.
///
/// `init` and `parse` validate every field. The fields are `var` so that a writer (the CLI) can
/// change one setting of a value it read; call ``validate()`` before it writes the result.
public struct ServiceSettings: Sendable, Hashable {
  /// Every service's settings live under this prefix.
  public static let root = "/switchyard/services/"
  /// Largest accepted value, in bytes.
  public static let maxValueBytes = 4096

  /// Accepted durations of checks and timeouts: 100 ms to 1 hour.
  public static let durationRange = Duration.milliseconds(100)...Duration.seconds(3600)
  /// Accepted check `rise` and `fall` counts.
  public static let checkCountRange = 1...100
  /// Accepted `retries`.
  public static let retriesRange = 0...10
  /// Accepted `maxconn`, per server.
  public static let maxconnRange = 1...100_000
  /// Accepted `port` of a TCP service.
  public static let portRange = 1...65535

  /// How HAProxy picks a server for a new connection (its `balance` algorithms of the same names).
  public enum Balance: String, Sendable, Hashable, CaseIterable {
    /// In turn, by weight: the node's default.
    case roundrobin
    /// The server with the fewest connections: for long or uneven requests.
    case leastconn
    /// A random server, by weight.
    case random
    /// By client address, so a client keeps its server while the servers stay the same.
    case source
  }

  /// Whether HAProxy reads requests (HTTP) or only forwards bytes (TCP, on a port of the service's own).
  public enum Mode: String, Sendable, Hashable, CaseIterable {
    /// Requests are routed by host and path: the node's default.
    case http
    /// Connections on ``ServiceSettings/port`` go to the service as they are (databases, caches).
    case tcp
  }

  /// How the service's servers are health-checked, where it differs from the node's defaults.
  public struct Check: Sendable, Hashable {
    /// What a check does.
    public enum Kind: String, Sendable, Hashable, CaseIterable {
      /// An HTTP GET that must answer 2xx or 3xx.
      case http
      /// A TCP connection that must be accepted.
      case tcp
    }

    /// HTTP or TCP.
    public var kind: Kind
    /// The path of an HTTP check; `nil` takes the path the registrations name (as before settings
    /// existed). Same rules as a registration's check path (``Registration/checkPathProblem(_:)``).
    public var path: String?
    /// Time between two checks of a server.
    public var interval: Duration?
    /// How long a check may take; at most ``interval`` when both are given.
    public var timeout: Duration?
    /// Successful checks in a row that bring a server up.
    public var rise: Int?
    /// Failed checks in a row that take a server down.
    public var fall: Int?

    /// Creates a check; ``ServiceSettings`` validates it.
    public init(
      kind: Kind = .http,
      path: String? = nil,
      interval: Duration? = nil,
      timeout: Duration? = nil,
      rise: Int? = nil,
      fall: Int? = nil
    ) {
      self.kind = kind
      self.path = path
      self.interval = interval
      self.timeout = timeout
      self.rise = rise
      self.fall = fall
    }
  }

  /// The service these settings are for, from the key.
  public let service: ServiceName
  /// The balancing algorithm; `nil` is the node's (round robin).
  public var balance: Balance?
  /// HTTP (the default) or TCP.
  public var mode: Mode
  /// The port a TCP service listens on at every node: required with ``Mode/tcp``, refused with HTTP.
  public var port: Int?
  /// The health check, where it differs from the node's.
  public var check: Check?
  /// How long HAProxy waits for a connection to a server.
  public var timeoutConnect: Duration?
  /// How long HAProxy waits for a server's response (HTTP) or data (TCP).
  public var timeoutServer: Duration?
  /// How often a failed connection is tried again, 0–10.
  public var retries: Int?
  /// Most concurrent connections per server, 1–100000; more wait in HAProxy's queue.
  public var maxconn: Int?
  /// The etcd revision of its last change (0 when unknown).
  public var modRevision: Int64

  /// Creates settings, validating every field (see ``validate()``). Errors have code
  /// `.invalidField` and name the field as the JSON does: `port`, `check.interval`, `timeout_server`.
  public init(
    service: ServiceName,
    balance: Balance? = nil,
    mode: Mode = .http,
    port: Int? = nil,
    check: Check? = nil,
    timeoutConnect: Duration? = nil,
    timeoutServer: Duration? = nil,
    retries: Int? = nil,
    maxconn: Int? = nil,
    modRevision: Int64 = 0
  ) throws(RegistrationError) {
    self.service = service
    self.balance = balance
    self.mode = mode
    self.port = port
    self.check = check
    self.timeoutConnect = timeoutConnect
    self.timeoutServer = timeoutServer
    self.retries = retries
    self.maxconn = maxconn
    self.modRevision = modRevision
    try validate()
  }

  /// Checks every field: a port exactly with TCP, durations of whole milliseconds in
  /// ``durationRange``, a check timeout no longer than its interval, counts in their ranges, an HTTP
  /// check's path by the registration rules, and no path on a TCP check. `init` calls it; call it
  /// again after changing a field.
  public func validate() throws(RegistrationError) {
    func failure(_ field: String, _ reason: String) -> RegistrationError {
      RegistrationError(code: .invalidField, field: field, reason: reason)
    }
    switch (mode, port) {
    case (.tcp, nil): throw failure("port", "is required with mode \"tcp\"")
    case (.tcp, let port?) where !Self.portRange.contains(port):
      throw failure("port", Self.outside(port, Self.portRange))
    case (.http, _?): throw failure("port", "is only for mode \"tcp\"; HTTP services share the node's port")
    default: break
    }
    if let check {
      if let path = check.path {
        guard check.kind == .http else { throw failure("check.path", "is only for checks of type \"http\"") }
        if let problem = Registration.checkPathProblem(path) { throw failure("check.path", problem) }
      }
      if let problem = Self.durationProblem(check.interval) { throw failure("check.interval", problem) }
      if let problem = Self.durationProblem(check.timeout) { throw failure("check.timeout", problem) }
      if let interval = check.interval, let timeout = check.timeout, timeout > interval {
        throw failure(
          "check.timeout",
          "\(Self.durationText(timeout)) is longer than check.interval \(Self.durationText(interval))")
      }
      if let rise = check.rise, !Self.checkCountRange.contains(rise) {
        throw failure("check.rise", Self.outside(rise, Self.checkCountRange))
      }
      if let fall = check.fall, !Self.checkCountRange.contains(fall) {
        throw failure("check.fall", Self.outside(fall, Self.checkCountRange))
      }
    }
    if let problem = Self.durationProblem(timeoutConnect) { throw failure("timeout_connect", problem) }
    if let problem = Self.durationProblem(timeoutServer) { throw failure("timeout_server", problem) }
    if let retries, !Self.retriesRange.contains(retries) {
      throw failure("retries", Self.outside(retries, Self.retriesRange))
    }
    if let maxconn, !Self.maxconnRange.contains(maxconn) {
      throw failure("maxconn", Self.outside(maxconn, Self.maxconnRange))
    }
  }

  /// The etcd key of `service`'s settings: `/switchyard/services/<service>`.
  public static func path(for service: ServiceName) -> String { root + service.rawValue }

  /// The etcd key.
  public var path: String { Self.path(for: service) }

  // MARK: - Durations

  /// `250ms`, `2s`, `1m` → a duration; `nil` when `text` is not `<digits><ms|s|m>` (no sign, no
  /// spaces, no other unit, at most 12 digits). Public: the CLI reads its options with it.
  public static func parseDuration(_ text: String) -> Duration? {
    let bytes = Array(text.utf8)
    let digits = bytes.prefix { (UInt8(ascii: "0")...UInt8(ascii: "9")).contains($0) }
    guard !digits.isEmpty, digits.count <= 12 else { return nil }
    let number = digits.reduce(Int64(0)) { $0 * 10 + Int64($1 - UInt8(ascii: "0")) }
    switch String(decoding: bytes.dropFirst(digits.count), as: UTF8.self) {
    case "ms": return .milliseconds(number)
    case "s": return .seconds(number)
    case "m": return .seconds(number * 60)
    default: return nil
    }
  }

  /// A duration as it is written: `2s`, or `1500ms` when not whole seconds (anything below a
  /// millisecond is dropped; valid settings have none).
  public static func durationText(_ value: Duration) -> String {
    let milliseconds = wholeMilliseconds(value)
    return milliseconds % 1000 == 0 ? "\(milliseconds / 1000)s" : "\(milliseconds)ms"
  }

  private static func wholeMilliseconds(_ value: Duration) -> Int64 {
    value.components.seconds * 1000 + value.components.attoseconds / 1_000_000_000_000_000
  }

  private static func durationProblem(_ value: Duration?) -> String? {
    guard let value else { return nil }
    guard durationRange.contains(value) else {
      let text = value < .zero ? "a negative duration" : durationText(value)
      return "\(text) is outside \(durationText(durationRange.lowerBound))–\(durationText(durationRange.upperBound))"
    }
    guard value == .milliseconds(wholeMilliseconds(value)) else { return "is not a whole number of milliseconds" }
    return nil
  }

  private static func outside(_ number: Int, _ range: ClosedRange<Int>) -> String {
    "\(number) is outside \(range.lowerBound)–\(range.upperBound)"
  }

  // MARK: - Wire form

  /// The value to write: compact JSON with sorted keys and only the fields that are set (`mode`
  /// only when `tcp`; a check always with its `type`):
  /// `{"balance":"leastconn","check":{"interval":"2s","type":"tcp"},"mode":"tcp","port":6379}`.
  public func encoded() -> [UInt8] {
    let wire = Wire(
      balance: balance?.rawValue,
      check: check.map { check in
        Wire.Check(
          fall: check.fall,
          interval: check.interval.map(Self.durationText),
          path: check.path,
          rise: check.rise,
          timeout: check.timeout.map(Self.durationText),
          type: check.kind.rawValue
        )
      },
      maxconn: maxconn,
      mode: mode == .tcp ? mode.rawValue : nil,
      port: port,
      retries: retries,
      timeoutConnect: timeoutConnect.map(Self.durationText),
      timeoutServer: timeoutServer.map(Self.durationText)
    )
    return ModelJSON.encode(wire)
  }

  private struct Wire: Encodable {
    struct Check: Encodable {
      var fall: Int?
      var interval: String?
      var path: String?
      var rise: Int?
      var timeout: String?
      var type: String
    }
    var balance: String?
    var check: Check?
    var maxconn: Int?
    var mode: String?
    var port: Int?
    var retries: Int?
    var timeoutConnect: String?
    var timeoutServer: String?

    enum CodingKeys: String, CodingKey {
      case balance
      case check
      case maxconn
      case mode
      case port
      case retries
      case timeoutConnect = "timeout_connect"
      case timeoutServer = "timeout_server"
    }
  }
}
