import EtcdClient
import Logging

extension Registrar {
  // MARK: - One owner per key

  /// The key is held under another lease that etcd still keeps alive: a second process registers
  /// the same instance id. The registrar does not write until that lease is gone.
  struct OwnershipConflict: Error, CustomStringConvertible {
    /// The lease the key is attached to.
    var holderLease: Int64
    /// The value the other process registered.
    var holderValue: [UInt8]
    /// The revision of the read that found it, to watch from.
    var revision: Int64

    var description: String { "the key is held under another live lease (\(String(holderLease, radix: 16)))" }
  }

  /// An ownership conflict in progress, for its one log line at the start and the one at the end.
  struct ConflictEpisode: Sendable {
    var holderLease: Int64
    var since: ContinuousClock.Instant
    var checks = 1
  }

  /// What `existing` means for a registrar that holds `lease` and wants to register `value`: throws
  /// ``OwnershipConflict`` when another live lease holds the key and the value is not this
  /// instance's own from an earlier run (the same endpoint: a restart after a crash, whose lease has
  /// not expired yet), which the registrar may take over.
  func checkOwnership(of existing: KeyValue?, lease: Lease, value: [UInt8]?, readRevision: Int64) async throws {
    guard let existing, existing.lease != 0, existing.lease != lease.id else { return }
    if let value, let ours = endpoint(value), ours == endpoint(existing.value) {
      logger.info(
        "taking the key over from an earlier run of this instance (same endpoint \(ours))",
        metadata: ["etcd.lease": "\(lease.id)", "registration.previous_lease": "\(existing.lease)"])
      return
    }
    let alive: Bool
    do {
      alive = try await client.timeToLive(lease: existing.lease).ttl > 0
    } catch let error as EtcdError where error.code == .leaseNotFound {
      alive = false
    }
    guard alive else { return }
    throw OwnershipConflict(holderLease: existing.lease, holderValue: existing.value, revision: readRevision)
  }

  /// The transaction guard of a write after a read that found `existing`: the key is still as read,
  /// so a write never replaces what another process wrote in between.
  func unchanged(since existing: KeyValue?) -> Compare {
    guard let existing else { return .createRevision(key, .equal, 0) }
    return .modRevision(key, .equal, existing.modRevision)
  }

  /// Reports a conflict: at error level once when it starts (or the holder changes), at debug on
  /// every later check.
  func report(_ conflict: OwnershipConflict, lease: Lease) {
    let started = conflictEpisode.withLock { episode -> Bool in
      if var current = episode, current.holderLease == conflict.holderLease {
        current.checks += 1
        episode = current
        return false
      }
      episode = ConflictEpisode(holderLease: conflict.holderLease, since: .now)
      return true
    }
    setPhase(.conflicted(holderLease: conflict.holderLease))
    let metadata: Logger.Metadata = [
      "etcd.lease": "\(lease.id)", "registration.holder_lease": "\(conflict.holderLease)",
    ]
    guard started else {
      logger.debug("the key is still held by the other process; not writing", metadata: metadata)
      return
    }
    let ours = state.withLock { $0.value }.map(describe) ?? "nothing (unregistered)"
    logger.error(
      """
      instance id conflict: \(key) is held by another live process (\(describe(conflict.holderValue)), lease \
      \(String(conflict.holderLease, radix: 16))); this one (\(ours), lease \(String(lease.id, radix: 16))) \
      does not write and takes the key only when that lease is gone. Give one of them another \(wording.idFlag).
      """,
      metadata: metadata)
  }

  /// Ends a conflict episode, if one was in progress, with one line: how long it lasted.
  func endConflictEpisode() {
    guard
      let episode = conflictEpisode.withLock({ episode in
        defer { episode = nil }
        return episode
      })
    else {
      return
    }
    let lasted = episode.since.duration(to: .now)
    logger.notice(
      "instance id conflict over: the other process's lease is gone; this one holds \(key) now",
      metadata: [
        "registration.conflict_seconds": "\(lasted.components.seconds)",
        "registration.conflict_checks": "\(episode.checks)",
      ])
  }

  /// Waits, writing nothing, until the key may be free: it is deleted or changes hands, the value to
  /// register changes, or ``conflictRecheck`` passes.
  func awaitRelease(of conflict: OwnershipConflict) async throws {
    let version = state.withLock { $0.version }
    try await withValueChanges(since: version) { changes in
      try await withThrowingTaskGroup(of: Void.self) { group in
        group.addTask {
          let options = WatchOptions(startRevision: conflict.revision + 1)
          for try await response in self.client.watch(.key(self.key), options: options) {
            if response.events.contains(where: { $0.kind == .delete || $0.kv.lease != conflict.holderLease }) {
              return
            }
          }
        }
        group.addTask { try await Task.sleep(for: self.conflictRecheck) }
        group.addTask { for await _ in changes { return } }
        defer { group.cancelAll() }
        try await group.next()
      }
    }
  }
}
