import Foundation
import SwitchyardDashboard
import SwitchyardModel
import Testing

/// What one tick of the aggregator costs with 1,000 instances: the nodes' feeds as JSON (what each node
/// encodes and the serving node decodes), the merge, and the view as JSON (what each browser receives).
@Suite("The dashboard with 1,000 instances")
struct ScaleFigures {
  static func feed(node: String, instances: Int, services: Int) -> NodeFeed {
    var stateServices: [NodeSnapshot.Service] = []
    var trafficServices: [NodeTraffic.Service] = []
    let perService = instances / services
    for serviceIndex in 0..<services {
      let name = "service-\(serviceIndex)"
      var servers: [NodeSnapshot.Server] = []
      var traffic: [NodeTraffic.Server] = []
      for index in 0..<perService {
        let id = "\(name)-instance-\(index)"
        servers.append(
          NodeSnapshot.Server(
            name: id, address: "10.0.\(serviceIndex).\(index % 250):\(20_000 + index)", weight: 100,
            adminState: index % 50 == 0 ? "drain" : "ready", health: index % 97 == 0 ? "down" : "up", registered: true))
        traffic.append(
          NodeTraffic.Server(
            name: id, sessions: index % 7, rate: Double(index % 13) + 0.5, requests: 10_000 + index,
            errors5xx: index % 3,
            status: index % 97 == 0 ? "DOWN" : "UP", check: index % 97 == 0 ? "L4CON" : "L7OK/200", weight: 100))
      }
      stateServices.append(
        NodeSnapshot.Service(
          name: name, backend: "svc_\(name)", checkPath: "/healthz", servers: servers, mode: "http",
          balance: "roundrobin"))
      trafficServices.append(
        NodeTraffic.Service(name: name, sessions: 100, rate: 300, requests: 1_000_000, errors5xx: 10, servers: traffic))
    }
    let changes = (0..<200).map { index in
      ChangeRecord(
        revision: Int64(1_000 + index), seenAt: 1_700_000_000_000 + Int64(index) * 1_000,
        appliedAt: 1_700_000_000_000 + Int64(index) * 1_000 + 12,
        events: [.init(key: "/services/service-1/service-1-instance-\(index)", kind: "put")], eventCount: 1)
    }
    let state = NodeSnapshot(
      node: node, ready: true, notReadyReasons: [], appliedRevision: 1_199, haproxyPID: 1, haproxyRunning: true,
      haproxyAdopted: false, haproxyVersion: "2.6.12", etcdConnected: true, watchSilentSeconds: 0.2,
      etcdWatchEndpoint: "127.0.0.1:2379", reloads: 3, haproxyRestarts: 0, lastError: nil, services: stateServices,
      invalidEntries: [])
    return NodeFeed(
      state: state, changes: changes, traffic: NodeTraffic(sampledAt: 1_700_000_300_000, services: trafficServices))
  }

  static func milliseconds(_ duration: Duration) -> Double {
    Double(duration.components.seconds) * 1000 + Double(duration.components.attoseconds) / 1e15
  }

  @Test(arguments: [2, 3])
  func oneTick(nodes: Int) throws {
    let ids = (1...nodes).map { "lb\($0)" }
    var memory = ClusterMemory(selfID: "lb1", selfAdminURL: "http://127.0.0.1:9101")
    memory.observe(
      .read(revision: 2_000, entries: ids.enumerated().map { Fixture.entry($0.element, port: 9101 + $0.offset) }),
      now: 1_700_000_300_000)
    let feeds = ids.map { Self.feed(node: $0, instances: 1_000, services: 10) }
    let encoder = JSONEncoder()
    let clock = ContinuousClock()
    var feedBytes = 0
    var encodeFeed = Duration.zero
    var decodeFeeds = Duration.zero
    var merge = Duration.zero
    var encodeView = Duration.zero
    var viewBytes = 0
    let rounds = 5
    for round in 0..<rounds {
      var encoded: [Data] = []
      encodeFeed += try clock.measure { encoded = try feeds.map { try encoder.encode($0) } }
      feedBytes = encoded[0].count
      var decoded: [String: ClusterMemory.Answer] = [:]
      decodeFeeds += try clock.measure {
        for (index, data) in encoded.enumerated() {
          decoded[ids[index]] = .feed(try JSONDecoder().decode(NodeFeed.self, from: data))
        }
      }
      var view: ClusterView?
      merge += clock.measure { view = memory.view(feeds: decoded, now: 1_700_000_300_000 + Int64(round) * 1_000) }
      let merged = try #require(view)
      var data = Data()
      encodeView += try clock.measure { data = try encoder.encode(merged) }
      viewBytes = data.count
      #expect(merged.services.reduce(0) { $0 + $1.instances.count } == 1_000)
      #expect(merged.warnings.isEmpty)
    }
    func average(_ duration: Duration) -> String {
      String(format: "%.1f ms", Self.milliseconds(duration) / Double(rounds))
    }
    print(
      "dashboard, 1,000 instances on \(nodes) nodes: one node's feed \(feedBytes / 1024) KiB (encoded in "
        + "\(average(encodeFeed / nodes))); per tick: decoding \(nodes) feeds \(average(decodeFeeds)), merge "
        + "\(average(merge)), the view \(viewBytes / 1024) KiB encoded in \(average(encodeView))")
    #expect(viewBytes < 100_000 * nodes, "the view grew past 100 KB per node")
  }
}
