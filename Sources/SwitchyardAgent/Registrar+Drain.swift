import EtcdClient
import Logging

extension Registrar {
  // MARK: - Shutdown

  func deregister(lease: Lease?) async {
    guard let lease else {
      setPhase(.stopped)
      return
    }
    // Bounded: a shutdown must finish even when etcd is gone.
    let budget = drainPeriod + .seconds(5)
    let finished = await withTaskGroup(of: Bool.self) { group in
      group.addTask {
        await self.drainAndRevoke(lease: lease)
        return true
      }
      group.addTask {
        try? await Task.sleep(for: budget)
        return false
      }
      let first = await group.next() ?? false
      group.cancelAll()
      return first
    }
    if !finished {
      logger.warning(
        "could not deregister in time; the key expires with its lease", metadata: ["etcd.lease": "\(lease.id)"])
    }
    setPhase(.stopped)
  }

  private func drainAndRevoke(lease: Lease) async {
    if let drainingValue, let value = state.withLock({ $0.value }),
      await markDraining(drainingValue(value), lease: lease)
    {
      logger.info("draining", metadata: ["drain.seconds": "\(drainPeriod)"])
      try? await Task.sleep(for: drainPeriod)
    }
    do {
      try await client.revokeLease(lease.id)
      logger.info("deregistered")
    } catch {
      logger.warning("could not revoke the lease; the key expires with it", metadata: ["error": "\(error)"])
    }
  }

  /// Writes `draining`, the draining form of the value, only while the key is still under `lease`: a key
  /// that another process holds (the same instance id twice) is not this registrar's to touch.
  private func markDraining(_ draining: [UInt8], lease: Lease) async -> Bool {
    do {
      let drained = try await client.txn(
        Txn(
          compare: [.lease(key, .equal, lease.id)],
          success: [.put(key, draining, options: PutOptions(lease: lease.id))]))
      guard drained.succeeded else {
        logger.info("the key is not under this registrar's lease; nothing to drain")
        return false
      }
      setPhase(.draining)
      return true
    } catch {
      logger.warning("could not mark the registration draining", metadata: ["error": "\(error)"])
      return false
    }
  }
}
