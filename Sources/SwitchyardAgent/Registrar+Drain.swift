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
    if let value = state.withLock({ $0.value }) {
      do {
        try await client.put(key, value: drainingValue(value), options: PutOptions(lease: lease.id))
        setPhase(.draining)
        logger.info("draining", metadata: ["drain.seconds": "\(drainPeriod)"])
        try await Task.sleep(for: drainPeriod)
      } catch {
        logger.warning("could not mark the registration draining", metadata: ["error": "\(error)"])
      }
    }
    do {
      try await client.revokeLease(lease.id)
      logger.info("deregistered")
    } catch {
      logger.warning("could not revoke the lease; the key expires with it", metadata: ["error": "\(error)"])
    }
  }
}
