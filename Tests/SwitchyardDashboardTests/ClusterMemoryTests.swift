import Foundation
import SwitchyardDashboard
import SwitchyardModel
import Testing

@Suite("The dashboard's merge of etcd and the nodes into one view")
struct ClusterMemoryTests {
  static let lb1 = Fixture.entry("lb1", port: 9101)
  static let lb2 = Fixture.entry("lb2", port: 9102)

  func memory() -> ClusterMemory {
    ClusterMemory(selfID: "lb1", selfAdminURL: "http://127.0.0.1:9101")
  }

  @Test func twoNodesMergeIntoOneRowPerInstanceWithACellPerNode() throws {
    var memory = memory()
    memory.observe(Fixture.listing(Self.lb1, Self.lb2), now: 1_000)
    #expect(memory.targets == [ClusterMemory.Target(node: "lb2", adminURL: "http://127.0.0.1:9102")])
    let one = NodeFeed(
      state: Fixture.snapshot(
        "lb1",
        services: [
          Fixture.service(
            "backend", [Fixture.server("a"), Fixture.server("b", admin: "drain"), Fixture.server("c", admin: "maint")])
        ]),
      changes: [],
      traffic: Fixture.traffic([
        Fixture.trafficService(
          "backend", rate: 4,
          servers: [
            Fixture.trafficServer("a", status: "UP 1/2"), Fixture.trafficServer("b", status: "DRAIN"),
            Fixture.trafficServer("c", status: "MAINT"), Fixture.trafficServer("x", status: "UP"),
          ])
      ]))
    let two = NodeFeed(
      state: Fixture.snapshot(
        "lb2",
        services: [
          Fixture.service(
            "backend",
            [Fixture.server("a", health: "down"), Fixture.server("d", admin: "drain", registered: false)]),
          Fixture.service("web", [Fixture.server("w")]),
        ]),
      changes: [], traffic: nil)
    let view = memory.view(feeds: ["lb1": .feed(one), "lb2": .feed(two)], now: 1_100)
    #expect(view.servedBy == "lb1" && view.etcd.revision == 100)
    #expect(view.nodes.map(\.id) == ["lb1", "lb2"] && view.nodes.map(\.status) == ["up", "up"])
    #expect(view.nodes[0].rate == 4 && view.nodes[1].rate == nil)
    #expect(view.services.map(\.name) == ["backend", "web"])
    let backend = view.services[0]
    #expect(backend.instances.map(\.id) == ["a", "b", "c", "d", "x"])
    func states(_ id: String) -> [String?] {
      backend.instances.first { $0.id == id }?.cells.map { $0?.state } ?? []
    }
    // Traffic's status is fresher than /state's health: "UP 1/2" is up, one failed check on its way down.
    #expect(states("a") == ["up", "down"])
    #expect(states("b") == ["drain", nil])
    #expect(states("c") == ["maint", nil])
    #expect(states("d") == [nil, "drain"])
    #expect(states("x") == ["up", nil])
    let a = try #require(backend.instances.first?.cells[0])
    #expect(a.rate == 1.5 && a.sessions == 2 && a.check == "L7OK/200" && a.weight == 100 && !a.leaving)
    #expect(backend.instances[3].cells[1]?.leaving == true)
    #expect(backend.rate == 4 && backend.mode == "http" && backend.balance == "roundrobin")
    #expect(backend.history == [4])
    #expect(view.warnings.isEmpty, "\(view.warnings)")
    #expect(view.nodes[0].lastReloadReason == "backend svc_web is new")
  }

  @Test func aNodeThatStopsAnsweringThenLeavesEtcdIsNotAnsweringThenGoneThenForgotten() {
    var memory = memory()
    let me = NodeFeed(state: Fixture.snapshot("lb1"), changes: [], traffic: nil)
    memory.observe(Fixture.listing(Self.lb1, Self.lb2), now: 0)
    var view = memory.view(feeds: ["lb1": .feed(me), "lb2": .failed("connection refused")], now: 0)
    #expect(view.nodes[1].status == "not-answering" && view.nodes[1].problem == "connection refused")
    #expect(
      view.warnings.map(\.kind) == ["not-answering"]
        && view.warnings[0].text.contains("http://127.0.0.1:9102") && view.warnings[0].node == "lb2")
    memory.observe(Fixture.listing(Self.lb1), now: 1_000)
    #expect(memory.targets.map(\.node) == ["lb2"], "a node that left is still asked, in case it answers")
    view = memory.view(feeds: ["lb1": .feed(me), "lb2": .failed("connection refused")], now: 1_000)
    #expect(view.nodes[1].status == "gone" && !view.nodes[1].registered && view.warnings.isEmpty)
    // It answers again while its key is missing.
    let back = NodeFeed(state: Fixture.snapshot("lb2"), changes: [], traffic: nil)
    view = memory.view(feeds: ["lb1": .feed(me), "lb2": .feed(back)], now: 2_000)
    #expect(view.nodes[1].status == "up" && view.warnings.map(\.kind) == ["key-missing"])
    view = memory.view(feeds: ["lb1": .feed(me), "lb2": .failed("refused")], now: 2_000 + ClusterMemory.goneRetention)
    #expect(view.nodes[1].status == "gone")
    view = memory.view(feeds: ["lb1": .feed(me)], now: 2_001 + ClusterMemory.goneRetention)
    #expect(view.nodes.map(\.id) == ["lb1"] && memory.targets.isEmpty)
  }

  @Test func theServingNodeWithoutAKeyIsShownWithAWarning() {
    var memory = memory()
    memory.observe(Fixture.listing(), now: 0)
    let view = memory.view(
      feeds: ["lb1": .feed(NodeFeed(state: Fixture.snapshot("lb1", ready: false), changes: [], traffic: nil))], now: 0)
    #expect(view.nodes.map(\.status) == ["not-ready"] && view.nodes[0].adminURL == "http://127.0.0.1:9101")
    #expect(view.warnings.map(\.kind) == ["not-ready", "key-missing"])
  }

  @Test func etcdNotAnsweringKeepsTheNodesAsLastListed() {
    var memory = memory()
    memory.observe(Fixture.listing(Self.lb1, Self.lb2, revision: 7), now: 0)
    memory.observe(.failed("deadline exceeded"), now: 1_000)
    let feed = NodeFeed(state: Fixture.snapshot("lb1"), changes: [], traffic: nil)
    let view = memory.view(feeds: ["lb1": .feed(feed), "lb2": .failed("refused")], now: 1_000)
    #expect(view.etcd.revision == 7 && view.etcd.error == "deadline exceeded")
    #expect(view.nodes.map(\.status) == ["up", "not-answering"] && view.nodes.allSatisfy(\.registered))
    #expect(view.warnings.map(\.kind) == ["etcd", "not-answering"])
  }

  @Test func invalidNodeRecordsAreWarningsInWords() {
    var memory = memory()
    let hostileKey = ClusterMemory.Entry(
      key: Array("/switchyard/nodes/<img src=x onerror=alert(1)>\n".utf8), value: Fixture.entry("x", port: 1).value)
    let hostileValue = ClusterMemory.Entry(
      key: Array("/switchyard/nodes/lb3".utf8),
      value: Array(
        #"{"admin_url":"javascript:alert(1)","listen":"a:1","started":0,"stats":"a:2","switchyard_version":"1"}"#.utf8))
    memory.observe(Fixture.listing(Self.lb1, hostileKey, hostileValue), now: 0)
    #expect(memory.targets.isEmpty)
    let view = memory.view(
      feeds: ["lb1": .feed(NodeFeed(state: Fixture.snapshot("lb1"), changes: [], traffic: nil))], now: 0)
    let warnings = view.warnings.filter { $0.kind == "invalid-node-record" }
    #expect(warnings.count == 2)
    #expect(warnings.allSatisfy { !$0.text.contains("\n") && !$0.text.contains("javascript:") })
    #expect(view.nodes.map(\.id) == ["lb1"])
  }

  @Test func changesShowWhenEachNodeAppliedThemAndLaggingNodesAreWarnedAbout() throws {
    var memory = memory()
    let lb3 = Fixture.entry("lb3", port: 9103)
    memory.observe(Fixture.listing(Self.lb1, Self.lb2, lb3), now: 0)
    func record(_ revision: Int64, seen: Int64, applied: Int64?) -> ChangeRecord {
      ChangeRecord(
        revision: revision, seenAt: seen, appliedAt: applied,
        events: [.init(key: "/services/backend/b\(revision)", kind: "put")], eventCount: 1)
    }
    let one = NodeFeed(
      state: Fixture.snapshot("lb1", applied: 20),
      changes: [record(20, seen: 1_000, applied: 1_030), record(21, seen: 2_000, applied: nil)], traffic: nil)
    let two = NodeFeed(
      state: Fixture.snapshot("lb2", applied: 20), changes: [record(20, seen: 1_010, applied: 1_050)], traffic: nil)
    let three = NodeFeed(state: Fixture.snapshot("lb3", applied: 25), changes: [], traffic: nil)
    let view = memory.view(feeds: ["lb1": .feed(one), "lb2": .feed(two), "lb3": .feed(three)], now: 5_000)
    #expect(view.changes.map(\.revision) == [21, 20])
    #expect(view.changes[0].progress == [.pending, .pending, .appliedUntimed])
    #expect(view.changes[0].convergedAfter == nil && view.changes[0].seenAt == 2_000)
    #expect(view.changes[1].progress == [.applied(30), .applied(50), .appliedUntimed])
    #expect(view.changes[1].convergedAfter == 50 && view.changes[1].seenAt == 1_000)
    #expect(view.nodes.map(\.pending) == [1, 1, 0] && view.nodes[0].pendingSince == 2_000)
    let lagging = view.warnings.filter { $0.kind == "lagging" }
    #expect(lagging.map(\.node) == ["lb1", "lb2"])
    #expect(lagging[0].text.contains("3.0 s"))
    // A node that does not answer says nothing about a change.
    let quiet = memory.view(feeds: ["lb1": .feed(one), "lb2": .failed("timeout")], now: 2_100)
    #expect(quiet.changes[1].progress == [.applied(30), .unknown, .unknown])
    #expect(quiet.changes[1].convergedAfter == 30)
    #expect(!quiet.warnings.contains { $0.kind == "lagging" }, "pending for 100 ms is no lag")
  }

  @Test func conflictsBetweenRecordsAndAnswersAreWarnings() {
    var memory = memory()
    let twin = Fixture.entry("lb2", port: 9101)
    memory.observe(Fixture.listing(Self.lb1, twin), now: 0)
    let me = NodeFeed(state: Fixture.snapshot("lb1"), changes: [], traffic: nil)
    let view = memory.view(feeds: ["lb1": .feed(me), "lb2": .feed(me)], now: 0)
    let conflicts = view.warnings.filter { $0.kind == "conflict" }.map(\.text)
    #expect(conflicts.contains { $0.contains("lb1, lb2 all name the admin URL http://127.0.0.1:9101") })
    #expect(conflicts.contains { $0.contains("/switchyard/nodes/lb2 names") && $0.contains("node lb1 answers") })
  }

  @Test func problemsSeveralNodesReportAreOneWarningEach() {
    var memory = memory()
    memory.observe(Fixture.listing(Self.lb1, Self.lb2), now: 0)
    let invalid = (0..<60).map {
      NodeSnapshot.InvalidEntry(key: "/services/x/k\($0)", reason: "/services/x/k\($0): <b>bad</b> value")
    }
    let route = NodeSnapshot.Route(
      name: "api", service: "backend", hosts: ["api.example.com"], pathPrefix: "/", stripPrefix: false,
      target: "svc_backend")
    var shadowed = route
    shadowed.target = "shadowed"
    let one = NodeFeed(
      state: Fixture.snapshot("lb1", invalid: invalid, routes: [route], routeProblems: ["api loses /x to b"]),
      changes: [], traffic: nil)
    let two = NodeFeed(
      state: Fixture.snapshot(
        "lb2", invalid: Array(invalid.prefix(2)), routes: [shadowed], routeProblems: ["api loses /x to b"]),
      changes: [], traffic: nil)
    let view = memory.view(feeds: ["lb1": .feed(one), "lb2": .feed(two)], now: 0)
    let conflicts = view.warnings.filter { $0.kind == "conflict" }
    #expect(conflicts.map(\.text) == ["route problem on lb1, lb2: api loses /x to b"])
    let entries = view.warnings.filter { $0.kind == "invalid-entry" }
    #expect(entries.count == ClusterMemory.invalidEntriesListed + 1)
    #expect(entries[0].text == "skipped by lb1, lb2: /services/x/k0: <b>bad</b> value")
    #expect(entries.last?.text.hasPrefix("10 more invalid entries") == true)
    #expect(view.routes.map(\.targets) == [["svc_backend", "shadowed"]])
  }

  @Test func theRateHistoryKeepsAMinuteAndStartsAgainAfterAGap() {
    var memory = memory()
    memory.observe(Fixture.listing(Self.lb1), now: 0)
    func tick(_ now: Int64, rate: Double) -> [Double] {
      let feed = NodeFeed(
        state: Fixture.snapshot("lb1", services: [Fixture.service("backend", [])]), changes: [],
        traffic: Fixture.traffic([Fixture.trafficService("backend", rate: rate, servers: [])]))
      return memory.view(feeds: ["lb1": .feed(feed)], now: now).services[0].history
    }
    #expect(tick(1_000, rate: 1) == [1])
    #expect(tick(2_000, rate: 2) == [1, 2])
    #expect(tick(9_000, rate: 3) == [3])
    var last: [Double] = []
    for second in 1...70 { last = tick(9_000 + Int64(second) * 1_000, rate: Double(second)) }
    #expect(last.count == ClusterMemory.historyLength && last.first == 11 && last.last == 70)
  }

  @Test func theJSONHasNoLineBreakAndDecodesToTheSameView() throws {
    var memory = memory()
    memory.observe(Fixture.listing(Self.lb1), now: 0)
    let hostile = "</script><script>alert(1)</script>\n\r\u{2028}data: x"
    let feed = NodeFeed(
      state: Fixture.snapshot(
        "lb1", services: [Fixture.service("backend", [Fixture.server("a", admin: "ready")])],
        invalid: [NodeSnapshot.InvalidEntry(key: hostile, reason: hostile)]),
      changes: [
        ChangeRecord(revision: 3, seenAt: 1, appliedAt: 2, events: [.init(key: hostile, kind: "put")], eventCount: 1)
      ],
      traffic: nil)
    let view = memory.view(feeds: ["lb1": .feed(feed)], now: 10)
    let data = try JSONEncoder().encode(view)
    #expect(!data.contains(UInt8(ascii: "\n")) && !data.contains(UInt8(ascii: "\r")))
    let text = String(decoding: data, as: UTF8.self)
    #expect(text.contains(#""cells":[["up",100,0,0,null,0,0]]"#))
    #expect(text.contains(#""progress":[1]"#))
    #expect(try JSONDecoder().decode(ClusterView.self, from: data) == view)
  }
}
