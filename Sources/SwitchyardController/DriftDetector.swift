import Logging
import SwitchyardReconcile

/// Keeps `/state` and the server metrics current between passes (health checks change servers without
/// any change in etcd), and asks for a full pass when HAProxy drifts from the desired state (see
/// ``Drift``) or from what the controller believes it runs (``RuntimeBelief``, which passes for a few
/// instances of a large backend plan against).
struct DriftDetector: Sendable {
  let reconciler: Reconciler
  let runtime: RuntimeClient
  let supervisor: HAProxySupervisor
  let publisher: StatusPublisher
  let queue: PassQueue
  let timings: LoopTimings
  let logger: Logger

  /// Reads HAProxy's server states every ``LoopTimings/refreshInterval(servers:)`` until cancelled.
  func refreshLoop() async {
    var differedBefore = false
    var beliefDifferedBefore = false
    var interval = timings.refreshMinimum
    while !Task.isCancelled {
      try? await Task.sleep(for: interval)
      guard let desired = reconciler.lastDesired, supervisor.isRunning else { continue }
      let backends = desired.backends.map(\.name)
      interval = timings.refreshInterval(servers: desired.backends.reduce(0) { $0 + $1.servers.count })
      let generation = reconciler.beliefGeneration
      guard
        let observed = try? await runtime.withRuntimeSession({ try await runtime.observe(backends: backends) })
      else { continue }
      publisher.publish(desired: desired, observed: observed)
      // Compared only when no pass changed the belief meanwhile; seen twice in a row, as servers are below.
      let unbelieved = reconciler.beliefGeneration == generation ? reconciler.beliefDifferences(from: observed) : []
      defer { beliefDifferedBefore = !unbelieved.isEmpty }
      if !unbelieved.isEmpty && beliefDifferedBefore {
        logger.warning(
          "HAProxy runs servers otherwise than the controller believes; comparing everything",
          metadata: ["servers": "\(unbelieved.prefix(20).joined(separator: ","))", "count": "\(unbelieved.count)"])
        queue.requestFullPass()
      }
      let drift = Drift(desired: desired, observed: observed)
      defer { differedBefore = drift.serversDiffer }
      guard drift.needsRepair(differedBefore: differedBefore) else { continue }
      if !drift.missing.isEmpty {
        logger.warning(
          "HAProxy lacks servers the controller applied; repairing",
          metadata: ["servers": "\(drift.missing.joined(separator: ","))"]
        )
      }
      queue.requestFullPass()
    }
  }
}
