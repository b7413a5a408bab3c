import EtcdClient
import Foundation
import SwitchyardLocal
import SwitchyardModel
import SwitchyardTestSupport
import Synchronization
import Testing

#if canImport(Glibc)
  import Glibc
#elseif canImport(Darwin)
  import Darwin
#endif

extension Tag {
  /// Tests that drive a real (headless) Chromium through chromedriver.
  @Tag static var browser: Self
}

/// Issue 26, item 5: the dashboard as a user sees it, in headless Chromium (``HeadlessChromium``), against a
/// real local cluster. The page is read through its DOM contract (``BrowserDashboard``) every 100 ms; each
/// change of the cluster must show within 2 s, without a reload. Screenshots go to
/// `.build/test-output/dashboard/` (or `$SWITCHYARD_TEST_OUTPUT/dashboard/`).
@Suite(.serialized, .tags(.browser)) struct DashboardBrowserTests {
  /// How long the page may take to show a change.
  static let limit: Duration = .seconds(2)

  /// `switchyard up` with two LB nodes, two backends and web; the page of lb1 open throughout: it loads
  /// without a console error and shows every node and instance; backends scaled up and down, lb2's
  /// controller killed (SIGKILL) and started again each show within 2 s, in the same page load.
  @Test func followsTheClusterLive() async throws {
    let output = try TestOutput.directory("dashboard")
    let directory = try TemporaryDirectory(prefix: "dashboard")
    let home = "\(directory.path)/home"
    let (ports, portFlags, _) = try clusterPorts()
    let dashboardURL = "http://127.0.0.1:\(ports[10])/"
    defer { directory.remove() }
    do {
      _ = try await switchyard(["up", "--backends", "2", "--home", home] + portFlags, timeout: .seconds(180))
      var configuration = try EtcdConfiguration(endpoints: "127.0.0.1:\(ports[0])")
      configuration.requestTimeout = .seconds(5)
      try await withEtcdClient(configuration: configuration, logger: quietLogger) { etcd in
        try await EtcdChanges.recording(etcd) { changes in
          var options = HeadlessChromium.Options()
          options.logDirectory = output
          try await HeadlessChromium.with(options) { browser in
            try await follow(browser, url: dashboardURL, home: home, changes: changes, output: output)
          }
        }
      }
    } catch {
      if let logs = try? await switchyard(["logs", "lb1", "--home", home]) {
        Issue.record("lb1's log:\n\(logs.suffix(6_000))")
      }
      _ = try? await switchyard(["down", "--purge", "--home", home], timeout: .seconds(120))
      throw error
    }
    let down = try await switchyard(["down", "--purge", "--home", home], timeout: .seconds(120))
    #expect(down.contains("every port is free"), "\(down)")
  }

  /// The steps of ``followsTheClusterLive()`` in one page load of lb1's dashboard.
  private func follow(
    _ browser: HeadlessChromium, url: String, home: String, changes: EtcdChanges, output: String
  ) async throws {
    let page = BrowserDashboard(browser: browser)
    var delays: [(String, Duration)] = []
    let initial: Set = ["backend/backend-1", "backend/backend-2", "web/web-1"]
    let nodes = ["lb1", "lb2"]

    // Load: connected, both nodes up, every instance up on both nodes, no console error.
    let navigated = ContinuousClock.now
    try await browser.navigate(to: url)
    let loaded = try await page.waitFor("the first view", timeout: .seconds(15)) { view in
      view.connected && nodes.allSatisfy { view.nodes[$0] == "up" } && Set(view.instances.keys) == initial
        && view.allUp(initial, on: nodes)
    }
    delays.append(("load: every node and instance shown (from navigation)", navigated.duration(to: loaded.at)))
    let loadID = try #require(loaded.view.loadID, "window.switchyard.loadId is not set")
    let loadErrors = try await browser.consoleErrors()
    #expect(loadErrors.isEmpty, "console errors while the page loaded: \(loadErrors)")
    try await browser.saveScreenshot(to: "\(output)/dashboard.png")

    // Scale up: backend-3 and backend-4 appear, then are up on both nodes.
    let added = ["backend/backend-3", "backend/backend-4"]
    let scaleUp = ContinuousClock.now
    let (upSeen, upDone) = try await page.whileRunning(
      { _ = try await switchyard(["scale", "backend=4", "--home", home], timeout: .seconds(120)) },
      conditions: added.map { id in ("\(id) shown", { $0.instances[id] != nil }) }
        + [("all up on every node", { $0.allUp(initial.union(added), on: nodes) })]
    )
    for id in added {
      let put = try #require(changes.first(.put, of: "/services/\(id)"), "no put of \(id) seen in etcd")
      let shown = try #require(upSeen["\(id) shown"])
      let delay = put.duration(to: shown)
      delays.append(("scale up: \(id) shown after its put in etcd", delay))
      #expect(delay <= Self.limit, "\(id) showed \(delay) after its put")
    }
    let allUp = try #require(upSeen["all up on every node"])
    delays.append(("scale up: all up on both nodes after `scale` returned", upDone.duration(to: allUp)))
    delays.append(("scale up: all up on both nodes after `scale` started", scaleUp.duration(to: allUp)))
    #expect(upDone.duration(to: allUp) <= Self.limit, "all up \(upDone.duration(to: allUp)) after `scale` returned")
    try await browser.saveScreenshot(to: "\(output)/dashboard-scaled-up.png")

    // Scale down to one backend: the others leave the page.
    let removed = ["backend/backend-2", "backend/backend-3", "backend/backend-4"]
    let (downSeen, downDone) = try await page.whileRunning(
      { _ = try await switchyard(["scale", "backend=1", "--home", home], timeout: .seconds(120)) },
      conditions: removed.map { id in ("\(id) gone", { $0.instances[id] == nil }) }
    )
    for id in removed {
      let deleted = try #require(changes.first(.delete, of: "/services/\(id)"), "no delete of \(id) seen in etcd")
      let gone = try #require(downSeen["\(id) gone"])
      let delay = deleted.duration(to: gone)
      delays.append(("scale down: \(id) gone after its delete in etcd", delay))
      #expect(delay <= Self.limit, "\(id) left the page \(delay) after its delete")
    }
    _ = downDone

    // lb2's controller killed: the page shows it not answering (its HAProxy serves on).
    let lb2 = try #require(try await clusterStatus(home: home).parts.first { $0.name == "lb2" }?.pid)
    try #require(ProcFS.commandLine(of: lb2).contains { $0.contains(home) }, "pid \(lb2) is not lb2 of this cluster")
    kill(lb2, SIGKILL)
    let killed = ContinuousClock.now
    let notAnswering = try await page.waitFor("lb2 not answering", timeout: .seconds(15)) { view in
      ["not-answering", "gone"].contains(view.nodes["lb2"] ?? "gone")
    }
    delays.append(
      ("lb2 killed: shown \(notAnswering.view.nodes["lb2"] ?? "absent")", killed.duration(to: notAnswering.at)))
    #expect(killed.duration(to: notAnswering.at) <= Self.limit)
    try await browser.saveScreenshot(to: "\(output)/dashboard-node-not-answering.png")

    // Started again: lb2 adopts its HAProxy and is up on the page.
    let starting = ContinuousClock.now
    _ = try await switchyard(["start", "lb2", "--home", home], timeout: .seconds(60))
    let started = ContinuousClock.now
    let back = try await page.waitFor("lb2 up again", timeout: .seconds(15)) { view in
      view.nodes["lb2"] == "up" && view.allUp(["backend/backend-1", "web/web-1"], on: nodes)
    }
    delays.append(("lb2 restarted: up after `start` returned", started.duration(to: back.at)))
    delays.append(("lb2 restarted: up after `start` began", starting.duration(to: back.at)))
    #expect(started.duration(to: back.at) <= Self.limit)

    // One page load throughout.
    let last = try await page.read()
    #expect(last.loadID == loadID, "the page reloaded: loadId \(loadID) → \(last.loadID ?? "none")")
    #expect(last.connected)
    let laterErrors = try await browser.consoleErrors().filter { error in !loadErrors.contains(error) }
    print("dashboard: console errors after the load: \(laterErrors.isEmpty ? "none" : "\(laterErrors)")")
    print("dashboard: \(last.changes) recent changes, warnings \(last.warnings)")
    for (what, delay) in delays {
      print("dashboard delay: \(what): \(delay.milliseconds) ms")
    }
    print("dashboard: screenshots in \(output)")
  }

  /// 1,000 instances against one controller: the page shows all of them; time to first render, the
  /// snapshot's size and the cost of updates while 50 instances change are printed (no thresholds).
  @Test func thousandInstances() async throws {
    let output = try TestOutput.directory("dashboard")
    try await withNodes(count: 1) { _, nodes, etcd in
      try await HTTPTestServer.with(name: "bulk") { server in
        try await thousand(node: nodes[0], etcd: etcd, port: server.port, output: output)
      }
    }
  }

  /// The steps of ``thousandInstances()``: 1,000 instances of `bulk` at 127.0.0.1:`port` (one server for all,
  /// so that their health checks pass).
  private func thousand(node: LBNode, etcd: EtcdClient, port: Int, output: String) async throws {
    let lease = try await etcd.grantLease(ttl: 600)
    let ids = (1...1_000).map { String(format: "bulk-%04d", $0) }
    let registering = ContinuousClock.now
    try await withThrowingTaskGroup(of: Void.self) { group in
      for batch in stride(from: 0, to: ids.count, by: 50) {
        let slice = ids[batch..<min(batch + 50, ids.count)]
        group.addTask {
          for id in slice { try await etcd.register(id, port: port, service: "bulk", lease: lease.id) }
        }
      }
      try await group.waitForAll()
    }
    print("dashboard 1000: registered 1,000 instances in \(registering.duration(to: .now).milliseconds) ms")
    var options = HeadlessChromium.Options()
    options.logDirectory = output
    try await HeadlessChromium.with(options) { browser in
      let page = BrowserDashboard(browser: browser)
      let navigated = ContinuousClock.now
      try await browser.navigate(to: "http://127.0.0.1:\(node.adminPort)/")
      let rows = try await page.waitForCounts("all 1,000 rows", prefix: "bulk/", timeout: .seconds(30)) {
        $0.rows == 1_000
      }
      let first = try await page.read(instances: false)
      let loadErrors = try await browser.consoleErrors()
      #expect(loadErrors.isEmpty, "console errors while the page loaded: \(loadErrors)")
      let allUp = try await page.waitForCounts("1,000 up", prefix: "bulk/", timeout: .seconds(30)) {
        $0.rows == 1_000 && $0.up == 1_000
      }
      try await browser.saveScreenshot(to: "\(output)/dashboard-1000-instances.png", fullPage: false)

      // 50 instances drained, one put every 20 ms.
      let before = try await page.read(instances: false)
      let changing = ContinuousClock.now
      for id in ids.prefix(50) {
        try await etcd.register(id, port: port, service: "bulk", state: .drain, lease: lease.id)
        try await Task.sleep(for: .milliseconds(20))
      }
      let written = ContinuousClock.now
      let drained = try await page.waitForCounts("50 drained", prefix: "bulk/", timeout: .seconds(30)) {
        $0.drain == 50 && $0.rows == 1_000
      }
      let after = try await page.read(instances: false)
      let updates = (after.updates ?? 0) - (before.updates ?? 0)
      let cost = (after.totalUpdateMs ?? 0) - (before.totalUpdateMs ?? 0)
      print(
        """
        dashboard 1000: all 1,000 rows shown \(navigated.duration(to: rows.at).milliseconds) ms after navigation, \
        all up \(navigated.duration(to: allUp.at).milliseconds) ms after; firstRenderMs \
        \(first.firstRenderMs.map(format) ?? "unset"), snapshotBytes \(first.snapshotBytes.map(format) ?? "unset")
        dashboard 1000: 50 changes written in \(changing.duration(to: written).milliseconds) ms, all shown \
        \(written.duration(to: drained.at).milliseconds) ms after the last; \(format(updates)) updates costing \
        \(format(cost)) ms (\(updates > 0 ? format(cost / updates) : "-") ms each; the last \
        \(after.lastUpdateMs.map(format) ?? "unset") ms; the worst seen while polling \(format(drained.worstUpdateMs)) ms)
        """)
      #expect(first.firstRenderMs != nil && first.snapshotBytes != nil, "window.switchyard lacks figures")
      #expect(updates > 0, "window.switchyard.updates did not grow while instances changed")
      #expect(after.loadID == first.loadID)
      #expect(try await browser.consoleErrors().isEmpty)
    }
    try await etcd.revokeLease(lease.id)
  }
}

/// The dashboard in the browser, read through its DOM contract:
/// - `document.body.dataset.connected` is "true" once the live stream is up;
/// - nodes `#nodes [data-node]` with `data-status` up | not-ready | not-answering | gone;
/// - instance rows `#services tr[data-instance="<service>/<id>"]`, cells `td[data-node]` with `data-state`
///   up | down | drain | maint | missing;
/// - recent changes `#changes [data-revision]`, warnings `#warnings li`;
/// - `window.switchyard = {loadId, firstRenderMs, updates, lastUpdateMs, totalUpdateMs, snapshotBytes}`.
struct BrowserDashboard {
  /// What the page shows at one moment.
  struct View: Sendable {
    var connected = false
    var loadID: String?
    /// Node id → `data-status`.
    var nodes: [String: String] = [:]
    /// `<service>/<id>` → node id → `data-state`.
    var instances: [String: [String: String]] = [:]
    var changes = 0
    var warnings: [String] = []
    var firstRenderMs: Double?
    var updates: Double?
    var lastUpdateMs: Double?
    var totalUpdateMs: Double?
    var snapshotBytes: Double?

    /// Whether each of `instances` has a cell `up` on each of `nodes`.
    func allUp(_ ids: Set<String>, on nodes: [String]) -> Bool {
      ids.allSatisfy { id in nodes.allSatisfy { instances[id]?[$0] == "up" } }
    }
  }

  /// Rows and cells counted in the page, for large pages.
  struct Counts: Sendable {
    var rows = 0
    var up = 0
    var drain = 0
    var lastUpdateMs: Double?
  }

  let browser: HeadlessChromium

  /// How often the page is read while waiting.
  static let interval: Duration = .milliseconds(100)

  static let script = """
    const sy = window.switchyard || {};
    const number = (value) => typeof value === "number" ? value : null;
    const result = {
      connected: document.body.dataset.connected === "true",
      loadId: sy.loadId === undefined || sy.loadId === null ? null : String(sy.loadId),
      nodes: {}, instances: {},
      changes: document.querySelectorAll("#changes [data-revision]").length,
      warnings: [...document.querySelectorAll("#warnings li")].map((li) => li.textContent.trim()),
      firstRenderMs: number(sy.firstRenderMs), updates: number(sy.updates), lastUpdateMs: number(sy.lastUpdateMs),
      totalUpdateMs: number(sy.totalUpdateMs), snapshotBytes: number(sy.snapshotBytes),
    };
    for (const node of document.querySelectorAll("#nodes [data-node][data-status]")) {
      result.nodes[node.dataset.node] = node.dataset.status;
    }
    if (arguments[0]) {
      for (const row of document.querySelectorAll("#services tr[data-instance]")) {
        const cells = {};
        for (const cell of row.querySelectorAll("td[data-node]")) cells[cell.dataset.node] = cell.dataset.state || "";
        result.instances[row.dataset.instance] = cells;
      }
    }
    return result;
    """

  static let countScript = """
    const rows = [...document.querySelectorAll("#services tr[data-instance]")]
      .filter((row) => row.dataset.instance.startsWith(arguments[0]));
    let up = 0, drain = 0;
    for (const row of rows) {
      const states = [...row.querySelectorAll("td[data-node]")].map((cell) => cell.dataset.state);
      if (states.length > 0 && states.every((state) => state === "up")) up += 1;
      if (states.length > 0 && states.every((state) => state === "drain")) drain += 1;
    }
    const sy = window.switchyard || {};
    return {rows: rows.length, up, drain, lastUpdateMs: typeof sy.lastUpdateMs === "number" ? sy.lastUpdateMs : null};
    """

  /// Reads the page once; without `instances`, the rows are left out (for 1,000 of them).
  func read(instances: Bool = true) async throws -> View {
    let value = try await browser.execute(Self.script, [.bool(instances)])
    var view = View()
    view.connected = value["connected"].bool ?? false
    view.loadID = value["loadId"].string
    view.nodes = (value["nodes"].object ?? [:]).compactMapValues(\.string)
    view.instances = (value["instances"].object ?? [:]).mapValues { ($0.object ?? [:]).compactMapValues(\.string) }
    view.changes = value["changes"].int ?? 0
    view.warnings = (value["warnings"].array ?? []).compactMap(\.string)
    view.firstRenderMs = value["firstRenderMs"].double
    view.updates = value["updates"].double
    view.lastUpdateMs = value["lastUpdateMs"].double
    view.totalUpdateMs = value["totalUpdateMs"].double
    view.snapshotBytes = value["snapshotBytes"].double
    return view
  }

  /// Reads the page every 100 ms until `condition` holds; returns that view and when it was read.
  func waitFor(
    _ what: String, timeout: Duration, _ condition: (View) -> Bool
  ) async throws -> (view: View, at: ContinuousClock.Instant) {
    let deadline = ContinuousClock.now.advanced(by: timeout)
    var last: View?
    while true {
      let tick = ContinuousClock.now
      let view = try await read()
      if condition(view) { return (view, tick) }
      last = view
      guard ContinuousClock.now < deadline else {
        throw TestSupportError("the page did not show \(what) within \(timeout); it shows \(describe(last))")
      }
      try await Task.sleep(until: tick.advanced(by: Self.interval))
    }
  }

  /// ``waitFor(_:timeout:_:)`` for counts of the rows whose instance starts with `prefix`; also the worst
  /// `lastUpdateMs` seen on the way.
  func waitForCounts(
    _ what: String, prefix: String, timeout: Duration, _ condition: (Counts) -> Bool
  ) async throws -> (counts: Counts, at: ContinuousClock.Instant, worstUpdateMs: Double) {
    let deadline = ContinuousClock.now.advanced(by: timeout)
    var worst = 0.0
    while true {
      let tick = ContinuousClock.now
      let value = try await browser.execute(Self.countScript, [.string(prefix)])
      let counts = Counts(
        rows: value["rows"].int ?? 0, up: value["up"].int ?? 0, drain: value["drain"].int ?? 0,
        lastUpdateMs: value["lastUpdateMs"].double)
      worst = max(worst, counts.lastUpdateMs ?? 0)
      if condition(counts) { return (counts, tick, worst) }
      guard ContinuousClock.now < deadline else {
        throw TestSupportError(
          "the page did not show \(what) within \(timeout): \(counts.rows) rows, \(counts.up) up, \(counts.drain) drained"
        )
      }
      try await Task.sleep(until: tick.advanced(by: Self.interval))
    }
  }

  /// Runs `action` (a `switchyard` command) while reading the page every 100 ms, and keeps on reading after
  /// it returned until every condition has held once (at most 15 s more). Returns when each first held,
  /// and when `action` returned.
  func whileRunning(
    _ action: @escaping @Sendable () async throws -> Void,
    conditions: [(String, (View) -> Bool)]
  ) async throws -> (seen: [String: ContinuousClock.Instant], returned: ContinuousClock.Instant) {
    let outcome = Mutex<Result<ContinuousClock.Instant, any Error>?>(nil)
    let task = Task {
      do {
        try await action()
        outcome.withLock { $0 = .success(.now) }
      } catch {
        outcome.withLock { $0 = .failure(error) }
      }
    }
    var seen: [String: ContinuousClock.Instant] = [:]
    do {
      while true {
        let tick = ContinuousClock.now
        let view = try await read()
        for (name, condition) in conditions where seen[name] == nil && condition(view) { seen[name] = tick }
        switch outcome.withLock({ $0 }) {
        case .failure(let error):
          throw error
        case .success(let returned):
          if seen.count == conditions.count { return (seen, returned) }
          guard returned.duration(to: tick) < .seconds(15) else {
            let missing = conditions.map(\.0).filter { seen[$0] == nil }
            throw TestSupportError("the page never showed \(missing); it shows \(describe(view))")
          }
        case nil:
          break
        }
        try await Task.sleep(until: tick.advanced(by: Self.interval))
      }
    } catch {
      task.cancel()
      await task.value
      throw error
    }
  }

  private func describe(_ view: View?) -> String {
    guard let view else { return "nothing" }
    let instances = view.instances.sorted { $0.key < $1.key }.map { "\($0.key) \($0.value)" }
    return "connected \(view.connected), nodes \(view.nodes), instances \(instances)"
  }
}

/// The changes under `/services/` as the test's own etcd watch saw them, with when: the moment each
/// change was in etcd, to measure how long the page took to show it.
final class EtcdChanges: Sendable {
  struct Change: Sendable {
    var kind: WatchEvent.Kind
    var key: String
    var at: ContinuousClock.Instant
  }

  private let seen = Mutex<[Change]>([])

  /// When the first `kind` change of `key` was seen.
  func first(_ kind: WatchEvent.Kind, of key: String) -> ContinuousClock.Instant? {
    seen.withLock { $0.first { $0.kind == kind && $0.key == key }?.at }
  }

  /// Runs `body` while a watch of `/services/` records every change.
  static func recording<Result: Sendable>(
    _ etcd: EtcdClient, _ body: (EtcdChanges) async throws -> Result
  ) async throws -> Result {
    let changes = EtcdChanges()
    let created = AsyncStream<Void>.makeStream()
    let watch = Task {
      for try await response in etcd.watch(.prefix("/services/"), options: WatchOptions(notifyCreated: true)) {
        if response.isCreated { created.continuation.yield() }
        let now = ContinuousClock.now
        changes.seen.withLock { seen in
          for event in response.events {
            seen.append(Change(kind: event.kind, key: String(decoding: event.kv.key, as: UTF8.self), at: now))
          }
        }
      }
    }
    defer { watch.cancel() }
    var iterator = created.stream.makeAsyncIterator()
    _ = await iterator.next()
    return try await body(changes)
  }
}

extension Duration {
  /// Whole milliseconds, for printing.
  fileprivate var milliseconds: Int64 { components.seconds * 1_000 + components.attoseconds / 1_000_000_000_000_000 }
}

/// A figure for printing: whole numbers without decimals, others with one.
private func format(_ value: Double) -> String {
  value.rounded() == value ? String(Int64(value)) : String(format: "%.1f", value)
}
