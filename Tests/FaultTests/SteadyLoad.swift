import SwitchyardTestSupport

/// Steady client load through both LB nodes: on each, two keep-alive connections and two that open a new
/// connection per request, each pausing 25 ms between requests (about 150 requests/s per node). A client
/// gives up on a request after 1 s, as an impatient user would: a request stuck on a hung server fails.
struct SteadyLoad {
  let clients: [(lb: String, client: HTTPLoadClient)]
  static let requestTimeout = Duration.seconds(1)

  static func start(_ cluster: FaultCluster) throws -> SteadyLoad {
    var clients: [(String, HTTPLoadClient)] = []
    for lb in FaultCluster.lbNames {
      let url = cluster.url(lb)
      for newConnections in [false, true] {
        let client = try HTTPLoadClient.start(
          url: url, connections: 2, newConnections: newConnections, pause: .milliseconds(25),
          requestTimeout: requestTimeout)
        clients.append((lb, client))
      }
    }
    return SteadyLoad(clients: clients)
  }

  /// What the load saw: requests, failures per node, the first errors, and per node the time from its
  /// first failure to its last.
  struct Report {
    var requests = 0
    var failures: [String: Int] = [:]
    var errors: [String] = []
    var failureWindows: [String: Duration] = [:]
  }

  /// Stops the load and says what it saw.
  func stop() async -> Report {
    var report = Report()
    var spans: [String: (first: ContinuousClock.Instant, last: ContinuousClock.Instant)] = [:]
    for (lb, client) in clients {
      let seen = await client.stop(timeout: .seconds(40))
      report.requests += seen.totalRequests
      report.failures[lb, default: 0] += seen.failures
      report.errors += seen.errors.prefix(3).map { "\(lb): \($0)" }
      if let first = seen.firstFailure, let last = seen.lastFailure {
        let span = spans[lb]
        spans[lb] = (min(first, span?.first ?? first), max(last, span?.last ?? last))
      }
    }
    report.failureWindows = spans.mapValues { $0.first.duration(to: $0.last) }
    return report
  }
}
