import EtcdClient
import Logging
import ServiceLifecycle
import Synchronization

/// Keeps one key registered in etcd under a lease for as long as it runs.
///
/// The registrar grants a lease, writes the key with it, and then only renews the lease (every
/// TTL/3) while it watches its own key: a registered backend writes nothing but keepalives.
///
/// Whatever disturbs the registration goes through one paced path of attempts (see
/// ``RegistrationPacing``); each attempt reads before it writes, and writes the key at most once:
/// - The keepalive sequence ends (no renewal within the TTL, or etcd reports the lease expired):
///   the registrar first asks etcd whether the lease is still alive (TimeToLive). etcd renews
///   every lease when it restarts, so it often is; then the registrar resumes the keepalives and
///   writes nothing. Only a lease that is gone is replaced by a new one, under which the key is
///   written once.
/// - The key is deleted or overwritten by someone else, or the value to register changes: the key
///   is written again under the same lease.
/// - A TimeToLive, grant, read or write fails: the attempt is repeated.
///
/// Worst case, with the key lost or etcd failing over and over: at most
/// ``RegistrationPacing/maximumAttemptsPerMinute`` (41) attempts in any minute, each with at most
/// one put (or delete) of the key and at most one lease grant: 41 key writes and 82 etcd writes a
/// minute, keepalives aside. It never gives up, and the service it announces keeps running.
///
/// On graceful shutdown it writes the draining value, waits the drain period so load balancers
/// stop sending new requests, then revokes the lease, which deletes the key: two writes, once.
///
/// The registrar treats values as opaque bytes; the registration model decides what they mean.
public final class Registrar: Service, Sendable {
  /// What the registrar is doing, for logs, tests and status pages.
  public enum Phase: Sendable, Hashable {
    /// Not registered (starting, etcd unreachable, or the lease in doubt).
    case unregistered
    /// The key is written under `lease` at `revision`.
    case registered(lease: Int64, revision: Int64)
    /// Shutting down: the draining value is written, waiting for the drain period.
    case draining
    /// Deregistered after shutdown.
    case stopped
  }

  private struct State {
    var value: [UInt8]?
    /// Counts changes of `value`, so that a pass knows whether it wrote the latest one.
    var version = 0
    /// Told about each change of `value`, while a pass watches the key.
    var onChange: AsyncStream<Void>.Continuation?
    var phase: Phase = .unregistered
    var registrations = 0
  }

  /// The etcd key this registrar owns.
  public let key: String
  private let client: EtcdClient
  private let ttl: Int64
  private let drainPeriod: Duration
  private let drainingValue: @Sendable ([UInt8]) -> [UInt8]
  private let logger: Logger
  private let state: Mutex<State>
  private let pacing = Mutex(RegistrationPacing())

  /// Creates a registrar.
  ///
  /// - Parameters:
  ///   - client: A running etcd client.
  ///   - key: The key to own, such as `/services/backend/backend-1`.
  ///   - value: The value to register; `nil` means "not registered right now" (the key is deleted
  ///     but the lease is kept), for example while a health check fails.
  ///   - ttl: Lease TTL in seconds: how long the key outlives this process if it dies.
  ///   - drainPeriod: How long to stay registered as draining before deregistering on shutdown.
  ///   - drainingValue: Turns the current value into its draining form.
  public init(
    client: EtcdClient,
    key: String,
    value: [UInt8]?,
    ttl: Int64 = 10,
    drainPeriod: Duration = .seconds(2),
    drainingValue: @escaping @Sendable ([UInt8]) -> [UInt8],
    logger: Logger
  ) {
    self.client = client
    self.key = key
    self.ttl = ttl
    self.drainPeriod = drainPeriod
    self.drainingValue = drainingValue
    var logger = logger
    logger[metadataKey: "registration.key"] = "\(key)"
    self.logger = logger
    self.state = Mutex(State(value: value))
  }

  /// The current phase.
  public var phase: Phase { state.withLock { $0.phase } }

  /// How many times the key has been (re)written since start.
  public var registrationCount: Int { state.withLock { $0.registrations } }

  /// Changes the registered value (`nil` removes the key until a value is set again).
  ///
  /// The change is written by the next paced attempt; changes in between are coalesced.
  public func update(value: [UInt8]?) {
    state.withLock { state in
      guard state.value != value else { return }
      state.value = value
      state.version += 1
      state.onChange?.yield()
    }
  }

  /// Registers and keeps the registration until graceful shutdown or cancellation, then drains
  /// and deregisters.
  public func run() async throws {
    let lease = LeaseBox()
    await cancelWhenGracefulShutdown {
      await self.maintain(lease: lease)
    }
    await deregister(lease: lease.current)
  }

  // MARK: - Keeping the registration

  private final class LeaseBox: Sendable {
    private let value = Mutex<Lease?>(nil)
    var current: Lease? {
      get { value.withLock { $0 } }
      set { value.withLock { $0 = newValue } }
    }
  }

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
  private func maintain(lease box: LeaseBox) async {
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
      : "the etcd user needs read and write permission on \(key) (the registrar role)"
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
  /// only when it does not already: after a lease scare the key is usually still in place.
  private func sync(lease: Lease) async throws -> Synced {
    let (value, version) = state.withLock { ($0.value, $0.version) }
    let read = try await client.get(.key(key))
    let existing = read.kvs.first
    guard let value else {
      var revision = read.header.revision
      if existing != nil {
        revision = try await client.delete(.key(key)).header.revision
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
    let revision = try await client.put(key, value: value, options: PutOptions(lease: lease.id)).header.revision
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
    let (changes, changed) = AsyncStream<Void>.makeStream(bufferingPolicy: .bufferingNewest(1))
    state.withLock { state in
      state.onChange = changed
      if state.version != synced.version { changed.yield() }
    }
    defer {
      state.withLock { $0.onChange = nil }
      changed.finish()
    }
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

  // MARK: - Shutdown

  private func deregister(lease: Lease?) async {
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

  private func setPhase(_ phase: Phase) {
    state.withLock { $0.phase = phase }
  }
}

/// When the ``Registrar`` may make its next attempt to (re)register: the one place that bounds
/// how often it writes to etcd.
///
/// The first attempt goes at once. Each later one waits `backoff.delay(attempt: retries)` — 100 ms
/// doubling to 2 s, ±20 % jitter — where `retries` counts the waits since the registration last
/// stayed in place for `stablePeriod` (10 s). So a key that is lost again and again (two processes
/// with the same ID, say), a value that flaps, or an etcd that fails every call all settle at one
/// attempt every 1.6 to 2.4 s, and a backend that was registered for a while re-registers after
/// about 100 ms.
///
/// Worst case: ``maximumAttemptsPerMinute`` attempts in any minute (37.5 a minute at the cap);
/// the tests check this number against the policy.
struct RegistrationPacing: Sendable {
  /// At most this many attempts fall into any minute.
  static let maximumAttemptsPerMinute = 41

  /// The delays between attempts.
  let backoff: Backoff
  /// How long a registration must stay in place before the delays start over from the shortest.
  let stablePeriod: Duration
  /// Waits since the delays last started over.
  private(set) var retries = 0
  private var isFirstAttempt = true
  private var registeredSince: ContinuousClock.Instant?

  /// The registrar's policy; ``maximumAttemptsPerMinute`` holds for the defaults only.
  init(
    backoff: Backoff = Backoff(initial: .milliseconds(100), maximum: .seconds(2)),
    stablePeriod: Duration = .seconds(10)
  ) {
    self.backoff = backoff
    self.stablePeriod = stablePeriod
  }

  /// The wait before the next attempt; call ``waited()`` once it is over. A wait that is cut
  /// short (cancelled) is not counted, and the next one is as long.
  mutating func delay(at now: ContinuousClock.Instant, using random: inout some RandomNumberGenerator) -> Duration {
    if let since = registeredSince, since.duration(to: now) >= stablePeriod { retries = 0 }
    registeredSince = nil
    return isFirstAttempt ? .zero : backoff.delay(attempt: retries, using: &random)
  }

  /// The wait before an attempt is over; the attempt starts.
  mutating func waited() {
    if isFirstAttempt {
      isFirstAttempt = false
    } else {
      retries += 1
    }
  }

  /// An attempt registered the key (or found it in place) at `now`.
  mutating func registered(at now: ContinuousClock.Instant) {
    registeredSince = now
  }
}

/// Runs an ``EtcdClient`` as a service: it stops when the service group shuts down, after the
/// services listed after it (which may still need etcd to deregister).
public struct EtcdClientService: Service {
  /// The client.
  public let client: EtcdClient

  /// Wraps a client.
  public init(client: EtcdClient) {
    self.client = client
  }

  /// Runs the client's connections until graceful shutdown.
  public func run() async throws {
    try await withGracefulShutdownHandler {
      try await client.run()
    } onGracefulShutdown: {
      client.shutdown()
    }
  }
}
