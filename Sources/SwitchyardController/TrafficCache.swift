import HAProxyKit
import Logging
import SwitchyardDashboard
import Synchronization

/// The node's traffic (`GET /traffic`, and its part of the dashboard), read from HAProxy's `show stat` only
/// when someone asks, and at most once per ``maxAge`` however many ask: callers within that time share one
/// answer, and callers while HAProxy is being asked wait for that one question.
///
/// `show stat -1 6 -1` lists backends and servers (not frontends); its cost grows with the servers, about
/// 600 bytes of CSV each.
final class TrafficCache: Sendable {
  /// An answer younger than this is served again.
  static let maxAge: Duration = .seconds(1)

  private struct State {
    var sampler = TrafficSampler()
    var last: (traffic: NodeTraffic?, at: ContinuousClock.Instant)?
    var inFlight: Task<NodeTraffic?, Never>?
  }

  private let runtime: RuntimeAPI
  private let state = Mutex(State())

  init(adminSocketPath: String, logger: Logger) {
    runtime = RuntimeAPI(socketPath: adminSocketPath, timeout: .seconds(1), logger: logger)
  }

  /// The traffic as of at most ``maxAge`` ago; `nil` when HAProxy did not answer.
  func current() async -> NodeTraffic? {
    enum Step {
      case cached(NodeTraffic?)
      case wait(Task<NodeTraffic?, Never>)
    }
    let step = state.withLock { state -> Step in
      if let last = state.last, last.at.duration(to: .now) < Self.maxAge { return .cached(last.traffic) }
      if let task = state.inFlight { return .wait(task) }
      let task = Task { await self.ask() }
      state.inFlight = task
      return .wait(task)
    }
    switch step {
    case .cached(let traffic): return traffic
    case .wait(let task): return await task.value
    }
  }

  private func ask() async -> NodeTraffic? {
    let rows = try? await StatRow.parse(runtime.send("show stat -1 6 -1")).map(\.fields)
    return state.withLock { state in
      let traffic = rows.map { state.sampler.sample(rows: $0, at: RecentChanges.now) }
      state.last = (traffic, .now)
      state.inFlight = nil
      return traffic
    }
  }
}
