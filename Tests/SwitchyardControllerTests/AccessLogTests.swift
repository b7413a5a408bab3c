import EtcdClient
import Foundation
import HAProxyKit
import SwitchyardHTTP
import SwitchyardReconcile
import SwitchyardTestSupport
import Testing

/// The access log and HAProxy's metrics, with a real controller, HAProxy and etcd.
@Suite("Access log and HAProxy's metrics", .serialized)
struct AccessLogTests {
  @Test(
    "each request through a node is one access record, with its service, server, status and path",
    arguments: AccessLogStyle.allCases)
  func oneRecordPerRequest(style: AccessLogStyle) async throws {
    try await withAccessLog(style) { node, etcd, log in
      try await HTTPTestServer.with(name: "w1") { w1 in
        try await HTTPTestServer.with(name: "w2") { w2 in
          try await etcd.register("w1", port: w1.port)
          try await etcd.register("w2", port: w2.port)
          try await node.waitServing(["w1", "w2"])
          let marker = "probe-\(UUID().uuidString.prefix(8))"
          var expected: [String] = []
          for index in 0..<20 {
            let path = "/\(marker)/\(index)?n=\(index)"
            #expect(try await node.request(path).status == 200)
            expected.append(path)
          }
          // A quote and `|` reach HAProxy's log escaped (`#22`); the record holds them as sent.
          let hostile = "/\(marker)/q\"uo|te?x=a|b"
          #expect(try await RawHTTP.get(port: node.listenPort, path: hostile).status == 200)
          expected.append(hostile)

          let records = try await log.waitForRecords(count: expected.count) { $0["path"]?.contains(marker) == true }
          #expect(records.compactMap { $0["path"] }.sorted() == expected.sorted())
          for record in records {
            #expect(record["node"] == "lb1" && record["mode"] == "http" && record["frontend"] == "http")
            #expect(record["service"] == "backend" && record["backend"] == "svc_backend")
            #expect(["w1", "w2"].contains(record["server"] ?? ""), "\(record)")
            #expect(record["status"] == "200" && record["method"] == "GET" && record["termination"] == "--")
            #expect(Int(record["bytes_sent"] ?? "") ?? 0 > 0 && Int(record["bytes_received"] ?? "") ?? 0 > 0)
            for timing in ["TR", "Tw", "Tc", "Tr", "Ta"] { #expect(Int(record[timing] ?? "") != nil, "\(timing)") }
            #expect(record["time"]?.hasSuffix("Z") == true)
          }
          #expect(Set(records.compactMap { $0["server"] }) == ["w1", "w2"])
          print("access log (\(style)): \(records.count) records for \(expected.count) requests; one of them:")
          print(log.lines().first { $0.contains("q\\\"uo|te") || $0.contains("quo") } ?? "")
        }
      }
    }
  }

  @Test("a tcp service's connections are logged, one record each, with their byte counts")
  func tcpConnectionsAreLogged() async throws {
    try await withAccessLog(.json) { node, etcd, log in
      let echo = try await TCPEchoServer.start()
      defer { Task { await echo.close() } }
      let port = try FreePort.allocate()
      try await etcd.putSettings("cache", #"{"mode":"tcp","port":\#(port),"check":{"type":"tcp"}}"#)
      try await etcd.register("cache-1", port: echo.port, service: "cache")
      try await retrying(timeout: .seconds(10)) {
        guard try await tcpRoundTrip(port: port, message: "PING\r\n") == "PING\r\n" else {
          throw TestSupportError("no echo through the node yet")
        }
      }
      // Sizes no earlier connection had: each record is found by its byte counts.
      let sizes = 1001...1005
      for size in sizes {
        let message = String(repeating: "x", count: size)
        #expect(try await tcpRoundTrip(port: port, message: message) == message)
      }
      let records = try await log.waitForRecords(count: sizes.count) {
        $0["mode"] == "tcp" && sizes.contains(Int($0["bytes_received"] ?? "") ?? 0)
      }
      for record in records {
        #expect(record["frontend"] == "tcp_cache" && record["service"] == "cache" && record["server"] == "cache-1")
        #expect(record["bytes_sent"] == record["bytes_received"], "\(record)")
        #expect(record["status"] == nil && record["path"] == nil)
        for timing in ["Tw", "Tc", "Tt"] { #expect(Int(record[timing] ?? "") != nil, "\(timing)") }
      }
      #expect(Set(records.compactMap { $0["bytes_received"] }) == Set(sizes.map(String.init)))
      _ = node
    }
  }

  @Test("a frozen log reader (the controller stopped with SIGSTOP) neither fails nor slows requests")
  func frozenReaderCostsLinesNotRequests() async throws {
    try await withAccessLog(.text) { node, etcd, log in
      try await HTTPTestServer.with(name: "w1") { w1 in
        try await etcd.register("w1", port: w1.port)
        try await node.waitServing(["w1"])
        let controller = try #require(node.controller)
        let period = Duration.seconds(3)

        let droppedBefore = try await node.droppedLogs()
        let running = try await Self.load(node, path: "/running", for: period)
        let droppedRunning = try await node.droppedLogs() - droppedBefore
        let written = try await log.waitForRecords(
          count: running.totalRequests - droppedRunning, timeout: .seconds(10)
        ) { $0["path"] == "/running" }

        controller.signal(SIGSTOP)
        let frozen: HTTPLoadClient.LoadReport
        let droppedFrozen: Int
        do {
          frozen = try await Self.load(node, path: "/frozen", for: period)
          droppedFrozen = try await node.droppedLogs() - droppedBefore - droppedRunning
        } catch {
          controller.signal(SIGCONT)
          throw error
        }
        controller.signal(SIGCONT)

        print(
          "access log, reader running: \(running.totalRequests) requests in \(period), \(running.failures) failed, "
            + "\(written.count) lines written, HAProxy dropped \(droppedRunning) (show info DroppedLogs)")
        print(
          "access log, reader frozen (SIGSTOP): \(frozen.totalRequests) requests in \(period), \(frozen.failures) "
            + "failed, HAProxy dropped \(droppedFrozen) lines (show info DroppedLogs)")
        #expect(running.failures == 0 && frozen.failures == 0, "\(running.errors) \(frozen.errors)")
        #expect(frozen.totalRequests * 2 >= running.totalRequests, "requests slowed while the reader was frozen")
        #expect(droppedFrozen > 0, "the socket's queue never filled")

        // The lines the queue held when the reader froze are written, then logging resumes.
        let kept = try await log.waitForRecords(count: frozen.totalRequests - droppedFrozen, timeout: .seconds(10)) {
          $0["path"] == "/frozen"
        }
        print("access log, reader frozen: \(kept.count) of its lines written after SIGCONT")
        let marker = "after-\(UUID().uuidString.prefix(8))"
        try await node.waitReady()
        #expect(try await node.request("/\(marker)").status == 200)
        _ = try await log.waitForRecords(count: 1) { $0["path"] == "/\(marker)" }
      }
    }
  }

  @Test("a log file moved away (logrotate) is opened again at its path, and so is one after SIGHUP")
  func rotation() async throws {
    try await withAccessLog(.text) { node, etcd, log in
      try await HTTPTestServer.with(name: "w1") { w1 in
        try await etcd.register("w1", port: w1.port)
        try await node.waitServing(["w1"])
        #expect(try await node.request("/before-rotation").status == 200)
        _ = try await log.waitForRecords(count: 1) { $0["path"] == "/before-rotation" }
        let rotated = log.path + ".1"
        #expect(rename(log.path, rotated) == 0)
        // The controller looks every second, with or without traffic; lines written before it notices go to
        // the moved file.
        try await retrying(timeout: .seconds(5), every: .milliseconds(100)) {
          guard FileManager.default.fileExists(atPath: log.path) else { throw TestSupportError("not reopened yet") }
        }
        #expect(try await node.request("/after-rotation").status == 200)
        _ = try await log.waitForRecords(count: 1) { $0["path"] == "/after-rotation" }
        let old = try String(contentsOfFile: rotated, encoding: .utf8)
        #expect(old.contains("path=/before-rotation"))

        // SIGHUP opens the file again (logrotate's postrotate), and does not end the controller.
        node.controller?.signal(SIGHUP)
        try await retrying(timeout: .seconds(5), every: .milliseconds(200)) {
          _ = try await node.request("/after-hangup")
          guard log.lines().contains(where: { $0.contains("path=/after-hangup") }) else {
            throw TestSupportError("nothing written after SIGHUP")
          }
        }
        #expect(node.controller?.isRunning == true, "SIGHUP ended the controller")
        #expect(node.log().contains("reopened on SIGHUP"))
        // A short socket queue is pointed out at start.
        let queue = try? String(contentsOfFile: "/proc/sys/net/unix/max_dgram_qlen", encoding: .utf8)
        if let queue = queue.flatMap({ Int($0.trimmingCharacters(in: .whitespacesAndNewlines)) }), queue < 128 {
          #expect(node.log().contains("net.unix.max_dgram_qlen=\(queue)"), "\(node.log())")
        }
      }
    }
  }

  @Test("HAProxy's /metrics on the stats address counts requests per backend and per server")
  func haproxyMetrics() async throws {
    try await withNodes { _, nodes, etcd in
      let node = nodes[0]
      try await HTTPTestServer.with(name: "w1") { w1 in
        try await etcd.register("w1", port: w1.port)
        try await node.waitServing(["w1"])
        for _ in 0..<25 { #expect(try await node.get().status == 200) }
        let (status, body) = try await HTTPCheck.get("http://127.0.0.1:\(node.statsPort)/metrics", timeout: .seconds(5))
        #expect(status == 200)
        let backendRequests = Self.sample(body, "haproxy_backend_http_requests_total{proxy=\"svc_backend\"}")
        let serverResponses = Self.sample(
          body, "haproxy_server_http_responses_total{proxy=\"svc_backend\",server=\"w1\",code=\"2xx\"}")
        print(
          "HAProxy /metrics: \(body.utf8.count) bytes; svc_backend requests \(backendRequests ?? -1), "
            + "svc_backend/w1 2xx responses \(serverResponses ?? -1)")
        #expect((backendRequests ?? 0) >= 25)
        #expect((serverResponses ?? 0) >= 25)
        #expect(body.contains("haproxy_process_dropped_logs_total"))
      }
    }
  }

  @Test("with --stats-auth the metrics need the stats page's credentials")
  func haproxyMetricsBehindAuthentication() async throws {
    let secrets = try TemporaryDirectory(prefix: "stats-secret")
    defer { secrets.remove() }
    let password = "Stats-\(UUID().uuidString)"
    try "\(password)\n".write(toFile: secrets.path("stats-password"), atomically: true, encoding: .utf8)
    try await withNodes(extraArguments: ["--stats-auth", "ops:\(secrets.path("stats-password"))"]) { _, nodes, _ in
      let url = "http://127.0.0.1:\(nodes[0].statsPort)/metrics"
      #expect(try await HTTPCheck.get(url, timeout: .seconds(5)).status == 401)
      let wrong = [(name: "Authorization", value: RawHTTP.basic(user: "ops", password: "wrong"))]
      #expect(try await HTTPCheck.get(url, headers: wrong, timeout: .seconds(5)).status == 401)
      let right = [(name: "Authorization", value: RawHTTP.basic(user: "ops", password: password))]
      let (status, body) = try await HTTPCheck.get(url, headers: right, timeout: .seconds(5))
      #expect(status == 200 && body.contains("haproxy_process_"))
    }
  }

  // MARK: - Helpers

  /// The first sample of the metric `series` (name and labels, exactly).
  static func sample(_ body: String, _ series: String) -> Double? {
    for line in body.split(separator: "\n") where line.hasPrefix(series + " ") {
      return line.split(separator: " ").last.flatMap { Double($0) }
    }
    return nil
  }

  /// Keep-alive load through `node` for `duration`: 4 connections, as fast as they go.
  static func load(_ node: LBNode, path: String, for duration: Duration) async throws -> HTTPLoadClient.LoadReport {
    let client = try HTTPLoadClient.start(url: node.origin + path, connections: 4, requestTimeout: .seconds(2))
    try await Task.sleep(for: duration)
    return await client.stop()
  }

  /// Runs `body` with an etcd member and node `lb1` writing its access log in `style` to a file.
  func withAccessLog(
    _ style: AccessLogStyle, _ body: (LBNode, EtcdClient, AccessLogFile) async throws -> Void
  ) async throws {
    let directory = try TemporaryDirectory(prefix: "access-log")
    defer { directory.remove() }
    let log = AccessLogFile(path: directory.path("access.log"), style: style)
    try await withNodes(extraArguments: ["--access-log", log.path, "--access-log-format", style.rawValue]) {
      _, nodes, etcd in
      do {
        try await body(nodes[0], etcd, log)
      } catch {
        Issue.record("access log:\n\(log.lines().suffix(20).joined(separator: "\n"))")
        throw error
      }
    }
  }
}

/// An access log file a test reads, as records of `field → value`.
struct AccessLogFile: Sendable {
  let path: String
  let style: AccessLogStyle

  func lines() -> [String] {
    guard let data = FileManager.default.contents(atPath: path) else { return [] }
    return String(decoding: data, as: UTF8.self).split(separator: "\n").map(String.init)
  }

  func records() -> [[String: String]] {
    lines().compactMap { line in
      switch style {
      case .json:
        guard let object = try? JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any] else {
          Issue.record("not a JSON object: \(line)")
          return nil
        }
        return object.compactMapValues { value in value is NSNull ? nil : "\(value)" }
      case .text:
        return Self.logfmt(line)
      }
    }
  }

  /// Waits until exactly `count` records match `filter` (fewer: waits; more: fails), and returns them.
  func waitForRecords(
    count: Int, timeout: Duration = .seconds(5), _ filter: @escaping @Sendable ([String: String]) -> Bool
  ) async throws -> [[String: String]] {
    var found: [[String: String]] = []
    try await retrying(timeout: timeout, every: .milliseconds(100)) {
      found = records().filter(filter)
      guard found.count >= count else { throw TestSupportError("\(found.count) of \(count) records in \(path)") }
    }
    #expect(found.count == count, "\(found.count) records where \(count) were expected")
    return found
  }

  /// A logfmt line's fields; quoted values lose their quotes and `\"`, `\\` escapes.
  static func logfmt(_ line: String) -> [String: String] {
    var fields: [String: String] = [:]
    var rest = Substring(line)
    while let equals = rest.firstIndex(of: "=") {
      let key = String(rest[..<equals]).trimmingCharacters(in: .whitespaces)
      rest = rest[rest.index(after: equals)...]
      var value = ""
      if rest.first == "\"" {
        rest = rest.dropFirst()
        while let character = rest.first, character != "\"" {
          if character == "\\", let next = rest.dropFirst().first {
            value.append(next)
            rest = rest.dropFirst(2)
          } else {
            value.append(character)
            rest = rest.dropFirst()
          }
        }
        rest = rest.dropFirst()
      } else {
        let end = rest.firstIndex(of: " ") ?? rest.endIndex
        value = String(rest[..<end])
        rest = rest[end...]
      }
      fields[key] = value
      rest = rest.drop { $0 == " " }
    }
    return fields
  }
}

extension LBNode {
  /// HAProxy's count of access log lines it could not send (`show info`, DroppedLogs), for the worker that
  /// answers.
  func droppedLogs() async throws -> Int {
    let reply = try await RuntimeAPI(socketPath: "\(stateDirectory)/admin.sock", logger: quietLogger).send("show info")
    let line = reply.split(separator: "\n").first { $0.hasPrefix("DroppedLogs:") }
    guard let value = line.flatMap({ Int($0.dropFirst("DroppedLogs:".count).trimmingCharacters(in: .whitespaces)) })
    else { throw TestSupportError("show info has no DroppedLogs: \(reply.prefix(200))") }
    return value
  }
}
