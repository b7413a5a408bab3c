import EtcdClient
import Logging
import Synchronization

extension Registrar {
  // MARK: - Keeping the registration

  /// Why a pass ended: each one leads to another, paced attempt.
  private enum Interruption: Error, CustomStringConvertible {
    /// The value to register changed.
    case valueChanged
    /// Our key was deleted or overwritten by someone else.
    case keyLost
    /// The watch of our key ended without an error.
    case watchEnded
    /// The keepalive sequence ended without an error.
    case keepAliveEnded

    var description: String {
      switch self {
      case .valueChanged: "the value to register changed"
      case .keyLost: "the key was deleted or overwritten"
      case .watchEnded: "the watch of the key ended"
      case .keepAliveEnded: "the lease keepalive ended"
      }
    }
  }

  /// The lease loop: finds a live lease (the one held, if etcd still has it; else a new one) and
  /// keeps it alive while ``keepKey(lease:)`` keeps the key registered under it.
  ///
  /// Writes: at most one lease grant per iteration, and every iteration but the first is a paced
  /// attempt (``RegistrationPacing``), so at most 41 grants in any minute; a lease that TimeToLive
  /// finds alive is kept without any write. Its passes of ``keepKey(lease:)`` share that budget.
  func maintain(lease box: LeaseBox) async {
    while !Task.isCancelled {
      do {
        try await pace()
        let lease = try await liveLease(box)
        try await withThrowingTaskGroup(of: Never.self) { group in
          group.addTask {
            for try await _ in self.client.keepAlive(lease) {}
            throw Interruption.keepAliveEnded
          }
          group.addTask { try await self.keepKey(lease: lease) }
          defer { group.cancelAll() }
          _ = try await group.next()
        }
      } catch {
        if Task.isCancelled { return }
        setPhase(.unregistered)
        logLeaseTrouble(error)
      }
    }
  }

  private func logLeaseTrouble(_ error: any Error) {
    let metadata: Logger.Metadata = ["error": "\(error)"]
    guard let error = error as? EtcdError else {
      logger.warning("registration interrupted; retrying", metadata: metadata)
      return
    }
    switch error.code {
    case .authenticationFailed, .permissionDenied:
      logRefusal(error)
    case .leaseRenewalDeadlinePassed:
      logger.warning("no lease renewal within the TTL; checking the lease before writing", metadata: metadata)
    case .leaseExpired, .leaseNotFound:
      logger.warning("lease lost; registering again with a new lease", metadata: metadata)
    default:
      logger.info("etcd unavailable; retrying", metadata: metadata)
    }
  }

  /// etcd refused the credentials or the permission: no retry fixes that until an operator does (a new
  /// password file, a role granted), so it is an error, and the retries go on at the usual pace.
  private func logRefusal(_ error: EtcdError) {
    let fix =
      error.code == .authenticationFailed
      ? "check --user and --password-file (or $SWITCHYARD_ETCD_USER and $SWITCHYARD_ETCD_PASSWORD)"
      : "the etcd user needs read and write permission on \(key) (\(wording.role))"
    logger.error(
      "etcd refused the registration: \(fix); retrying",
      metadata: ["error": "\(error)", "registration.key": "\(key)"]
    )
  }

  /// The lease to register under: the one held when etcd still has it (it renews every lease when
  /// it restarts), else a newly granted one.
  private func liveLease(_ box: LeaseBox) async throws -> Lease {
    if let lease = box.current {
      let alive: Bool
      do {
        alive = try await client.timeToLive(lease: lease.id).ttl > 0
      } catch let error as EtcdError where error.code == .leaseNotFound {
        alive = false
      }
      if alive {
        logger.debug("lease still alive; resuming keepalives", metadata: ["etcd.lease": "\(lease.id)"])
        return lease
      }
      logger.info("lease gone; granting a new one", metadata: ["etcd.lease": "\(lease.id)"])
      box.current = nil
    }
    let lease = try await client.grantLease(ttl: ttl)
    box.current = lease
    logger.debug("lease granted", metadata: ["etcd.lease": "\(lease.id)", "etcd.ttl": "\(lease.ttl)"])
    return lease
  }

  /// The key loop, run while the lease is kept alive: makes the key hold the current value under
  /// the lease, then watches it until that no longer holds. Ends only by throwing: with the lease
  /// gone, or when cancelled.
  ///
  /// Writes: at most one put or delete per pass, and every pass but the first is a paced attempt
  /// (``RegistrationPacing``), so at most 41 in any minute, together with the lease loop's
  /// attempts; a pass that finds the key in place writes nothing. While it watches, nothing is
  /// written at all: only the keepalives run.
  private func keepKey(lease: Lease) async throws -> Never {
    var first = true
    while true {
      if !first { try await pace() }
      first = false
      do {
        let synced = try await sync(lease: lease)
        pacing.withLock { $0.registered(at: .now) }
        try await watch(lease: lease, from: synced)
      } catch let conflict as OwnershipConflict {
        report(conflict, lease: lease)
        do {
          try await awaitRelease(of: conflict)
        } catch {
          try Task.checkCancellation()
          logger.info("watching the held key failed; reading it again", metadata: ["error": "\(error)"])
        }
      } catch {
        try Task.checkCancellation()
        if let interruption = error as? Interruption {
          logger.info("checking the registration again", metadata: ["reason": "\(interruption)"])
          continue
        }
        if let error = error as? EtcdError, error.code == .leaseNotFound { throw error }
        setPhase(.unregistered)
        if let error = error as? EtcdError, error.code == .authenticationFailed || error.code == .permissionDenied {
          logRefusal(error)
        } else {
          logger.info("registration failed; retrying", metadata: ["error": "\(error)"])
        }
      }
    }
  }

  /// What a pass registered: the value, its version, and the revision to watch from.
  private struct Synced {
    var value: [UInt8]?
    var version: Int
    var revision: Int64
  }

  /// Makes the key hold the current value under `lease` (or be absent when there is none), writing
  /// only when it does not already: after a lease scare the key is usually still in place. Throws
  /// ``OwnershipConflict`` when another live process holds the key, and ``Interruption/keyLost``
  /// when the key changed between the read and the write.
  private func sync(lease: Lease) async throws -> Synced {
    let (value, version) = state.withLock { ($0.value, $0.version) }
    let read = try await client.get(.key(key))
    let existing = read.kvs.first
    try await checkOwnership(of: existing, lease: lease, value: value, readRevision: read.header.revision)
    endConflictEpisode()
    guard let value else {
      var revision = read.header.revision
      if existing != nil {
        let deleted = try await client.txn(
          Txn(compare: [unchanged(since: existing)], success: [.delete(.key(key))]))
        guard deleted.succeeded else { throw Interruption.keyLost }
        revision = deleted.header.revision
        logger.info("unregistered while unavailable", metadata: ["etcd.revision": "\(revision)"])
      }
      setPhase(.unregistered)
      return Synced(value: nil, version: version, revision: revision)
    }
    if let existing, existing.value == value, existing.lease == lease.id {
      setPhase(.registered(lease: lease.id, revision: existing.modRevision))
      logger.info(
        "registration still in place; nothing written",
        metadata: ["etcd.lease": "\(lease.id)", "etcd.revision": "\(existing.modRevision)"]
      )
      return Synced(value: value, version: version, revision: read.header.revision)
    }
    let written = try await client.txn(
      Txn(
        compare: [unchanged(since: existing)],
        success: [.put(key, value, options: PutOptions(lease: lease.id))]))
    guard written.succeeded else { throw Interruption.keyLost }
    let revision = written.header.revision
    let count = state.withLock { state -> Int in
      state.registrations += 1
      state.phase = .registered(lease: lease.id, revision: revision)
      return state.registrations
    }
    logger.info(
      count == 1 ? "registered" : "registered again",
      metadata: ["etcd.lease": "\(lease.id)", "etcd.revision": "\(revision)"]
    )
    return Synced(value: value, version: version, revision: revision)
  }

  /// Watches the key from just after `synced` until the registration needs another pass; ends
  /// only by throwing (an ``Interruption``, or the watch's error).
  private func watch(lease: Lease, from synced: Synced) async throws {
    try await withValueChanges(since: synced.version) { changes in
      try await watch(lease: lease, from: synced, changes: changes)
    }
  }

  private func watch(lease: Lease, from synced: Synced, changes: AsyncStream<Void>) async throws {
    try await withThrowingTaskGroup(of: Never.self) { group in
      group.addTask {
        let options = WatchOptions(startRevision: synced.revision + 1)
        for try await response in self.client.watch(.key(self.key), options: options) {
          for event in response.events {
            let ours = event.kind == .put && event.kv.value == synced.value && event.kv.lease == lease.id
            if synced.value == nil ? event.kind == .put : !ours { throw Interruption.keyLost }
          }
        }
        throw Interruption.watchEnded
      }
      group.addTask {
        for await _ in changes { throw Interruption.valueChanged }
        throw CancellationError()
      }
      defer { group.cancelAll() }
      _ = try await group.next()
    }
  }

  /// Waits before an attempt as ``RegistrationPacing`` says.
  private func pace() async throws {
    let delay = pacing.withLock { pacing in
      var random = SystemRandomNumberGenerator()
      return pacing.delay(at: .now, using: &random)
    }
    if delay > .zero {
      logger.debug("waiting before the next attempt", metadata: ["registration.delay": "\(delay)"])
      try await Task.sleep(for: delay)
    }
    pacing.withLock { $0.waited() }
  }
}
