import EtcdClient
import Foundation
import SwitchyardModel
import SwitchyardTestSupport
import Testing

/// What one scenario cost.
struct ScenarioFigures {
  var name: String
  var requests = 0
  var failures: [String: Int] = [:]
  /// Per node, from its first failed request to its last.
  var failureWindows: [String: Duration] = [:]
  var errors: [String] = []
  /// Revisions etcd gained during the scenario: every put and delete, the test's own included.
  var etcdWrites: Int64 = 0
  /// Of those, the LB nodes' writes of their own records (`/switchyard/nodes/<lb>`): the one thing a
  /// controller writes.
  var nodeWrites = 0
  /// Registrations of live backends that were deleted.
  var lost: [String] = []
  /// A change made during the fault: the time each node took to serve it.
  var changeApplied: [String: Duration?] = [:]
  /// From the heal to each node's server set equal to etcd's registrations.
  var convergence: [String: Duration?] = [:]
  var reloads = 0.0
  var notes: [String] = []

  var totalFailures: Int { failures.values.reduce(0, +) }
}

/// What a scenario's body can do and record.
final class ScenarioContext: @unchecked Sendable {
  let cluster: FaultCluster
  let etcd: EtcdClient
  let events: RegistrationEvents
  private(set) var figures: ScenarioFigures
  private var faultStart = ContinuousClock.now
  /// What the scenario's setup started and wrote, for its teardown.
  let fixture = ScenarioFixture()

  init(cluster: FaultCluster, etcd: EtcdClient, events: RegistrationEvents, name: String) {
    self.cluster = cluster
    self.etcd = etcd
    self.events = events
    figures = ScenarioFigures(name: name)
  }

  var elapsedSinceFault: Duration { ContinuousClock.now - faultStart }

  /// Marks the moment the fault begins.
  func faultBegins() { faultStart = .now }

  /// Sleeps until the fault has lasted `duration`.
  func holdFault(for duration: Duration) async throws {
    try await Task.sleep(until: faultStart + duration, clock: .continuous)
  }

  func note(_ text: String) { figures.notes.append(text) }

  /// Starts backend `x1` on host be1 (port 8081) during the fault and records how long each node in
  /// `nodes` took to serve it after its registration reached etcd; more than 3 s is a failure. How long
  /// the backend took to register goes to the notes.
  func changeDuringFault(nodes: [String] = FaultCluster.lbNames) async throws {
    let started = ContinuousClock.now
    try cluster.startBackend("x1", on: "be1", port: 8081)
    let address = "\(cluster.lab.host("be1").address):8081"
    var times = await cluster.timeUntilServed(
      "x1", address: address, by: nodes, timeout: FaultSuiteTests.changeDeadline + .seconds(7))
    var written: ContinuousClock.Instant?
    try? await retrying(timeout: .seconds(10)) {
      written = events.lastPut("/services/backend/x1").flatMap { $0 > started ? $0 : nil }
      guard written != nil else { throw TestSupportError("the watch has not seen x1's registration") }
    }
    if let written {
      note("x1 registered \(written - started) after its start (as the test's watch saw it)")
      // A node that served x1 before the test's watch saw the write is timed from x1's start instead: an
      // upper bound, since the write came between the two.
      for (lb, time) in times {
        times[lb] = time.map { started + $0 >= written ? started + $0 - written : $0 }
      }
    } else {
      Issue.record("\(figures.name): the watch saw no registration of x1 within 10 s")
    }
    figures.changeApplied = times
    for (lb, time) in times {
      if let time, time <= FaultSuiteTests.changeDeadline { continue }
      Issue.record(
        "\(figures.name): \(lb) applied the change made during the fault after \(time.map { "\($0)" } ?? "never") (limit 3 s)"
      )
    }
  }

  /// Records, for each node, the time from now until its server set equals etcd's registrations.
  func healed() async {
    let times = await cluster.convergence(etcd, timeout: FaultSuiteTests.convergenceDeadline + .seconds(8))
    figures.convergence = times
    for (lb, time) in times {
      if let time, time <= FaultSuiteTests.convergenceDeadline { continue }
      Issue.record(
        "\(figures.name): \(lb)'s servers equal etcd's registrations after \(time.map { "\($0)" } ?? "more than 10 s") (limit 2 s)"
      )
    }
  }

  /// Writes hostile entries next to a valid new backend (`x1`): the controller must serve `x1`, write no
  /// line from any hostile entry, pass `haproxy -c`, and reload nothing.
  func hostileEntries() async throws {
    let reloadsBefore = try await reloadCount()
    var entries = HostileEntries.generate(count: 150)
    entries.shuffle()
    for (key, value) in entries { _ = try await etcd.put(key, value: value) }
    try cluster.startBackend("x1", on: "be1", port: 8081)
    let address = "\(cluster.lab.host("be1").address):8081"
    let served = await cluster.timeUntilServed("x1", address: address, timeout: .seconds(10))
    figures.changeApplied = served
    for (lb, time) in served where time == nil {
      Issue.record("\(figures.name): \(lb) never served the valid entry next to the hostile ones")
    }
    for lb in FaultCluster.lbNames {
      guard cluster.controller(lb)?.isRunning == true else {
        Issue.record("\(figures.name): \(lb)'s controller died: \(cluster.logTail(lb))")
        continue
      }
      let config = try String(contentsOfFile: "\(cluster.stateDirectory(lb))/haproxy.cfg", encoding: .utf8)
      let hostileLines = config.split(separator: "\n").filter { $0.lowercased().contains("evil") }
      #expect(hostileLines.isEmpty, "\(figures.name): \(lb)'s config has lines from hostile entries: \(hostileLines)")
      do {
        try await ManagedProcess.run(
          "haproxy", arguments: ["-c", "-q", "-f", "\(cluster.stateDirectory(lb))/haproxy.cfg"])
      } catch {
        Issue.record("\(figures.name): \(lb)'s config fails haproxy -c: \(error)")
      }
    }
    let reloads = try await reloadCount() - reloadsBefore
    #expect(reloads == 0, "\(figures.name): hostile entries caused \(reloads) reloads")
    for lb in FaultCluster.lbNames {
      // Seen as one episode: /state lists the first 100 and counts all; the log has no line per entry.
      let (_, body) = try await HTTPLoadClient.get("\(cluster.adminURL(lb))/state", timeout: .seconds(2))
      let state = try JSONDecoder().decode(NodeSnapshot.self, from: Data(body.utf8))
      #expect(state.invalidEntries.count == 100, "\(figures.name): \(lb) lists \(state.invalidEntries.count)")
      #expect(
        (state.invalidEntryCount ?? 0) > 100,
        "\(figures.name): \(lb) counts \(String(describing: state.invalidEntryCount))")
      let lines = cluster.controller(lb)?.logTail(bytes: 1_000_000).split(separator: "\n") ?? []
      let reports = lines.filter { $0.contains("invalid entries") }
      #expect(
        (1...3).contains(reports.count), "\(figures.name): \(lb) logged \(reports.count) lines about invalid entries")
      note("\(lb): \(state.invalidEntryCount ?? 0) invalid entries, \(reports.count) log lines about them")
    }
    _ = try await etcd.delete(.prefix("/services/backend/EVIL"))
    _ = try await etcd.delete(.prefix("/services/EVIL"))
  }

  /// Starts a second `switchyard backend --id <id>` on `host` (port 8082) for `duration`, then stops it
  /// with SIGTERM. The original must keep its key untouched (same value, lease and revision) and stay
  /// in every node's serving set throughout; the duplicate must say so once at error level.
  func duplicateInstance(of id: String, on host: String, for duration: Duration) async throws {
    let key = "/services/backend/\(id)"
    guard let original = try await etcd.value(of: key) else { throw TestSupportError("\(key) is not registered") }
    let address = "\(cluster.lab.host(id).address):8080"
    let name = "\(id)-duplicate"
    try cluster.startBackend(id, on: host, port: 8082, as: name)
    faultBegins()
    var outOfRotation: [String] = []
    func missing() async -> [String] {
      Set(FaultCluster.lbNames).subtracting(await cluster.nodes(serving: address)).sorted()
    }
    while elapsedSinceFault < duration {
      outOfRotation += await missing().map { "\($0) at \(elapsedSinceFault)" }
      try await Task.sleep(for: .milliseconds(200))
    }
    try await cluster.stopBackend(name)
    for _ in 0..<10 {
      outOfRotation += await missing().map { "\($0) after the duplicate stopped" }
      try await Task.sleep(for: .milliseconds(200))
    }
    let now = try await etcd.value(of: key)
    #expect(
      now?.value == original.value && now?.lease == original.lease && now?.modRevision == original.modRevision,
      "\(figures.name): the original's key changed: \(String(decoding: now?.value ?? [], as: UTF8.self))")
    #expect(outOfRotation.isEmpty, "\(figures.name): \(id) left rotation: \(outOfRotation.prefix(10))")
    let log = cluster.logTail(name)
    let reports = log.components(separatedBy: "instance id conflict:").count - 1
    #expect(reports == 1, "\(figures.name): the duplicate reported the conflict \(reports) times:\n\(log)")
    note("out of rotation: \(outOfRotation.count) samples; the duplicate's conflict reports: \(reports)")
  }

  /// Drains `id` through an operator's override for `duration`, then ends it. Every node must take it
  /// out of rotation within the change deadline and keep it out, put it back within the deadline, and
  /// its registrar must not touch its key; the override's put and delete are the only writes.
  func operatorDrain(of id: String, for duration: Duration) async throws {
    let key = RegistrationKey(service: .backend, instance: try InstanceID(validating: id))
    guard let registration = try await etcd.value(of: key.path) else {
      throw TestSupportError("\(key) is not registered")
    }
    let address = "\(cluster.lab.host(id).address):8080"
    let override = try InstanceOverride(instance: key, state: .drain, reason: "fault suite")
    _ = try await etcd.put(override.path, value: override.encoded())
    faultBegins()
    let out = await cluster.timeUntilOutOfRotation(address, timeout: .seconds(10))
    figures.changeApplied = out
    var backInRotation: [String] = []
    while elapsedSinceFault < duration {
      for lb in await cluster.nodes(serving: address).sorted() {
        backInRotation.append("\(lb) at \(elapsedSinceFault)")
      }
      try await Task.sleep(for: .milliseconds(200))
    }
    _ = try await etcd.delete(.key(override.path))
    let back = await cluster.timeUntilServed(id, address: address, timeout: .seconds(10))
    note(
      "out of rotation after \(FaultCluster.lbNames.map { "\(out[$0].flatMap { $0 }.map { "\($0)" } ?? "never")" }), "
        + "back after \(FaultCluster.lbNames.map { "\(back[$0].flatMap { $0 }.map { "\($0)" } ?? "never")" })")
    for lb in FaultCluster.lbNames {
      if let time = out[lb] ?? nil, time <= FaultSuiteTests.changeDeadline, let again = back[lb] ?? nil,
        again <= FaultSuiteTests.changeDeadline
      {
        continue
      }
      Issue.record(
        "\(figures.name): \(lb) took the drain or its end too long: out \(String(describing: out[lb])), back \(String(describing: back[lb]))"
      )
    }
    #expect(backInRotation.isEmpty, "\(figures.name): \(id) served while drained: \(backInRotation.prefix(10))")
    let after = try await etcd.value(of: key.path)
    #expect(after?.modRevision == registration.modRevision, "\(figures.name): \(id)'s registrar rewrote its key")
  }

  /// Kills `pid` (lb1's HAProxy master or a worker) with SIGKILL, waits until lb1 runs a HAProxy with a
  /// master other than `master` that answers, notes how long that took, and waits for the heal.
  func killAndAwaitNewHAProxy(kill pid: Int32, master: Int32) async throws {
    _ = kill(pid, SIGKILL)
    faultBegins()
    try await retrying(timeout: .seconds(20), every: .milliseconds(100)) {
      guard let now = cluster.haproxyPID("lb1"), now != master, StrayProcessGuard.isAlive(now) else {
        throw TestSupportError("lb1's HAProxy was not started again")
      }
      _ = try await cluster.servingSet("lb1")
    }
    note("HAProxy back after \(elapsedSinceFault)")
    await healed()
  }

  func reloadCount() async throws -> Double {
    var total = 0.0
    for lb in FaultCluster.lbNames { total += try await cluster.metric(lb, "switchyard_haproxy_reloads_total") }
    return total
  }

  /// Requests the scenario sent beside the steady load (routed load), counted in its figures.
  private var extra = SteadyLoad.Report()

  /// Adds requests the scenario sent itself, and their failures by node, to its figures.
  func addRequests(_ requests: Int, failures: [String: Int], errors: [String]) {
    extra.requests += requests
    for (lb, count) in failures { extra.failures[lb, default: 0] += count }
    extra.errors += errors
  }

  func finish(load: SteadyLoad.Report, writes: Int64, lost: [String]) -> ScenarioFigures {
    figures.requests = load.requests + extra.requests
    figures.failures = load.failures.merging(extra.failures, uniquingKeysWith: +)
    figures.errors = load.errors + extra.errors
    figures.failureWindows = load.failureWindows
    figures.etcdWrites = writes
    figures.lost = lost
    return figures
  }

  func addReloads(_ count: Double) { figures.reloads = count }

  /// Records the LB nodes' writes of their records.
  func record(nodeWrites counts: NodeRecordWrites.Counts) {
    figures.nodeWrites = counts.total
    if counts.total > 0 { note("node records: \(counts.summary)") }
  }

  /// Sets what the table shows for a change made during the fault, and the convergence after the heal.
  func record(changeApplied: [String: Duration?]? = nil, convergence: [String: Duration?]? = nil) {
    if let changeApplied { figures.changeApplied = changeApplied }
    if let convergence { figures.convergence = convergence }
  }

  /// The scenario's name, for the messages of its issues.
  var name: String { figures.name }
}
