import Foundation
import HAProxyKit
import SwitchyardTestSupport
import Testing

extension ScenarioContext {
  /// lb1's controller, which reads its HAProxy's access log from a datagram socket, is frozen (SIGSTOP) for
  /// 10 s under the steady load, then resumed.
  ///
  /// Expected: HAProxy goes on serving without waiting for the reader (0 failed requests, no reload); it
  /// drops the lines the socket's queue cannot hold and counts them (`show info` DroppedLogs, read from the
  /// Runtime API while the controller is frozen); lb2 logs on meanwhile; after SIGCONT lb1 logs again.
  func frozenAccessLogReader() async throws {
    let lb = "lb1"
    let droppedBefore = try await droppedLogs(lb)
    let linesBefore = accessLogLines(lb)
    let otherBefore = accessLogLines("lb2")
    guard let controller = cluster.controller(lb) else { throw TestSupportError("\(lb) has no controller") }
    controller.signal(SIGSTOP)
    faultBegins()
    let dropped: Int
    let written: Int
    do {
      try await holdFault(for: .seconds(10))
      dropped = try await droppedLogs(lb) - droppedBefore
      written = accessLogLines(lb) - linesBefore
    } catch {
      controller.signal(SIGCONT)
      throw error
    }
    controller.signal(SIGCONT)
    let otherWritten = accessLogLines("lb2") - otherBefore

    // Logging resumes: a request sent now (its query string marks it) is in lb1's log.
    try await cluster.waitReady(lb)
    let marker = "?resumed-\(UUID().uuidString.prefix(8))"
    let (status, _) = try await HTTPLoadClient.get(cluster.url(lb) + marker, timeout: .seconds(2))
    #expect(status == 200, "\(name): GET /\(marker) through \(lb) answered \(status)")
    let resumedAfter = ContinuousClock.now
    var resumed: Duration?
    try? await retrying(timeout: .seconds(10), every: .milliseconds(100)) {
      let text = (try? String(contentsOfFile: cluster.accessLogPath(lb), encoding: .utf8)) ?? ""
      guard text.contains("path=/\(marker) status=200") else { throw TestSupportError("not logged yet") }
      resumed = resumedAfter.duration(to: .now)
    }
    note(
      "\(lb)'s HAProxy dropped \(dropped) access log lines while its controller was frozen (show info DroppedLogs); "
        + "\(written) written meanwhile; lb2 wrote \(otherWritten); \(lb) logged again "
        + "\(resumed.map { "\($0) after a request" } ?? "never") once resumed")
    #expect(dropped > 0, "\(name): \(lb)'s HAProxy dropped no line: the reader was not frozen, or nothing came")
    #expect(otherWritten > 0, "\(name): lb2 wrote no access log line")
    #expect(resumed != nil, "\(name): \(lb) does not log again after SIGCONT")
    await healed()
  }

  /// HAProxy's count of access log lines it could not send (`show info`, DroppedLogs), from `lb`'s Runtime
  /// API: HAProxy answers while the controller is frozen.
  func droppedLogs(_ lb: String) async throws -> Int {
    let reply = try await cluster.runtimeAPI(lb).send("show info")
    let line = reply.split(separator: "\n").first { $0.hasPrefix("DroppedLogs:") }
    guard let value = line.flatMap({ Int($0.dropFirst("DroppedLogs:".count).trimmingCharacters(in: .whitespaces)) })
    else { throw TestSupportError("show info of \(lb) has no DroppedLogs") }
    return value
  }

  /// Lines in `lb`'s access log so far.
  func accessLogLines(_ lb: String) -> Int {
    guard let data = FileManager.default.contents(atPath: cluster.accessLogPath(lb)) else { return 0 }
    return data.reduce(0) { $0 + ($1 == UInt8(ascii: "\n") ? 1 : 0) }
  }
}
