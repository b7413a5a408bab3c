import Foundation
import HAProxyKit
import SwitchyardProcess

/// One change inside one big backend: `bigBackendServers` instances of one service, then single adds and
/// deletes beside them, each timed from the acknowledged write until HAProxy's runtime state has the server
/// (or no longer has it). What a change costs must not grow with the backend it lands in.
extension Scenarios {
  /// The service of the big backend.
  static let bigService = "big"

  /// The weight of every instance of the big backend: 10,001 servers of weight 50 add up to 500,050, below
  /// round robin's limit (``roundRobinWeightLimit``). Above it the controller runs `balance random`, whose
  /// consistent-hash tree of 16 nodes per unit of weight takes HAProxy (2.6 and 3.0 alike) 20–25 s and
  /// 800 MB to build for 10,000 servers of weight 100: the controller's start would time out.
  static let bigBackendWeight = 50

  /// How long the probe waits between two questions to HAProxy: its resolution, and what it costs HAProxy
  /// (one lookup of a server by name per question, nothing in proportion to the backend's other servers
  /// on HAProxy 3.0, a walk of its server list on 2.6).
  static let bigBackendPollPause = Duration.microseconds(500)

  // MARK: One change inside one big backend

  /// `bigBackendServers` instances of one service written (in transactions) before the controller starts,
  /// on a port where nothing listens, at ``bigBackendWeight``; once HAProxy has them all, `bigBackendChanges` times one more
  /// instance is registered and, once HAProxy has it, deleted again. Each is timed from the acknowledged
  /// write until HAProxy's runtime state shows it (`get weight <backend>/<server>` answers with a weight:
  /// the `add server` went through; the commands that make it ready go out in the same write) or until
  /// it no longer does (`No such server.`: deleted). Asking for one server costs HAProxy one lookup, where
  /// `show servers state` of the backend would cost it (and the bench) a row per server.
  ///
  /// Also reports the controller's CPU time per change (the refreshes that compare the whole backend every
  /// few seconds included) and its passes and reloads over the changes.
  func bigBackend() async throws -> ScenarioResult {
    let size = options.bigBackendServers
    let changes = options.bigBackendChanges
    var result = ScenarioResult(
      name: "big-backend",
      strategy: "runtime",
      variant: "\(BenchReport.display(Double(size))) servers of weight \(Self.bigBackendWeight) in one backend, "
        + "\(changes) adds and deletes" + quickNote("10,000 servers, 200 changes")
    )
    try await lab.withEverythingCleared {
      let weight = Self.bigBackendWeight
      let writes = try (0..<size).map {
        (BenchLab.key("big-\($0)", service: Self.bigService), try BenchLab.value(port: lab.closedPort, weight: weight))
      }
      try await lab.putInTransactions(writes)
      let backend = "svc_\(Self.bigService)"
      try await LBNode.with(lab: lab, strategy: "runtime", services: [Self.bigService]) { node in
        try await node.waitUntil(backend: backend, interval: .milliseconds(100)) { all, _ in all.count >= size }
        result.add("servers", Double(size))
        result.add("first_sync_ms", milliseconds(node.started.duration(to: .now)))
        // Let the first pass's follow-ups end: the changes find the controller idle.
        try await Task.sleep(for: .seconds(1))
        let reloadsBefore = try await node.reloads()
        let passesBefore = try await node.metric("switchyard_reconciles_total")
        let cpuBefore = node.cpuSeconds()
        var adds: [Double] = []
        var removes: [Double] = []
        var timeouts = 0
        for change in 0..<changes {
          let name = "one-\(change)"
          let server = "\(backend)/\(name)"
          // Longer than the controller's quiet window: the controller is idle when the next write comes.
          try await Task.sleep(for: .milliseconds(150))
          try await lab.etcd.put(
            BenchLab.key(name, service: Self.bigService), value: BenchLab.value(port: lab.fleet[0].port, weight: weight)
          )
          let written = ContinuousClock.now
          if let seen = try await node.waitForServer(server, present: true, since: written) {
            adds.append(milliseconds(written.duration(to: seen)))
          } else {
            timeouts += 1
          }
          try await Task.sleep(for: .milliseconds(150))
          try await lab.deregister(name, service: Self.bigService)
          let deleted = ContinuousClock.now
          if let gone = try await node.waitForServer(server, present: false, since: deleted) {
            removes.append(milliseconds(deleted.duration(to: gone)))
          } else {
            timeouts += 1
          }
        }
        let cpu = node.cpuSeconds() - cpuBefore
        result.add("changes", Double(changes * 2))
        result.add("add", LatencySummary(milliseconds: adds))
        result.add("remove", LatencySummary(milliseconds: removes))
        result.add("timeouts", Double(timeouts))
        result.add("controller_cpu_ms_per_change", changes > 0 ? cpu * 1000 / Double(changes * 2) : 0)
        result.add("passes", try await node.metric("switchyard_reconciles_total") - passesBefore)
        result.add("reloads", try await node.reloads() - reloadsBefore)
      }
    }
    return result
  }
}

/// What HAProxy's reply to `get weight <backend>/<server>` says about the server.
public enum ServerPresence: Sendable, Hashable {
  /// HAProxy has the server: it answered with its weight (`100 (initial 100)`).
  case present
  /// HAProxy has no such server (`No such server.`).
  case absent
  /// Any other reply (an unknown backend, an error): says nothing either way.
  case unknown

  /// Reads a reply to `get weight`.
  public init(weightReply reply: String) {
    let text = reply.trimmingCharacters(in: .whitespacesAndNewlines)
    if text.first?.isASCII == true, text.first?.isNumber == true {
      self = .present
    } else if text.hasPrefix("No such server") {
      self = .absent
    } else {
      self = .unknown
    }
  }
}

extension LBNode {
  /// Asks HAProxy `get weight <server>` every ``Scenarios/bigBackendPollPause`` until the server is there
  /// (`present`) or gone, on one connection; returns when HAProxy first said so, or `nil` after 10 s from
  /// `start`. A question costs HAProxy one server lookup, whatever the size of the backend's state.
  func waitForServer(_ server: String, present: Bool, since start: ContinuousClock.Instant) async throws
    -> ContinuousClock.Instant?
  {
    let wanted: ServerPresence = present ? .present : .absent
    let deadline = start.advanced(by: .seconds(10))
    return try await runtime.withSession { session in
      while ContinuousClock.now < deadline {
        let reply = try await session.send("get weight \(server)")
        let answered = ContinuousClock.now
        if ServerPresence(weightReply: reply) == wanted { return answered }
        try await Task.sleep(for: Scenarios.bigBackendPollPause)
      }
      return nil
    }
  }
}
