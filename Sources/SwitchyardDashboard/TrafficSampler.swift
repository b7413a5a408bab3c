import SwitchyardModel

/// Turns the rows of HAProxy's `show stat` (backends and servers) into a ``NodeTraffic``, with request
/// rates from the difference to the previous sample.
///
/// A rate is the growth of the request counter (`req_tot`; `stot`, sessions, for a tcp service) divided
/// by the time between two samples. Without a usable previous sample (the first one, one older than
/// ``maxRateInterval``, or a counter that went down because the worker was replaced by a reload), HAProxy's
/// own `rate` column (sessions over the last second) stands in. Only backends of services (`svc_<name>`)
/// are reported.
public struct TrafficSampler: Sendable {
  /// A previous sample further back than this gives no rate (it would be an average over minutes).
  public static let maxRateInterval: Int64 = 5_000

  private var counters: [String: Int] = [:]
  private var sampledAt: Int64?

  /// A sampler with no previous sample.
  public init() {}

  /// The traffic in `rows` (each row's columns by header name, as `show stat` gives them) at `now`
  /// (milliseconds since 1970); remembers the counters for the next sample.
  public mutating func sample(rows: [[String: String]], at now: Int64) -> NodeTraffic {
    let elapsed = sampledAt.map { now - $0 }
    let usable = elapsed.map { $0 > 0 && $0 <= Self.maxRateInterval } ?? false
    var services: [String: NodeTraffic.Service] = [:]
    var order: [String] = []
    var counted: [String: Int] = [:]
    func rate(_ row: [String: String], key: String, requests: Int) -> Double {
      counted[key] = requests
      if usable, let elapsed, let before = counters[key], requests >= before {
        return Self.rounded(Double(requests - before) * 1000 / Double(elapsed))
      }
      return Double(Self.integer(row["rate"]))
    }
    for row in rows {
      guard let proxy = row["pxname"], proxy.hasPrefix("svc_"), let server = row["svname"], server != "FRONTEND"
      else { continue }
      let name = String(proxy.dropFirst(4))
      if services[name] == nil {
        services[name] = NodeTraffic.Service(name: name, sessions: 0, rate: 0, requests: 0, errors5xx: 0, servers: [])
        order.append(name)
      }
      let requests = Self.integer(row["req_tot"] ?? row["stot"])
      let key = "\(name)/\(server)"
      if server == "BACKEND" {
        services[name]?.sessions = Self.integer(row["scur"])
        services[name]?.requests = requests
        services[name]?.errors5xx = Self.integer(row["hrsp_5xx"])
        services[name]?.rate = rate(row, key: key, requests: requests)
        continue
      }
      var check = row["check_status"].map { $0.hasPrefix("* ") ? String($0.dropFirst(2)) : $0 }
      if let code = row["check_code"], let status = check { check = "\(status)/\(code)" }
      services[name]?.servers.append(
        NodeTraffic.Server(
          name: server, sessions: Self.integer(row["scur"]), rate: rate(row, key: key, requests: requests),
          requests: requests, errors5xx: Self.integer(row["hrsp_5xx"]), status: row["status"] ?? "?", check: check,
          weight: Self.integer(row["weight"])))
    }
    counters = counted
    sampledAt = now
    return NodeTraffic(
      sampledAt: now,
      services: order.sorted().compactMap { name in
        services[name].map { service in
          var sorted = service
          sorted.servers.sort { $0.name < $1.name }
          return sorted
        }
      })
  }

  private static func integer(_ text: String?) -> Int { text.flatMap { Int($0) } ?? 0 }

  /// One decimal: enough for a page, and short in JSON.
  static func rounded(_ value: Double) -> Double { (value * 10).rounded() / 10 }
}
