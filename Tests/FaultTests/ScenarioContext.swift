import EtcdClient
import Foundation
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
