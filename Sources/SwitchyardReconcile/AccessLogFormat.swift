/// The line HAProxy sends the controller for every request (HTTP) or connection (TCP), and its parser.
///
/// HAProxy writes each line with a `log-format` of its own (``logFormat(_:)``), one datagram per line
/// (`format raw`), on the node's access log socket. The format is built so that the controller can read it
/// without guessing:
///
/// - it starts with a marker and the mode (`sy1 http`, `sy1 tcp`), so a line HAProxy sends for another reason
///   (`Proxy http stopped (…)` when a worker stops) is told apart from a record;
/// - the fields are in a fixed order, separated by one space, and every field but the last two is a number or
///   a name from the configuration (frontend, backend, server, termination state), none of which can hold a
///   space;
/// - the request's method and URI come last. HAProxy writes every byte of them outside 32…126, and `"` and
///   `#`, as `#XX` (section 8.6 of its manual), so neither holds a line break; the URI is everything after
///   the method's space, so a space in it could not shift a field.
///
/// Whatever a datagram holds, ``parse(_:)`` returns a value: a record, a message of HAProxy's, or the reason
/// why it is neither. It never traps and never reads past the datagram.
public enum AccessLogFormat {
  /// The first word of every line: the version of this format.
  public static let marker = "sy1"

  /// The most bytes HAProxy sends per line (its `log … len`). HAProxy cuts a URI at 1,024 bytes in logs
  /// (`tune.http.logurilen`), which its `#XX` escapes can make 3,072: a line fits, whatever the request.
  public static let maxLineLength = 4096

  /// HAProxy's fields for an HTTP request, in order, before the method and the URI.
  static let httpFields = [
    "%Ts", "%ms", "%ci", "%cp", "%ft", "%b", "%s", "%TR", "%Tw", "%Tc", "%Tr", "%Ta", "%Th", "%Ti", "%ST", "%B", "%U",
    "%ts", "%rc",
  ]
  /// HAProxy's fields for a TCP connection, in order.
  static let tcpFields = ["%Ts", "%ms", "%ci", "%cp", "%ft", "%b", "%s", "%Tw", "%Tc", "%Tt", "%B", "%U", "%ts", "%rc"]

  /// The `log-format` of a frontend in `mode`: what ``parse(_:)`` reads.
  public static func logFormat(_ mode: AccessRecord.Mode) -> String {
    switch mode {
    case .http: ([marker, "http"] + httpFields + ["%HM", "%HU"]).joined(separator: " ")
    case .tcp: ([marker, "tcp"] + tcpFields).joined(separator: " ")
    }
  }

  /// What one datagram from HAProxy holds.
  public enum Datagram: Sendable, Hashable {
    /// A request or a connection.
    case record(AccessRecord)
    /// A line without the marker: a message HAProxy sends to a frontend's log on its own account, such as
    /// `Proxy http stopped (cumulated conns: FE: 12, BE: 0).` when an old worker stops. Its bytes, without
    /// the line break.
    case message([UInt8])
    /// A line with the marker that does not parse, and why.
    case malformed(String)
  }

  /// Reads one datagram.
  public static func parse(_ datagram: some Collection<UInt8>) -> Datagram {
    var bytes = Array(datagram)
    if bytes.last == UInt8(ascii: "\n") { bytes.removeLast() }
    let prefix = Array((marker + " ").utf8)
    guard bytes.starts(with: prefix) else { return .message(bytes) }
    var reader = FieldReader(bytes: bytes[prefix.count...])
    switch reader.next().map(String.init(ascii:)) {
    case "http": return parseHTTP(&reader).map(Datagram.record) ?? .malformed(reader.problem)
    case "tcp": return parseTCP(&reader).map(Datagram.record) ?? .malformed(reader.problem)
    default: return .malformed("the mode is neither http nor tcp")
    }
  }

  private static func parseHTTP(_ reader: inout FieldReader) -> AccessRecord? {
    guard let common = reader.start() else { return nil }
    var timings: [Int] = []
    for name in ["TR", "Tw", "Tc", "Tr", "Ta", "Th", "Ti"] {
      guard let value = reader.integer(name, in: -1...Int(Int32.max)) else { return nil }
      timings.append(value)
    }
    guard let status = reader.integer("status", in: -1...999),
      let sent = reader.byteCount("bytes sent"),
      let received = reader.byteCount("bytes received"),
      let end = reader.end(),
      let method = reader.next()
    else { return nil }
    let uri = reader.rest()
    // The request began after the handshake and the idle time of a keep-alive connection.
    let start = common.accepted + Int64(max(timings[5], 0)) + Int64(max(timings[6], 0))
    return AccessRecord(
      mode: .http, start: start, clientAddress: common.client, clientPort: common.port, frontend: common.frontend,
      backend: common.backend, server: common.server,
      timings: zip(["TR", "Tw", "Tc", "Tr", "Ta"], timings).map { AccessRecord.Timing($0, $1) },
      status: status, bytesSent: sent, bytesReceived: received, termination: end.termination, retries: end.retries,
      redispatched: end.redispatched, method: unescape(method), path: unescape(uri))
  }

  private static func parseTCP(_ reader: inout FieldReader) -> AccessRecord? {
    guard let common = reader.start(),
      let queue = reader.integer("Tw", in: -1...Int(Int32.max)),
      let connect = reader.integer("Tc", in: -1...Int(Int32.max)),
      let total = reader.integer("Tt", in: -1...Int(Int32.max)),
      let sent = reader.byteCount("bytes sent"),
      let received = reader.byteCount("bytes received"),
      let end = reader.end()
    else { return nil }
    guard reader.isAtEnd else {
      reader.problem = "a tcp line has more fields than expected"
      return nil
    }
    return AccessRecord(
      mode: .tcp, start: common.accepted, clientAddress: common.client, clientPort: common.port,
      frontend: common.frontend, backend: common.backend, server: common.server,
      timings: [
        AccessRecord.Timing("Tw", queue), AccessRecord.Timing("Tc", connect), AccessRecord.Timing("Tt", total),
      ], status: nil, bytesSent: sent, bytesReceived: received,
      termination: end.termination, retries: end.retries, redispatched: end.redispatched, method: nil, path: nil)
  }

  /// `bytes` with HAProxy's `#XX` escapes turned back into the bytes they stand for. A `#` that is not
  /// followed by two hex digits (a line HAProxy cut at its length limit) stays as it is.
  static func unescape(_ bytes: some Collection<UInt8>) -> [UInt8] {
    let input = Array(bytes)
    var output: [UInt8] = []
    output.reserveCapacity(input.count)
    var index = 0
    while index < input.count {
      if input[index] == UInt8(ascii: "#"), index + 2 < input.count, let high = hexValue(input[index + 1]),
        let low = hexValue(input[index + 2])
      {
        output.append(high << 4 | low)
        index += 3
      } else {
        output.append(input[index])
        index += 1
      }
    }
    return output
  }

  private static func hexValue(_ byte: UInt8) -> UInt8? {
    switch byte {
    case UInt8(ascii: "0")...UInt8(ascii: "9"): byte - UInt8(ascii: "0")
    case UInt8(ascii: "A")...UInt8(ascii: "F"): byte - UInt8(ascii: "A") + 10
    case UInt8(ascii: "a")...UInt8(ascii: "f"): byte - UInt8(ascii: "a") + 10
    default: nil
    }
  }
}

/// Reads the space-separated fields of a line, one at a time, and says what was wrong with the first field
/// that does not parse.
private struct FieldReader {
  var bytes: ArraySlice<UInt8>
  var problem = "the line ends early"

  /// The fields every line starts with.
  struct Start {
    var accepted: Int64
    var client: String
    var port: Int
    var frontend: String
    var backend: String
    var server: String?
  }

  /// The termination state and the retries, which every line has after its counters.
  struct End {
    var termination: String
    var retries: Int
    var redispatched: Bool
  }

  var isAtEnd: Bool { bytes.isEmpty }

  /// The next field, or nil at the end of the line or on an empty field (two spaces in a row).
  mutating func next() -> ArraySlice<UInt8>? {
    guard !bytes.isEmpty else { return nil }
    let end = bytes.firstIndex(of: UInt8(ascii: " ")) ?? bytes.endIndex
    let field = bytes[bytes.startIndex..<end]
    bytes = end == bytes.endIndex ? [] : bytes[(end + 1)...]
    guard !field.isEmpty else {
      problem = "a field is empty"
      return nil
    }
    return field
  }

  /// Everything that is left, spaces included.
  mutating func rest() -> ArraySlice<UInt8> {
    defer { bytes = [] }
    return bytes
  }

  mutating func integer(_ name: String, in range: ClosedRange<Int>) -> Int? {
    guard let field = next() else { return nil }
    guard let value = Self.decimal(field), range.contains(value) else {
      problem = "\(name) is not a number from \(range.lowerBound) to \(range.upperBound)"
      return nil
    }
    return value
  }

  /// A byte counter: a number of at most 18 digits, which HAProxy prefixes with `+` while a transfer is not
  /// finished.
  mutating func byteCount(_ name: String) -> Int64? {
    guard var field = next() else { return nil }
    if field.first == UInt8(ascii: "+") { field = field.dropFirst() }
    guard let value = Self.decimal(field), value >= 0 else {
      problem = "\(name) is not a count of bytes"
      return nil
    }
    return Int64(value)
  }

  /// A name from the configuration (a proxy, a server) or HAProxy's `<NOSRV>`: letters, digits and `-_.:~<>`.
  mutating func name(_ what: String) -> String? {
    guard let field = next() else { return nil }
    guard field.count <= 256, field.allSatisfy(Self.isNameByte) else {
      problem = "the \(what) name holds a byte no HAProxy name holds"
      return nil
    }
    return String(decoding: field, as: UTF8.self)
  }

  mutating func start() -> Start? {
    guard let seconds = integer("the timestamp", in: 0...99_999_999_999),
      let milliseconds = integer("the milliseconds", in: 0...999)
    else { return nil }
    guard let client = next() else { return nil }
    guard client.count <= 64, client.allSatisfy(Self.isAddressByte) else {
      problem = "the client address is neither an IP address nor a socket name"
      return nil
    }
    guard let port = integer("the client port", in: 0...65535),
      let frontend = name("frontend"),
      let backend = name("backend"),
      let server = name("server")
    else { return nil }
    return Start(
      accepted: Int64(seconds) * 1000 + Int64(milliseconds), client: String(decoding: client, as: UTF8.self),
      port: port, frontend: frontend, backend: backend, server: server == "<NOSRV>" ? nil : server)
  }

  mutating func end() -> End? {
    guard let termination = next() else { return nil }
    guard termination.count <= 4, termination.allSatisfy(Self.isTerminationByte) else {
      problem = "the termination state is not HAProxy's"
      return nil
    }
    guard var retries = next() else { return nil }
    let redispatched = retries.first == UInt8(ascii: "+")
    if redispatched { retries = retries.dropFirst() }
    guard let count = Self.decimal(retries), (-1...1_000_000).contains(count) else {
      problem = "the retries are not a number"
      return nil
    }
    return End(termination: String(decoding: termination, as: UTF8.self), retries: count, redispatched: redispatched)
  }

  /// A decimal number with an optional `-`, of at most 18 digits (so it cannot overflow).
  static func decimal(_ field: ArraySlice<UInt8>) -> Int? {
    var digits = field
    let negative = digits.first == UInt8(ascii: "-")
    if negative { digits = digits.dropFirst() }
    guard !digits.isEmpty, digits.count <= 18 else { return nil }
    var value = 0
    for byte in digits {
      guard (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(byte) else { return nil }
      value = value * 10 + Int(byte - UInt8(ascii: "0"))
    }
    return negative ? -value : value
  }

  static func isNameByte(_ byte: UInt8) -> Bool {
    switch byte {
    case UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "A")...UInt8(ascii: "Z"),
      UInt8(ascii: "0")...UInt8(ascii: "9"), UInt8(ascii: "-"), UInt8(ascii: "_"), UInt8(ascii: "."),
      UInt8(ascii: ":"), UInt8(ascii: "~"), UInt8(ascii: "<"), UInt8(ascii: ">"):
      true
    default: false
    }
  }

  static func isAddressByte(_ byte: UInt8) -> Bool {
    switch byte {
    case UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "A")...UInt8(ascii: "Z"),
      UInt8(ascii: "0")...UInt8(ascii: "9"), UInt8(ascii: ":"), UInt8(ascii: "."), UInt8(ascii: "-"),
      UInt8(ascii: "%"):
      true
    default: false
    }
  }

  static func isTerminationByte(_ byte: UInt8) -> Bool {
    switch byte {
    case UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "A")...UInt8(ascii: "Z"), UInt8(ascii: "-"): true
    default: false
    }
  }
}

extension String {
  /// The bytes of a field that the parser checked to be ASCII.
  fileprivate init(ascii field: ArraySlice<UInt8>) {
    self.init(decoding: field, as: UTF8.self)
  }
}
