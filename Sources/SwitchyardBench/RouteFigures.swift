import Foundation

/// The sizes of the routes scenarios: issue 24's at full size, small ones for `--quick`.
public struct RouteBenchSizes: Sendable, Hashable {
  /// Whether these are the `--quick` sizes.
  public var quick: Bool
  /// Route puts measured (each a new route, then its removal).
  public var routePuts: Int
  /// Services of the large fleet.
  public var fleetServices: Int
  /// Instances per service of the large fleet.
  public var instancesPerService: Int
  /// Routes per service of the large fleet: one by path prefix, one by host.
  public var routesPerService: Int
  /// Routes of the fleet whose answers are checked before the first sync counts as done.
  public var syncSamples: Int
  /// Route changes measured on the fleet, in pairs (to the probe service and back).
  public var fleetChangePairs: Int
  /// Servers of the one backend whose fairness is measured (written before the controller starts).
  public var fairnessServers: Int
  /// Servers added to it through the Runtime API once it runs.
  public var fairnessRuntimeAdded: Int
  /// Requests sent through it, about.
  public var fairnessRequests: Int
  /// How often its servers are checked (service settings): 6,000 servers checked every second would put
  /// 6,000 new connections a second on the bench's own six test servers and take a core of this machine.
  public var fairnessCheckInterval: Duration

  /// The sizes, or the small ones.
  public init(quick: Bool) {
    self.quick = quick
    routePuts = quick ? 10 : 200
    fleetServices = quick ? 200 : 1000
    instancesPerService = 3
    routesPerService = 2
    syncSamples = quick ? 10 : 20
    fleetChangePairs = quick ? 5 : 50
    fairnessServers = quick ? 2100 : 6000
    fairnessRuntimeAdded = quick ? 20 : 60
    fairnessRequests = quick ? 10_500 : 30_000
    fairnessCheckInterval = .seconds(10)
  }

  /// Instances of the fleet.
  public var fleetInstances: Int { fleetServices * instancesPerService }
  /// Routes of the fleet.
  public var fleetRoutes: Int { fleetServices * routesPerService }

  /// The weight of every fairness server: 100 (a registration's default) when that puts the backend's sum
  /// of weights above `limit`, else the smallest weight that does, so that the backend runs past HAProxy's
  /// round-robin limit at any size; `nil` if no weight HAProxy accepts (1–256) gets there.
  public static func weightAbove(limit: Int, servers: Int, preferred: Int = 100) -> Int? {
    guard servers > 0 else { return nil }
    if servers * preferred > limit { return preferred }
    let weight = limit / servers + 1
    return weight <= 256 ? weight : nil
  }
}

/// How evenly requests reached the servers of one backend: from each server's count of requests
/// (HAProxy's `stot` before and after), how many got at least one, the fewest and the most.
public struct FairnessSummary: Sendable, Hashable {
  /// Servers counted.
  public var servers: Int
  /// Requests counted over all of them.
  public var requests: Int
  /// Servers that got at least one request.
  public var serversHit: Int
  /// The fewest requests one server got.
  public var minimum: Int
  /// The most requests one server got.
  public var maximum: Int
  /// Requests per server on average.
  public var mean: Double
  /// The standard deviation of the requests per server (population).
  public var standardDeviation: Double

  /// The summary of `counts`, one per server. All zero for no servers.
  public init(counts: [Int]) {
    servers = counts.count
    requests = counts.reduce(0, +)
    serversHit = counts.count(where: { $0 > 0 })
    minimum = counts.min() ?? 0
    maximum = counts.max() ?? 0
    mean = counts.isEmpty ? 0 : Double(requests) / Double(counts.count)
    let mean = self.mean
    let variance =
      counts.isEmpty ? 0 : counts.reduce(0.0) { $0 + (Double($1) - mean) * (Double($1) - mean) } / Double(counts.count)
    standardDeviation = variance.squareRoot()
  }

  /// Servers missed: those that got no request.
  public var serversMissed: Int { servers - serversHit }

  /// How many of `servers` would get at least one of `requests` if each request went to a server drawn
  /// uniformly at random: `servers × (1 − (1 − 1/servers)^requests)`. What a pure `random(1)` draw gives,
  /// to compare against; HAProxy's `balance random` draws two and takes the less loaded, which spreads
  /// better.
  public static func expectedServersHit(servers: Int, requests: Int) -> Double {
    guard servers > 0, requests > 0 else { return 0 }
    let n = Double(servers)
    // log1p keeps (1 − 1/n)^r exact for large n.
    let missProbability = exp(Double(requests) * log1p(-1 / n))
    return n * (1 - missProbability)
  }
}
