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
  var errors: [String] = []
  /// Revisions etcd gained during the scenario: every put and delete, the test's own included.
  var etcdWrites: Int64 = 0
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

/// The fault suite: every scenario of issue 10 on a network of separate hosts, under steady load through
/// both LB nodes. `make faults` runs it alone and prints its table.
@Suite(
  "Faults across hosts: etcd, LB and backend failures under load", .serialized,
  .enabled(if: NetworkLab.isAvailable, "needs root and iproute2 to build network namespaces"))
struct FaultSuiteTests {
  /// A change made during a fault must reach every node that can reach etcd within this.
  static let changeDeadline = Duration.seconds(3)
  /// After a heal, every node's server set must equal etcd's registrations within this.
  static let convergenceDeadline = Duration.seconds(2)
  /// Writes a scenario may cost beyond its own changes: a handful of re-registrations, never a storm.
  static let writeBudget: Int64 = 30

  @Test(
    "every scenario: 0 failed requests (except an HAProxy master kill), no live registration lost, LB = etcd within 2 s of healing"
  )
  func scenarios() async throws {
    let cluster = try await FaultCluster.start()
    var table: [ScenarioFigures] = []
    do {
      try await withEtcdClient(configuration: try cluster.clientConfiguration, logger: quietLogger) { etcd in
        let events = RegistrationEvents()
        events.start(etcd)
        defer { events.stop() }
        try await settle(cluster, etcd)
        _ = events.takeDeletions()
        let runner = ScenarioRunner(cluster: cluster, etcd: etcd, events: events)
        // SWITCHYARD_FAULTS=word,word runs only the scenarios whose names contain one of the words.
        let only = ProcessInfo.processInfo.environment["SWITCHYARD_FAULTS"].map { $0.split(separator: ",") } ?? []
        for scenario in Self.all where only.isEmpty || only.contains(where: { scenario.name.contains($0) }) {
          let figures = try await runner.run(scenario)
          table.append(figures)
        }
      }
    } catch {
      print(Self.render(table))
      for name in FaultCluster.lbNames + FaultCluster.backendNames {
        Issue.record("\(name) log:\n\(cluster.logTail(name))")
      }
      await cluster.shutdown()
      throw error
    }
    print(Self.render(table))
    await cluster.shutdown()
  }

  /// One scenario: what it does, and what it may lose.
  struct Scenario: Sendable {
    var name: String
    /// Backends whose registration the scenario removes on purpose (stopped, killed or cut off).
    var mayLose: Set<String> = []
    /// Whether requests may fail (only the HAProxy master kill).
    var mayFailRequests = false
    /// Extra writes the scenario makes itself.
    var ownWrites: Int64 = 0
    var body: @Sendable (ScenarioContext) async throws -> Void
  }

  static let all: [Scenario] = [
    Scenario(name: "etcd leader killed (-9), restarted after 5 s", mayLose: ["x1"]) { context in
      let leader = try await context.cluster.leader(context.etcd)
      context.note("leader \(leader)")
      context.cluster.etcdProcess(leader)?.kill()
      try await Task.sleep(for: .seconds(2))
      try await context.changeDuringFault()
      try await Task.sleep(for: .seconds(3))
      try context.cluster.startEtcd(leader)
      try await context.cluster.waitEtcdHealthy(leader)
      await context.healed()
      try await context.cluster.stopBackend("x1")
    },
    Scenario(name: "etcd member frozen (SIGSTOP) for 25 s", mayLose: ["x1"]) { context in
      let member = "etcd1"
      let leader = try await context.cluster.leader(context.etcd)
      context.note("frozen \(member), leader before: \(leader)")
      context.cluster.etcdProcess(member)?.signal(SIGSTOP)
      context.faultBegins()
      try await Task.sleep(for: .seconds(5))
      try await context.changeDuringFault()
      try await context.holdFault(for: .seconds(25))
      context.cluster.etcdProcess(member)?.signal(SIGCONT)
      await context.healed()
      try await context.cluster.stopBackend("x1")
    },
    Scenario(name: "etcd member cut off from the other two for 15 s", mayLose: ["x1"]) { context in
      let lab = context.cluster.lab
      let member = lab.host("etcd2")
      try await lab.partition(member, lab.host("etcd1"))
      try await lab.partition(member, lab.host("etcd3"))
      context.faultBegins()
      try await Task.sleep(for: .seconds(5))
      try await context.changeDuringFault()
      try await context.holdFault(for: .seconds(15))
      try await lab.heal(member, lab.host("etcd1"))
      try await lab.heal(member, lab.host("etcd3"))
      await context.healed()
      try await context.cluster.stopBackend("x1")
    },
    Scenario(name: "LB host lb1 cut off from etcd for 15 s", mayLose: ["x1"]) { context in
      let lab = context.cluster.lab
      let lb = lab.host("lb1")
      for name in FaultCluster.etcdNames { try await lab.partition(lb, lab.host(name)) }
      context.faultBegins()
      try await Task.sleep(for: .seconds(3))
      // Only lb2 can see the change; lb1 keeps serving what it had.
      try await context.changeDuringFault(nodes: ["lb2"])
      try await context.holdFault(for: .seconds(15))
      for name in FaultCluster.etcdNames { try await lab.heal(lb, lab.host(name)) }
      await context.healed()
      try await context.cluster.stopBackend("x1")
    },
    Scenario(name: "backend host be3 cut off for 15 s", mayLose: ["be3"]) { context in
      let lab = context.cluster.lab
      try await lab.cutOff(lab.host("be3"))
      try await Task.sleep(for: .seconds(15))
      try await lab.reconnect(lab.host("be3"))
      await context.healed()
    },
    Scenario(name: "backend be2 killed (-9), restarted after 2 s", mayLose: ["be2"]) { context in
      context.cluster.backend("be2")?.kill()
      try await Task.sleep(for: .seconds(2))
      try context.cluster.startBackend("be2")
      await context.healed()
    },
    Scenario(name: "controller of lb2 killed (-9), restarted after 3 s", mayLose: ["x1"]) { context in
      context.cluster.controller("lb2")?.kill()
      try await Task.sleep(for: .seconds(1))
      try await context.changeDuringFault(nodes: ["lb1"])
      try await Task.sleep(for: .seconds(2))
      try context.cluster.startController("lb2")
      try await context.cluster.waitReady("lb2")
      await context.healed()
      try await context.cluster.stopBackend("x1")
    },
    Scenario(name: "HAProxy master of lb1 killed (-9)", mayFailRequests: true) { context in
      guard let pid = context.cluster.haproxyPID("lb1") else { throw TestSupportError("lb1 has no HAProxy pid") }
      _ = kill(pid, SIGKILL)
      context.faultBegins()
      try await retrying(timeout: .seconds(20), every: .milliseconds(100)) {
        guard let now = context.cluster.haproxyPID("lb1"), now != pid, StrayProcessGuard.isAlive(now) else {
          throw TestSupportError("lb1's HAProxy was not started again")
        }
        _ = try await context.cluster.servingSet("lb1")
      }
      context.note("HAProxy back after \(context.elapsedSinceFault)")
      await context.healed()
    },
    Scenario(name: "rolling restart of every backend", mayLose: Set(FaultCluster.backendNames)) { context in
      for id in FaultCluster.backendNames {
        try await context.cluster.stopBackend(id)
        try context.cluster.startBackend(id)
        let address = "\(context.cluster.lab.host(id).address):8080"
        let served = await context.cluster.timeUntilServed(id, address: address, timeout: .seconds(20))
        guard served.values.allSatisfy({ $0 != nil }) else {
          throw TestSupportError("\(id) not served again: \(served)")
        }
      }
      await context.healed()
    },
    Scenario(name: "hostile entries (fuzz) next to a valid new one", mayLose: ["x1"], ownWrites: 600) { context in
      try await context.hostileEntries()
      await context.healed()
      try await context.cluster.stopBackend("x1")
    },
  ]

  /// The table `make faults` prints.
  static func render(_ table: [ScenarioFigures]) -> String {
    func seconds(_ duration: Duration??) -> String {
      guard let duration = duration ?? nil else { return "never" }
      let (s, attoseconds) = duration.components
      return String(format: "%.2f s", Double(s) + Double(attoseconds) / 1e18)
    }
    var lines = [
      "",
      "| scenario | requests | failed (lb1/lb2) | etcd writes | lost registrations | change during fault applied (lb1/lb2) | LB = etcd after heal (lb1/lb2) | reloads |",
      "| --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for row in table {
      let change =
        row.changeApplied.isEmpty
        ? "–" : FaultCluster.lbNames.map { row.changeApplied[$0].map { seconds($0) } ?? "–" }.joined(separator: " / ")
      let convergence = FaultCluster.lbNames.map { seconds(row.convergence[$0]) }.joined(separator: " / ")
      lines.append(
        "| \(row.name) | \(row.requests) | \(row.failures["lb1", default: 0]) / \(row.failures["lb2", default: 0]) | "
          + "\(row.etcdWrites) | \(row.lost.isEmpty ? "none" : row.lost.joined(separator: ", ")) | \(change) | "
          + "\(convergence) | \(Int(row.reloads)) |"
      )
    }
    for row in table where !row.notes.isEmpty || !row.errors.isEmpty {
      lines.append("- \(row.name): \((row.notes + row.errors).joined(separator: "; "))")
    }
    return lines.joined(separator: "\n")
  }
}

/// Waits until every always-on backend is registered and both nodes serve exactly etcd's registrations.
func settle(_ cluster: FaultCluster, _ etcd: EtcdClient) async throws {
  try await retrying(timeout: .seconds(40), every: .milliseconds(200)) {
    let registered = try await cluster.registrations(etcd)
    let missing = Set(FaultCluster.backendNames).subtracting(registered.keys)
    guard missing.isEmpty else { throw TestSupportError("not registered again: \(missing.sorted())") }
    for lb in FaultCluster.lbNames {
      let serving = try await cluster.servingSet(lb)
      guard serving == Set(registered.values) else {
        throw TestSupportError("\(lb) serves \(serving.sorted()), etcd has \(registered.values.sorted())")
      }
    }
  }
}

/// What a scenario's body can do and record.
final class ScenarioContext: @unchecked Sendable {
  let cluster: FaultCluster
  let etcd: EtcdClient
  let events: RegistrationEvents
  private(set) var figures: ScenarioFigures
  private var faultStart = ContinuousClock.now

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
    _ = try await etcd.delete(.prefix("/services/backend/EVIL"))
    _ = try await etcd.delete(.prefix("/services/EVIL"))
  }

  private func reloadCount() async throws -> Double {
    var total = 0.0
    for lb in FaultCluster.lbNames { total += try await cluster.metric(lb, "switchyard_haproxy_reloads_total") }
    return total
  }

  func finish(load: (requests: Int, failures: [String: Int], errors: [String]), writes: Int64, lost: [String])
    -> ScenarioFigures
  {
    figures.requests = load.requests
    figures.failures = load.failures
    figures.errors = load.errors
    figures.etcdWrites = writes
    figures.lost = lost
    return figures
  }

  func addReloads(_ count: Double) { figures.reloads = count }
}

/// Runs scenarios one after the other on one cluster.
struct ScenarioRunner {
  let cluster: FaultCluster
  let etcd: EtcdClient
  let events: RegistrationEvents

  func run(_ scenario: FaultSuiteTests.Scenario) async throws -> ScenarioFigures {
    let revisionBefore = try await etcd.get(.key("/")).header.revision
    let reloadsBefore = try await reloads()
    let load = try SteadyLoad.start(cluster)
    try await Task.sleep(for: .seconds(1))
    let context = ScenarioContext(cluster: cluster, etcd: etcd, events: events, name: scenario.name)
    var bodyError: (any Error)?
    do {
      try await scenario.body(context)
    } catch {
      bodyError = error
    }
    var settleError: (any Error)?
    do {
      try await settle(cluster, etcd)
    } catch {
      settleError = error
    }
    try await Task.sleep(for: .seconds(1))
    let report = await load.stop()
    let revisionAfter = try await etcd.get(.key("/")).header.revision
    let lost = events.takeDeletions().compactMap { key -> String? in
      let id = String(key.dropFirst("/services/backend/".count))
      return scenario.mayLose.contains(id) || key.hasPrefix("/services/backend/EVIL") ? nil : id
    }
    // A restarted controller counts from 0 again.
    let reloadsAfter = try await reloads()
    context.addReloads(
      FaultCluster.lbNames.reduce(0) { sum, lb in
        let (before, after) = (reloadsBefore[lb] ?? 0, reloadsAfter[lb] ?? 0)
        return sum + (after >= before ? after - before : after)
      })
    let figures = context.finish(load: report, writes: revisionAfter - revisionBefore, lost: lost)
    let name = scenario.name
    if let bodyError { Issue.record("\(name): \(bodyError)") }
    if !scenario.mayFailRequests {
      #expect(figures.totalFailures == 0, "\(name): \(figures.failures) failed requests: \(figures.errors)")
    }
    #expect(lost.isEmpty, "\(name): live registrations lost: \(lost)")
    #expect(
      figures.etcdWrites <= FaultSuiteTests.writeBudget + scenario.ownWrites,
      "\(name): \(figures.etcdWrites) etcd writes")
    #expect(figures.requests > 0, "\(name): the load sent no request")
    if let settleError {
      throw TestSupportError("\(name): the system did not settle after the scenario: \(settleError)")
    }
    return figures
  }

  private func reloads() async throws -> [String: Double] {
    var counts: [String: Double] = [:]
    for lb in FaultCluster.lbNames {
      counts[lb] = (try? await cluster.metric(lb, "switchyard_haproxy_reloads_total")) ?? 0
    }
    return counts
  }
}

/// Entries a careless or hostile writer might put under `/services/`: every one is invalid, and every key
/// or value carries `EVIL` (or `evil`) so that a line taken from it would show in the config.
enum HostileEntries {
  static func generate(count: Int) -> [(key: String, value: [UInt8])] {
    var entries: [(String, [UInt8])] = []
    let good = #"{"address":"10.0.0.9","port":8080,"state":"up","weight":100}"#
    let templates: [String] = [
      #"EVIL not json"#,
      #"{"address":"EVIL host","port":8080}"#,
      #"{"address":"10.0.0.1","port":0,"evil":1}"#,
      #"{"address":"10.0.0.1","port":70000,"evil":1}"#,
      #"{"address":"10.0.0.1","port":-1,"evil":1}"#,
      #"{"address":"10.0.0.1","port":"80","evil":1}"#,
      #"{"address":"10.0.0.1\n  server evil 10.0.0.2:80","port":80}"#,
      #"{"address":"10.0.0.1 check evil","port":80}"#,
      #"{"address":"10.0.0.1","port":80,"check":{"path":"/ HTTP/1.0\r\nX-Evil: 1"}}"#,
      #"{"address":"10.0.0.1","port":80,"check":{"path":"/evil\n  http-request deny"}}"#,
      #"{"address":"10.0.0.1","port":80,"weight":9999,"evil":1}"#,
      #"{"address":"10.0.0.1","port":80,"state":"evil"}"#,
      #"{"address":"0.0.0.0","port":80,"evil":1}"#,
      #"{"address":"10.0.0.1","port":80,"meta":{"evil\nkey":"x"}}"#,
      #"{"address":"10.0.0.1","port":80,"evil":"#,
      #"["evil"]"#,
      #"null"#,
    ]
    let badKeys = [
      "/services/backend/EVIL with spaces", "/services/backend/EVIL\nserver x 1.2.3.4:80",
      "/services/backend/EVIL\"quote", "/services/backend/EVIL'quote", "/services/backend/EVIL/extra/segment",
      "/services/backend/EVIL#comment", "/services/EVIL svc/a", "/services/EVIL\nsvc/a", "/services/EVIL",
    ]
    for index in 0..<count {
      switch index % 4 {
      case 0:
        // Random bytes, control characters and invalid UTF-8 included.
        let bytes = Array("EVIL".utf8) + (0..<Int.random(in: 1...200)).map { _ in UInt8.random(in: 0...255) }
        entries.append(("/services/backend/EVIL\(index)", bytes))
      case 1:
        entries.append(("/services/backend/EVIL\(index)", Array(templates[index % templates.count].utf8)))
      case 2:
        // A valid value under a key that is not a valid instance id.
        let key = badKeys[index % badKeys.count] + "\(index)"
        entries.append((key, Array(good.utf8)))
      default:
        // A valid value with one field made bad by a random printable character.
        var value = Array(good.utf8)
        let position = Int.random(in: 0..<value.count)
        value.insert(UInt8.random(in: 0x20...0x7E), at: position)
        if (try? Registration.parse(value)) != nil { value = Array("EVIL\(index)".utf8) }
        entries.append(("/services/backend/EVIL\(index)", value))
      }
    }
    // Huge values: three of 1.5 MB, as in the issue.
    for index in 0..<3 {
      let huge = #"{"address":"10.0.0.1","port":80,"evil":""# + String(repeating: "A", count: 1_500_000) + #""}"#
      entries.append(("/services/backend/EVILhuge\(index)", Array(huge.utf8)))
    }
    return entries
  }
}
