import Logging
import SwitchyardReconcile

/// Keeps `/state` and the server metrics current between passes (health checks change servers without
/// any change in etcd), and asks for a full pass when HAProxy drifts from the desired state (see
/// ``Drift``).
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
    var interval = timings.refreshMinimum
    while !Task.isCancelled {
      try? await Task.sleep(for: interval)
      guard let desired = reconciler.lastDesired, supervisor.isRunning else { continue }
      let backends = desired.backends.map(\.name)
      interval = timings.refreshInterval(servers: desired.backends.reduce(0) { $0 + $1.servers.count })
      guard
        let observed = try? await runtime.withRuntimeSession({ try await runtime.observe(backends: backends) })
      else { continue }
      publisher.publish(desired: desired, observed: observed)
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
