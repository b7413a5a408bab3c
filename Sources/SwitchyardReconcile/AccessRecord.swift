/// One request (HTTP) or connection (TCP) that a node's HAProxy handled, as its access log line said.
public struct AccessRecord: Sendable, Hashable {
  /// How the frontend handled the traffic.
  public enum Mode: String, Sendable, Hashable, CaseIterable {
    /// An HTTP request.
    case http
    /// A TCP connection of a `tcp` service.
    case tcp
  }

  /// One of HAProxy's timers, in milliseconds; -1 when the step did not happen (no connection to a server,
  /// for example).
  public struct Timing: Sendable, Hashable {
    /// HAProxy's name: `TR`, `Tw`, `Tc`, `Tr`, `Ta` (HTTP) or `Tw`, `Tc`, `Tt` (TCP).
    public var name: String
    /// Milliseconds.
    public var milliseconds: Int

    /// Creates a timing.
    public init(_ name: String, _ milliseconds: Int) {
      self.name = name
      self.milliseconds = milliseconds
    }
  }

  /// HTTP or TCP.
  public var mode: Mode
  /// When the request began (HTTP: its first byte, after a keep-alive connection's idle time) or the
  /// connection was accepted (TCP), in milliseconds since 1970 (UTC).
  public var start: Int64
  /// The client's IP address, as HAProxy wrote it.
  public var clientAddress: String
  /// The client's port.
  public var clientPort: Int
  /// The frontend: `http`, or `tcp_<service>`.
  public var frontend: String
  /// The backend: `svc_<service>`; `sy_unavailable` for a route whose service has no backend; the frontend's
  /// name when the request reached none (no route, a bad request).
  public var backend: String
  /// The server that answered, or nil when none did (`<NOSRV>`).
  public var server: String?
  /// HAProxy's timers: `TR`, `Tw`, `Tc`, `Tr`, `Ta` for HTTP, `Tw`, `Tc`, `Tt` for TCP.
  public var timings: [Timing]
  /// The HTTP status sent to the client (-1 when none was); nil for TCP.
  public var status: Int?
  /// Bytes sent to the client (headers included).
  public var bytesSent: Int64
  /// Bytes received from the client (headers included).
  public var bytesReceived: Int64
  /// HAProxy's termination state: two letters, `--` for a normal end (section 8.5 of its manual).
  public var termination: String
  /// Connection retries to servers.
  public var retries: Int
  /// Whether the request was sent to another server than the first one chosen (HAProxy's `+` on retries).
  public var redispatched: Bool
  /// The HTTP method, as HAProxy saw it (`<BADREQ>` for a request it could not parse); nil for TCP.
  public var method: [UInt8]?
  /// The request URI as the client sent it (path and query string), before any rewrite; nil for TCP.
  public var path: [UInt8]?

  /// Creates a record.
  public init(
    mode: Mode, start: Int64, clientAddress: String, clientPort: Int, frontend: String, backend: String,
    server: String?, timings: [Timing], status: Int?, bytesSent: Int64, bytesReceived: Int64, termination: String,
    retries: Int, redispatched: Bool, method: [UInt8]?, path: [UInt8]?
  ) {
    self.mode = mode
    self.start = start
    self.clientAddress = clientAddress
    self.clientPort = clientPort
    self.frontend = frontend
    self.backend = backend
    self.server = server
    self.timings = timings
    self.status = status
    self.bytesSent = bytesSent
    self.bytesReceived = bytesReceived
    self.termination = termination
    self.retries = retries
    self.redispatched = redispatched
    self.method = method
    self.path = path
  }

  /// The service whose backend handled the request (`svc_<service>`), or nil when no service's did.
  public var service: String? {
    let prefix = "svc_"
    guard backend.hasPrefix(prefix), backend.count > prefix.count else { return nil }
    return String(backend.dropFirst(prefix.count))
  }

  /// The path as text, with bytes that are not UTF-8 replaced (for tests and messages).
  public var pathText: String? { path.map { String(decoding: $0, as: UTF8.self) } }
}

/// How the controller writes access records.
public enum AccessLogStyle: String, Sendable, Hashable, CaseIterable {
  /// One line of `key=value` pairs (logfmt); a value with a space, a quote, `=`, `\` or anything but
  /// printable text is quoted, with escapes.
  case text
  /// One JSON object per line.
  case json
}

extension AccessRecord {
  /// The record as one line of `style`, ending with a line break, as node `node` writes it.
  ///
  /// Whatever the method and the path hold (quotes, `|`, control characters, bytes that are not UTF-8), the
  /// line is one line: no byte of it is a line break but the last, and in JSON it is valid UTF-8 and one
  /// valid object.
  public func rendered(_ style: AccessLogStyle, node: String) -> [UInt8] {
    var line: [UInt8] = []
    line.reserveCapacity(320 + (path?.count ?? 0))
    switch style {
    case .text: renderText(into: &line, node: node)
    case .json: renderJSON(into: &line, node: node)
    }
    line.append(UInt8(ascii: "\n"))
    return line
  }

  private func renderText(into line: inout [UInt8], node: String) {
    var first = true
    func field(_ key: String, _ value: some Collection<UInt8>) {
      if !first { line.append(UInt8(ascii: " ")) }
      first = false
      line += key.utf8
      line.append(UInt8(ascii: "="))
      LogEscaping.appendTextValue(value, to: &line)
    }
    field("time", Self.timestamp(start).utf8)
    field("node", node.utf8)
    field("mode", mode.rawValue.utf8)
    field("frontend", frontend.utf8)
    field("backend", backend.utf8)
    field("service", (service ?? "-").utf8)
    field("server", (server ?? "-").utf8)
    let host = clientAddress.contains(":") ? "[\(clientAddress)]" : clientAddress
    field("client", "\(host):\(clientPort)".utf8)
    if let method { field("method", method) }
    if let path { field("path", path) }
    if let status { field("status", String(status).utf8) }
    field("bytes_sent", String(bytesSent).utf8)
    field("bytes_received", String(bytesReceived).utf8)
    for timing in timings { field(timing.name, String(timing.milliseconds).utf8) }
    field("termination", termination.utf8)
    field("retries", ((redispatched ? "+" : "") + String(retries)).utf8)
  }

  private func renderJSON(into line: inout [UInt8], node: String) {
    var first = true
    func key(_ name: String) {
      line.append(first ? UInt8(ascii: "{") : UInt8(ascii: ","))
      first = false
      LogEscaping.appendJSONString(name.utf8, to: &line)
      line.append(UInt8(ascii: ":"))
    }
    func string(_ name: String, _ value: (some Collection<UInt8>)?) {
      key(name)
      if let value { LogEscaping.appendJSONString(value, to: &line) } else { line += "null".utf8 }
    }
    func number(_ name: String, _ value: some BinaryInteger) {
      key(name)
      line += String(value).utf8
    }
    string("time", Self.timestamp(start).utf8)
    string("node", node.utf8)
    string("mode", mode.rawValue.utf8)
    string("frontend", frontend.utf8)
    string("backend", backend.utf8)
    string("service", service?.utf8)
    string("server", server?.utf8)
    string("client_ip", clientAddress.utf8)
    number("client_port", clientPort)
    if let method { string("method", method) }
    if let path { string("path", path) }
    if let status { number("status", status) }
    number("bytes_sent", bytesSent)
    number("bytes_received", bytesReceived)
    for timing in timings { number(timing.name, timing.milliseconds) }
    string("termination", termination.utf8)
    number("retries", retries)
    key("redispatched")
    line += (redispatched ? "true" : "false").utf8
    line.append(UInt8(ascii: "}"))
  }

  /// `2026-11-25T10:00:00.123Z` for milliseconds since 1970.
  static func timestamp(_ milliseconds: Int64) -> String {
    let (days, dayMilliseconds) = milliseconds.quotientAndRemainderFlooring(dividingBy: 86_400_000)
    let (year, month, day) = civilDate(daysSince1970: days)
    let seconds = dayMilliseconds / 1000
    func padded(_ value: Int64, _ width: Int) -> String {
      let text = String(value)
      return String(repeating: "0", count: max(0, width - text.count)) + text
    }
    return "\(padded(year, 4))-\(padded(month, 2))-\(padded(day, 2))T\(padded(seconds / 3600, 2)):"
      + "\(padded(seconds / 60 % 60, 2)):\(padded(seconds % 60, 2)).\(padded(dayMilliseconds % 1000, 3))Z"
  }

  /// The proleptic Gregorian date of a day number (days since 1970-01-01), after Howard Hinnant's
  /// `civil_from_days`.
  static func civilDate(daysSince1970 days: Int64) -> (year: Int64, month: Int64, day: Int64) {
    let shifted = days + 719_468
    let era = (shifted >= 0 ? shifted : shifted - 146_096) / 146_097
    let dayOfEra = shifted - era * 146_097
    let yearOfEra = (dayOfEra - dayOfEra / 1460 + dayOfEra / 36524 - dayOfEra / 146_096) / 365
    let dayOfYear = dayOfEra - (365 * yearOfEra + yearOfEra / 4 - yearOfEra / 100)
    let monthIndex = (5 * dayOfYear + 2) / 153
    let day = dayOfYear - (153 * monthIndex + 2) / 5 + 1
    let month = monthIndex < 10 ? monthIndex + 3 : monthIndex - 9
    return (yearOfEra + era * 400 + (month <= 2 ? 1 : 0), month, day)
  }
}

extension Int64 {
  /// Division that rounds towards minus infinity, with a remainder that is never negative.
  fileprivate func quotientAndRemainderFlooring(dividingBy divisor: Int64) -> (Int64, Int64) {
    let (quotient, remainder) = quotientAndRemainder(dividingBy: divisor)
    return remainder < 0 ? (quotient - 1, remainder + divisor) : (quotient, remainder)
  }
}
