import EtcdClient
import Logging
import ServiceLifecycle
import Synchronization

/// Keeps one key registered in etcd under a lease for as long as it runs.
///
/// The registrar grants a lease, writes the key with it, and renews the lease (TTL/3). It also
/// watches its own key, so that when the registration disappears by any route — the lease expired
/// during an etcd outage, an operator revoked it, someone deleted or overwrote the key — it notices
/// at once and registers again (with a new lease when the old one is gone) as soon as etcd answers.
/// It never gives up: while etcd is unreachable it retries with backoff, and the service it
/// announces keeps running.
///
/// On graceful shutdown it writes the draining value, waits the drain period so load balancers
/// stop sending new requests, then revokes the lease, which deletes the key.
///
/// The registrar treats values as opaque bytes; the registration model decides what they mean.
public final class Registrar: Service, Sendable {
  /// What the registrar is doing, for logs, tests and status pages.
  public enum Phase: Sendable, Hashable {
    /// Not registered (starting, or etcd unreachable).
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
  private let changes: AsyncStream<Void>
  private let changed: AsyncStream<Void>.Continuation

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
    (changes, changed) = AsyncStream.makeStream(bufferingPolicy: .bufferingNewest(1))
  }

  /// The current phase.
  public var phase: Phase { state.withLock { $0.phase } }

  /// How many times the key has been (re)written since start.
  public var registrationCount: Int { state.withLock { $0.registrations } }

  /// Changes the registered value (`nil` removes the key until a value is set again).
  public func update(value: [UInt8]?) {
    let isNew = state.withLock { state -> Bool in
      guard state.value != value else { return false }
      state.value = value
      return true
    }
    if isNew { changed.yield() }
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

  private enum Interruption: Error {
    /// The value to register changed.
    case valueChanged
    /// Our key was deleted or overwritten by someone else.
    case keyLost
  }

  private func maintain(lease box: LeaseBox) async {
    var attempt = 0
    let backoff = Backoff(initial: .milliseconds(100), maximum: .seconds(2))
    while !Task.isCancelled {
      do {
        if box.current == nil {
          box.current = try await client.grantLease(ttl: ttl)
          logger.debug("lease granted", metadata: ["etcd.lease": "\(box.current!.id)"])
        }
        guard let lease = box.current else { continue }
        let revision = try await write(lease: lease)
        attempt = 0
        try await hold(lease: lease, from: revision)
      } catch Interruption.valueChanged {
        continue
      } catch Interruption.keyLost {
        logger.info("registration disappeared from etcd; registering again")
        if let lease = box.current, let remaining = try? await client.timeToLive(lease: lease.id),
          remaining.ttl <= 0
        {
          box.current = nil
        }
        continue
      } catch let error as EtcdError {
        if Task.isCancelled { return }
        switch error.code {
        case .leaseExpired, .leaseNotFound:
          logger.warning("lease lost; registering again with a new lease", metadata: ["error": "\(error)"])
          box.current = nil
          attempt = 0
          continue
        case .leaseRenewalDeadlinePassed:
          logger.warning("no lease renewal within the TTL; checking the lease", metadata: ["error": "\(error)"])
          box.current = await confirm(lease: box.current)
        default:
          setPhase(.unregistered)
          logger.info("etcd unavailable; retrying", metadata: ["error": "\(error)"])
        }
        try? await Task.sleep(for: backoff.delay(attempt: attempt))
        attempt += 1
      } catch {
        if Task.isCancelled { return }
        logger.warning("registration failed; retrying", metadata: ["error": "\(error)"])
        try? await Task.sleep(for: backoff.delay(attempt: attempt))
        attempt += 1
      }
    }
  }

  /// After a silent period, asks etcd whether the lease survived (etcd renews leases when it
  /// restarts); keeps asking until etcd answers or the task is cancelled.
  private func confirm(lease: Lease?) async -> Lease? {
    guard let lease else { return nil }
    var attempt = 0
    while !Task.isCancelled {
      do {
        let remaining = try await client.timeToLive(lease: lease.id)
        return remaining.ttl > 0 ? lease : nil
      } catch {
        try? await Task.sleep(for: Backoff(maximum: .seconds(1)).delay(attempt: attempt))
        attempt += 1
      }
    }
    return lease
  }

  /// Writes the current value under the lease (or deletes the key when there is none); returns
  /// the revision of the write.
  private func write(lease: Lease) async throws -> Int64 {
    let value = state.withLock { $0.value }
    let revision: Int64
    if let value {
      revision = try await client.put(key, value: value, options: PutOptions(lease: lease.id)).header.revision
      let count = state.withLock { state -> Int in
        state.registrations += 1
        state.phase = .registered(lease: lease.id, revision: revision)
        return state.registrations
      }
      logger.info(
        count == 1 ? "registered" : "registered again",
        metadata: ["etcd.lease": "\(lease.id)", "etcd.revision": "\(revision)"]
      )
    } else {
      revision = try await client.delete(.key(key)).header.revision
      setPhase(.unregistered)
      logger.info("unregistered while unavailable", metadata: ["etcd.revision": "\(revision)"])
    }
    return revision
  }

  /// Renews the lease and watches the key until something needs a rewrite (thrown).
  private func hold(lease: Lease, from revision: Int64) async throws {
    let expected = state.withLock { $0.value }
    try await withThrowingTaskGroup(of: Void.self) { group in
      group.addTask {
        for try await _ in self.client.keepAlive(lease) {}
        throw EtcdError(code: .leaseExpired, message: "keepalive ended", leaseID: lease.id)
      }
      group.addTask {
        let options = WatchOptions(startRevision: revision + 1)
        for try await response in self.client.watch(.key(self.key), options: options) {
          for event in response.events {
            let ours = event.kind == .put && event.kv.value == expected && event.kv.lease == lease.id
            if expected == nil ? event.kind == .put : !ours { throw Interruption.keyLost }
          }
        }
      }
      group.addTask {
        for await _ in self.changes { throw Interruption.valueChanged }
      }
      defer { group.cancelAll() }
      _ = try await group.next()
    }
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
