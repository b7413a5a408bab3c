import EtcdClient
import SwitchyardTestSupport
import Testing

/// Runs scenarios one after the other on one cluster.
struct ScenarioRunner {
  let cluster: FaultCluster
  let etcd: EtcdClient
  let events: RegistrationEvents

  func run(_ scenario: FaultSuiteTests.Scenario) async throws -> ScenarioFigures {
    let context = ScenarioContext(cluster: cluster, etcd: etcd, events: events, name: scenario.name)
    let started = ContinuousClock.now
    if let setup = scenario.setup {
      do {
        try await setup(context)
      } catch {
        await tearDown(scenario, context)
        throw TestSupportError("\(scenario.name): the setup failed: \(error)")
      }
    }
    let revisionBefore: Int64
    let reloadsBefore: [String: Double]
    let load: SteadyLoad
    let nodeRecords: NodeRecordWrites
    do {
      revisionBefore = try await etcd.get(.key("/")).header.revision
      nodeRecords = NodeRecordWrites(etcd, from: revisionBefore + 1)
      reloadsBefore = try await reloads()
      load = try SteadyLoad.start(cluster)
    } catch {
      await tearDown(scenario, context)
      throw error
    }
    try? await Task.sleep(for: .seconds(1))
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
    let revisionAfter: Int64
    do {
      revisionAfter = try await etcd.get(.key("/")).header.revision
    } catch {
      nodeRecords.stop()
      await tearDown(scenario, context)
      throw error
    }
    let nodeDuration = nodeRecords.duration
    let nodeWrites = await nodeRecords.finish(upTo: revisionAfter, etcd: etcd)
    context.record(nodeWrites: nodeWrites)
    let lost = events.takeDeletions().compactMap { key -> String? in
      let id = String(key.dropFirst("/services/backend/".count))
      return scenario.mayLose.contains(id) || key.hasPrefix("/services/backend/EVIL") ? nil : id
    }
    // A restarted controller counts from 0 again.
    let reloadsAfter = (try? await reloads()) ?? reloadsBefore
    context.addReloads(
      FaultCluster.lbNames.reduce(0) { sum, lb in
        let (before, after) = (reloadsBefore[lb] ?? 0, reloadsAfter[lb] ?? 0)
        return sum + (after >= before ? after - before : after)
      })
    if scenario.setup != nil {
      let (seconds, attoseconds) = started.duration(to: .now).components
      context.note(String(format: "took %.1f s with its setup", Double(seconds) + Double(attoseconds) / 1e18))
    }
    let figures = context.finish(load: report, writes: revisionAfter - revisionBefore, lost: lost)
    let name = scenario.name
    if let bodyError { Issue.record("\(name): \(bodyError)") }
    if let within = scenario.failuresWithin {
      for (lb, window) in figures.failureWindows {
        #expect(
          window <= within, "\(name): \(lb)'s requests failed over \(window) (limit \(within)): \(figures.errors)")
      }
    } else if !scenario.mayFailRequests {
      #expect(figures.totalFailures == 0, "\(name): \(figures.failures) failed requests: \(figures.errors)")
    }
    #expect(lost.isEmpty, "\(name): live registrations lost: \(lost)")
    // The nodes' records have a budget of their own; every other write counts against the scenario's.
    #expect(
      figures.etcdWrites - Int64(figures.nodeWrites) <= FaultSuiteTests.writeBudget + scenario.ownWrites,
      "\(name): \(figures.etcdWrites) etcd writes, \(figures.nodeWrites) of them by the nodes' records")
    let nodeBudget = NodeRecordWrites.budget(duration: nodeDuration, deletes: nodeWrites.deleteCount)
    #expect(
      figures.nodeWrites <= nodeBudget,
      "\(name): \(figures.nodeWrites) writes of the nodes' records (\(nodeWrites.summary)), budget \(nodeBudget)")
    #expect(figures.requests > 0, "\(name): the load sent no request")
    if let limit = scenario.reloadLimit {
      #expect(Int(figures.reloads) <= limit, "\(name): \(Int(figures.reloads)) reloads (at most \(limit))")
    }
    await tearDown(scenario, context)
    if let settleError {
      throw TestSupportError("\(name): the system did not settle after the scenario: \(settleError)")
    }
    return figures
  }

  /// Removes what the scenario's setup put in place; a failure there is recorded, not thrown.
  private func tearDown(_ scenario: FaultSuiteTests.Scenario, _ context: ScenarioContext) async {
    guard let teardown = scenario.teardown else { return }
    do {
      try await teardown(context)
    } catch {
      Issue.record("\(scenario.name): the teardown failed: \(error)")
    }
  }

  private func reloads() async throws -> [String: Double] {
    var counts: [String: Double] = [:]
    for lb in FaultCluster.lbNames {
      counts[lb] = (try? await cluster.metric(lb, "switchyard_haproxy_reloads_total")) ?? 0
    }
    return counts
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
