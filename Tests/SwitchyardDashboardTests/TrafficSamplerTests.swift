import SwitchyardDashboard
import Testing

@Suite("Traffic from HAProxy's show stat")
struct TrafficSamplerTests {
  static func row(_ proxy: String, _ server: String, _ columns: [String: String]) -> [String: String] {
    columns.merging(["pxname": proxy, "svname": server]) { first, _ in first }
  }

  static func sample(requests: Int, rate: Int = 0, status: String = "UP") -> [[String: String]] {
    [
      row("http", "FRONTEND", ["req_tot": "999"]),
      row(
        "svc_backend", "b-2",
        ["scur": "1", "req_tot": "10", "status": "DOWN", "check_status": "L4CON", "weight": "100"]),
      row(
        "svc_backend", "b-1",
        [
          "scur": "3", "req_tot": "\(requests)", "hrsp_5xx": "2", "status": status, "check_status": "* L7OK",
          "check_code": "200", "weight": "50", "rate": "\(rate)",
        ]),
      row("svc_backend", "BACKEND", ["scur": "4", "req_tot": "\(requests + 10)", "hrsp_5xx": "2", "rate": "\(rate)"]),
      row("sy_unavailable", "BACKEND", ["req_tot": "5"]),
      row("svc_db", "db-1", ["scur": "0", "stot": "40", "status": "no check", "weight": "1"]),
    ]
  }

  @Test func serversAndBackendsOfServicesOnly() throws {
    var sampler = TrafficSampler()
    let traffic = sampler.sample(rows: Self.sample(requests: 100, rate: 7), at: 10_000)
    #expect(traffic.services.map(\.name) == ["backend", "db"])
    let backend = traffic.services[0]
    #expect(backend.servers.map(\.name) == ["b-1", "b-2"])
    #expect(backend.sessions == 4 && backend.requests == 110 && backend.errors5xx == 2)
    let server = backend.servers[0]
    #expect(server.check == "L7OK/200" && server.weight == 50 && server.status == "UP" && server.sessions == 3)
    // The first sample has nothing to compare with: HAProxy's own rate stands in.
    #expect(server.rate == 7 && backend.rate == 7)
    #expect(backend.servers[1].check == "L4CON" && backend.servers[1].status == "DOWN")
    // A tcp service counts sessions.
    #expect(traffic.services[1].servers[0].requests == 40)
  }

  @Test func ratesComeFromTheCountersBetweenSamples() {
    var sampler = TrafficSampler()
    _ = sampler.sample(rows: Self.sample(requests: 100), at: 10_000)
    let second = sampler.sample(rows: Self.sample(requests: 115, rate: 99), at: 10_500)
    #expect(second.services[0].servers[0].rate == 30)
    #expect(second.services[0].rate == 30)
    // A reload starts the counters again: no negative rate.
    let third = sampler.sample(rows: Self.sample(requests: 3, rate: 4), at: 11_500)
    #expect(third.services[0].servers[0].rate == 4)
    // A sample long after the last one is not averaged over the gap.
    let fourth = sampler.sample(rows: Self.sample(requests: 1_003, rate: 5), at: 60_000)
    #expect(fourth.services[0].servers[0].rate == 5)
  }
}
