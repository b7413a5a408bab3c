import Foundation
import SwitchyardModel
import SwitchyardReconcile
import Testing

@Suite("Access log: HAProxy's lines parsed, records rendered as text and JSON")
struct AccessLogFormatTests {
  /// Lines HAProxy 2.6.12 and 3.0.11 sent for the formats of ``AccessLogFormat`` (both sent the same).
  static let seen = [
    "sy1 http 1796558973 697 127.0.0.1 51526 http svc_backend backend-1 0 0 0 1 1 0 0 200 665 82 -- 0 GET /\n",
    "sy1 http 1796558973 689 127.0.0.1 51522 http http <NOSRV> 0 -1 -1 -1 0 0 0 404 73 84 LR 0 GET /nowhere\n",
    "sy1 http 1796558978 149 127.0.0.1 49698 http http <NOSRV> -1 -1 -1 -1 0 0 0 400 0 0 PR 0 <BADREQ> <BADREQ>\n",
    "sy1 http 1796558978 150 127.0.0.1 49700 http svc_backend b2 0 0 0 0 0 0 0 501 535 40 -- 0 GE|T /q\n",
    "sy1 http 1796558986 333 127.0.0.1 49756 http svc_backend b2 0 0 0 1 1 0 0 404 500 41 -- 0 GET /a#22b?x=#7F\n",
    "sy1 tcp 1796558978 155 127.0.0.1 44958 tcp_db svc_db db-1 1 0 0 705 18 CD 0\n",
    "sy1 tcp 1796558978 156 ::1 44972 tcp_db svc_db db-1 1 -1 0 0 0 CC +2\n",
  ]

  static func record(_ line: String) throws -> AccessRecord {
    guard case .record(let record) = AccessLogFormat.parse(Array(line.utf8)) else {
      throw ParseFailure(line: line, result: AccessLogFormat.parse(Array(line.utf8)))
    }
    return record
  }

  struct ParseFailure: Error {
    var line: String
    var result: AccessLogFormat.Datagram
  }

  @Test("HAProxy's own lines parse into the fields they hold")
  func parsesWhatHAProxySends() throws {
    let ok = try Self.record(Self.seen[0])
    #expect(ok.mode == .http)
    #expect(ok.service == "backend" && ok.server == "backend-1" && ok.frontend == "http")
    #expect(ok.status == 200 && ok.bytesSent == 665 && ok.bytesReceived == 82)
    #expect(ok.method == Array("GET".utf8) && ok.pathText == "/")
    #expect(ok.timings.map(\.name) == ["TR", "Tw", "Tc", "Tr", "Ta"])
    #expect(ok.timings.map(\.milliseconds) == [0, 0, 0, 1, 1])
    #expect(ok.termination == "--" && ok.retries == 0 && !ok.redispatched)
    #expect(ok.start == 1_796_558_973_697)

    let noRoute = try Self.record(Self.seen[1])
    #expect(noRoute.service == nil && noRoute.server == nil && noRoute.backend == "http")
    let bad = try Self.record(Self.seen[2])
    #expect(bad.status == 400 && bad.pathText == "<BADREQ>")
    // `|` is a token character: HAProxy takes it in a method and passes it on.
    #expect(try Self.record(Self.seen[3]).method == Array("GE|T".utf8))
    // HAProxy's escapes are turned back into the bytes the client sent.
    #expect(try Self.record(Self.seen[4]).path == Array("/a\"b?x=\u{7F}".utf8))

    let tcp = try Self.record(Self.seen[5])
    #expect(tcp.mode == .tcp && tcp.service == "db" && tcp.status == nil && tcp.path == nil)
    #expect(tcp.timings.map(\.name) == ["Tw", "Tc", "Tt"] && tcp.timings.map(\.milliseconds) == [1, 0, 0])
    #expect(tcp.bytesSent == 705 && tcp.bytesReceived == 18 && tcp.termination == "CD")
    let redispatched = try Self.record(Self.seen[6])
    #expect(redispatched.clientAddress == "::1" && redispatched.retries == 2 && redispatched.redispatched)
  }

  @Test("an HTTP request's time is when it began: the accept date plus the handshake and the idle time")
  func requestTimeAddsIdleTime() throws {
    let line = "sy1 http 1796558973 900 127.0.0.1 1 http svc_a a1 0 0 0 1 1 5 200 200 1 1 -- 0 GET /\n"
    #expect(try Self.record(line).start == 1_796_558_974_105)
  }

  @Test("lines without the marker are HAProxy's messages; lines with it that do not parse say why")
  func messagesAndMalformedLines() {
    #expect(
      AccessLogFormat.parse(Array("Proxy http stopped (cumulated conns: FE: 3, BE: 0).\n".utf8))
        == .message(Array("Proxy http stopped (cumulated conns: FE: 3, BE: 0).".utf8)))
    #expect(AccessLogFormat.parse(Array("sy1".utf8)) == .message(Array("sy1".utf8)))
    let broken = [
      "sy1 ",
      "sy1 ftp 1 2",
      "sy1 http 1796558973 697 127.0.0.1 51526 http svc_backend backend-1 0 0 0 1 1 0 0 200 665 82 --",
      "sy1 http 1796558973 697 127.0.0.1 51526 http svc_backend backend-1 0 0 0 1 1 0 0 200 665 82 -- 0",
      "sy1 http x 697 127.0.0.1 51526 http svc_backend backend-1 0 0 0 1 1 0 0 200 665 82 -- 0 GET /",
      "sy1 http 1796558973 697 127.0.0.1 51526 http svc\"backend backend-1 0 0 0 1 1 0 0 200 665 82 -- 0 GET /",
      "sy1 http 1796558973 697 127.0.0.1  51526 http svc_backend backend-1 0 0 0 1 1 0 0 200 665 82 -- 0 GET /",
      "sy1 http 1796558973 697 127.0.0.1 99999 http svc_backend backend-1 0 0 0 1 1 0 0 200 665 82 -- 0 GET /",
      "sy1 http 1796558973 697 127.0.0.1 1 http svc_backend backend-1 0 0 0 1 1 0 0 200 99999999999999999999 0 -- 0 G /",
      "sy1 tcp 1796558978 155 127.0.0.1 44958 tcp_db svc_db db-1 1 0 0 705 18 CD 0 extra",
      "sy1 tcp 1796558978 155 127.0.0.1 44958 tcp_db svc_db db-1 1 0 0 705 18 C\u{1}D 0",
    ]
    for line in broken {
      guard case .malformed(let reason) = AccessLogFormat.parse(Array(line.utf8)) else {
        Issue.record("parsed: \(line)")
        continue
      }
      #expect(!reason.isEmpty)
    }
  }

  /// Paths no HAProxy passes on today (it answers 400), but which a forged datagram or another release
  /// could bring: every one must come out as one line of text and as valid JSON holding the same path.
  static let hostilePaths: [[UInt8]] = [
    Array("/a\"b\"".utf8),
    Array("/a|b||c".utf8),
    Array("/back\\slash\\".utf8),
    Array("/new\nline\r\n".utf8),
    [0x2F, 0x00, 0x01, 0x1B, 0x5B, 0x33, 0x31, 0x6D, 0x7F],  // NUL, SOH, an ANSI colour, DEL
    [0x2F, 0xFF, 0xFE, 0xC0, 0xAF, 0xED, 0xA0, 0x80, 0xF4, 0x90, 0x80, 0x80, 0xE2, 0x82],  // not UTF-8
    Array("/\u{2028}\u{2029}\u{85}\u{202E}evil\u{200B}".utf8),  // separators, NEL, a bidi override
    Array("/é/日本/🙂 space".utf8),
    Array("/key=value a=b \"=\"".utf8),
    Array(repeating: UInt8(ascii: "#"), count: 3) + Array("#2".utf8),
    [],
  ]

  @Test("hostile paths: one line of text that reads back to the same bytes, and valid JSON")
  func hostilePathsStayOnOneLine() throws {
    for path in Self.hostilePaths {
      var record = try Self.record(Self.seen[0])
      record.path = path
      record.method = path
      let text = record.rendered(.text, node: "lb1")
      try Self.expectOneLine(text)
      let fields = try Self.readText(text)
      #expect(fields["path"] == path, "text path of \(path)")
      #expect(fields["method"] == path)
      #expect(fields["node"] == Array("lb1".utf8))

      let json = record.rendered(.json, node: "lb1")
      try Self.expectOneLine(json)
      let object = try #require(
        try JSONSerialization.jsonObject(with: Data(json)) as? [String: Any], "JSON of \(path)")
      #expect(object["path"] as? String == String(decoding: path, as: UTF8.self), "JSON path of \(path)")
      #expect(object["status"] as? Int == 200 && object["service"] as? String == "backend")
    }
  }

  @Test("random datagrams never trap; every record they yield renders as one line and valid JSON")
  func fuzz() throws {
    var generator = SystemRandomNumberGenerator()
    let alphabet = Array(" #-+<>0123456789:.|\"\\\n\r\t\u{0}".utf8) + [0xFF, 0xC3, 0xA9, 0xE2, 0x80, 0xA8]
    var records = 0
    for round in 0..<8_000 {
      var bytes: [UInt8]
      switch round % 4 {
      case 0:
        bytes = (0..<Int.random(in: 0...200, using: &generator)).map { _ in UInt8.random(in: 0...255, using: &generator)
        }
      case 1:
        // A valid line with a random tail as its URI.
        bytes = Array(Self.seen[0].utf8.dropLast(2))
        bytes += (0..<Int.random(in: 0...80, using: &generator)).map { _ in
          alphabet.randomElement(using: &generator)!
        }
      default:
        // A valid line with bytes replaced.
        bytes = Array(Self.seen[Int.random(in: 0..<Self.seen.count, using: &generator)].utf8)
        for _ in 0..<Int.random(in: 1...4, using: &generator) {
          bytes[Int.random(in: 0..<bytes.count, using: &generator)] = alphabet.randomElement(using: &generator)!
        }
      }
      guard case .record(let record) = AccessLogFormat.parse(bytes) else { continue }
      records += 1
      try Self.expectOneLine(record.rendered(.text, node: "lb1"))
      let json = record.rendered(.json, node: "lb1")
      try Self.expectOneLine(json)
      #expect(try JSONSerialization.jsonObject(with: Data(json)) is [String: Any])
    }
    #expect(records > 2_000)
  }

  @Test("a TCP record in text and JSON")
  func tcpRecord() throws {
    let record = try Self.record(Self.seen[6])
    let text = String(decoding: record.rendered(.text, node: "lb2"), as: UTF8.self)
    #expect(
      text == "time=2026-12-06T12:09:38.156Z node=lb2 mode=tcp frontend=tcp_db backend=svc_db service=db "
        + "server=db-1 client=[::1]:44972 bytes_sent=0 bytes_received=0 Tw=1 Tc=-1 Tt=0 termination=CC retries=+2\n")
    let json = String(decoding: record.rendered(.json, node: "lb2"), as: UTF8.self)
    #expect(
      json == #"{"time":"2026-12-06T12:09:38.156Z","node":"lb2","mode":"tcp","frontend":"tcp_db","backend":"svc_db","#
        + #""service":"db","server":"db-1","client_ip":"::1","client_port":44972,"bytes_sent":0,"bytes_received":0,"#
        + #""Tw":1,"Tc":-1,"Tt":0,"termination":"CC","retries":2,"redispatched":true}"# + "\n")
  }

  @Test("an HTTP record in text and JSON; no service or server is a dash or null")
  func httpRecord() throws {
    let text = String(decoding: try Self.record(Self.seen[1]).rendered(.text, node: "lb1"), as: UTF8.self)
    #expect(
      text == "time=2026-12-06T12:09:33.689Z node=lb1 mode=http frontend=http backend=http service=- server=- "
        + "client=127.0.0.1:51522 method=GET path=/nowhere status=404 bytes_sent=73 bytes_received=84 "
        + "TR=0 Tw=-1 Tc=-1 Tr=-1 Ta=0 termination=LR retries=0\n")
    let json = try Self.record(Self.seen[4]).rendered(.json, node: "lb1")
    let object = try #require(try JSONSerialization.jsonObject(with: Data(json)) as? [String: Any])
    #expect(object["path"] as? String == "/a\"b?x=\u{7F}")
    #expect(String(decoding: json, as: UTF8.self).contains(#""path":"/a\"b?x=\u007F""#))
    let none = try Self.record(Self.seen[1]).rendered(.json, node: "lb1")
    #expect(String(decoding: none, as: UTF8.self).contains(#""service":null,"server":null"#))
  }

  @Test("timestamps in UTC with milliseconds, leap days and years before 1970 included")
  func timestamps() throws {
    let cases: [(String, Int64)] = [
      ("1970-01-01T00:00:00.000Z", 0), ("2000-02-29T00:00:00.000Z", 951_782_400_000),
      ("1969-12-31T23:59:59.999Z", -1), ("2099-12-31T23:59:59.999Z", 4_102_444_799_999),
    ]
    for (expected, milliseconds) in cases {
      var record = try Self.record(Self.seen[5])
      record.start = milliseconds
      let json = try #require(
        try JSONSerialization.jsonObject(with: Data(record.rendered(.json, node: "n"))) as? [String: Any])
      #expect(json["time"] as? String == expected)
    }
  }

  @Test("logging off renders no log line; on, every HTTP and TCP frontend logs to the socket")
  func renderedConfiguration() throws {
    let api = try ServiceName(validating: "api")
    let desired = DesiredState(
      revision: 3, services: [.backend, api], instances: [],
      settings: [api: try ServiceSettings(service: api, mode: .tcp, port: 6379)])
    let off = ConfigRenderer.render(desired, settings: Fixture.settings).text
    #expect(!off.contains("\n  log"))
    let socket = "/var/lib/switchyard/lb1/access.sock"
    let on = try NodeSettings(
      nodeID: "lb1", listen: HostPort(parsing: "127.0.0.1:8001"), stats: HostPort(parsing: "127.0.0.1:8401"),
      adminSocketPath: "/var/lib/switchyard/lb1/admin.sock", accessLogSocketPath: socket)
    let text = ConfigRenderer.render(desired, settings: on).text
    let log = "  log unix@\(socket) len 4096 format raw local0 info\n"
    #expect(
      text.contains(
        "frontend http\n  bind 127.0.0.1:8001\n\(log)  log-format \"\(AccessLogFormat.logFormat(.http))\"\n"))
    #expect(text.contains("  bind 127.0.0.1:6379\n\(log)  log-format \"\(AccessLogFormat.logFormat(.tcp))\"\n"))
    // The stats frontend (and so the metrics scrapes) is not logged.
    #expect(text.components(separatedBy: "  log unix@").count == 3)
    #expect(throws: SettingsError.self) {
      try NodeSettings(
        nodeID: "lb1", listen: HostPort(parsing: "127.0.0.1:8001"), stats: HostPort(parsing: "127.0.0.1:8401"),
        adminSocketPath: "/var/lib/switchyard/lb1/admin.sock", accessLogSocketPath: "/tmp/a b.sock")
    }
  }

  @Test("the stats address serves HAProxy's Prometheus exporter at /metrics")
  func metricsEndpoint() throws {
    let text = ConfigRenderer.render(Fixture.desired([]), settings: Fixture.settings).text
    #expect(text.contains("  stats show-node\n  http-request use-service prometheus-exporter if { path /metrics }\n"))
  }

  // MARK: - Helpers

  /// Fails unless `line` ends with its only line break and holds no other control byte, and is UTF-8.
  static func expectOneLine(_ line: [UInt8]) throws {
    #expect(line.last == UInt8(ascii: "\n"))
    let body = line.dropLast()
    #expect(!body.contains { $0 < 0x20 || $0 == 0x7F }, "a control byte in \(String(decoding: line, as: UTF8.self))")
    let text = try #require(String(validating: body, as: UTF8.self), "not UTF-8")
    for scalar in text.unicodeScalars {
      let category = scalar.properties.generalCategory
      #expect(![.control, .format, .lineSeparator, .paragraphSeparator].contains(category), "U+\(scalar.value)")
    }
  }

  /// Reads a logfmt line back into its values, undoing the renderer's escapes.
  static func readText(_ line: [UInt8]) throws -> [String: [UInt8]] {
    var fields: [String: [UInt8]] = [:]
    var index = 0
    let bytes = Array(line.dropLast())
    while index < bytes.count {
      let equals = try #require(bytes[index...].firstIndex(of: UInt8(ascii: "=")))
      let key = String(decoding: bytes[index..<equals], as: UTF8.self)
      index = equals + 1
      var value: [UInt8] = []
      if index < bytes.count, bytes[index] == UInt8(ascii: "\"") {
        index += 1
        while bytes[index] != UInt8(ascii: "\"") {
          guard bytes[index] == UInt8(ascii: "\\") else {
            value.append(bytes[index])
            index += 1
            continue
          }
          let escape = bytes[index + 1]
          index += 2
          switch escape {
          case UInt8(ascii: "n"): value.append(0x0A)
          case UInt8(ascii: "r"): value.append(0x0D)
          case UInt8(ascii: "t"): value.append(0x09)
          case UInt8(ascii: "x"):
            value.append(try #require(UInt8(String(decoding: bytes[index..<index + 2], as: UTF8.self), radix: 16)))
            index += 2
          case UInt8(ascii: "u"):
            let close = try #require(bytes[index...].firstIndex(of: UInt8(ascii: "}")))
            let scalar = try #require(
              UInt32(String(decoding: bytes[(index + 1)..<close], as: UTF8.self), radix: 16).flatMap(
                Unicode.Scalar.init))
            value += Array(String(Character(scalar)).utf8)
            index = close + 1
          default: value.append(escape)
          }
        }
        index += 1
      } else {
        let end = bytes[index...].firstIndex(of: UInt8(ascii: " ")) ?? bytes.count
        value = Array(bytes[index..<end])
        index = end
      }
      fields[key] = value
      index += 1
    }
    return fields
  }
}
