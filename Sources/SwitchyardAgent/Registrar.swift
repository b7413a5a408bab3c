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
/// One key has one owner. Every write is a transaction on the revision the attempt read, so it never
/// replaces what another process wrote in between. A key held under another lease that etcd keeps
/// alive belongs to another process with the same instance id: the registrar logs that at error level
/// once, writes nothing, and takes the key only when that lease is gone (it watches the key, and reads
/// it again every `conflictRecheck`). The one exception is a value with this registrar's own endpoint:
/// the same instance, restarted before its old lease expired, takes its key back at once.
///
/// Worst case, with the key lost or etcd failing over and over: at most
/// ``RegistrationPacing/maximumAttemptsPerMinute`` (41) attempts in any minute, each with at most
/// one put (or delete) of the key and at most one lease grant: 41 key writes and 82 etcd writes a
/// minute, keepalives aside. It never gives up, and the service it announces keeps running.
///
/// On graceful shutdown it writes the draining value, waits the drain period so load balancers
/// stop sending new requests, then revokes the lease, which deletes the key: two writes, once, and
/// the first only if the key is still under its lease. Without a draining value (a key nothing routes
/// to, such as a load-balancer node's announcement) it revokes the lease at once: one write.
///
/// The registrar treats values as opaque bytes; the registration model decides what they mean.
public final class Registrar: Service, Sendable {
  /// What the registrar is doing, for logs, tests and status pages.
  public enum Phase: Sendable, Hashable {
    /// Not registered (starting, etcd unreachable, or the lease in doubt).
    case unregistered
    /// The key is written under `lease` at `revision`.
    case registered(lease: Int64, revision: Int64)
    /// Another live process holds the key under `holderLease` (the same instance id twice): nothing
    /// is written until that lease is gone.
    case conflicted(holderLease: Int64)
    /// Shutting down: the draining value is written, waiting for the drain period.
    case draining
    /// Deregistered after shutdown.
    case stopped
  }

  struct State {
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
  let client: EtcdClient
  let ttl: Int64
  let drainPeriod: Duration
  let drainingValue: (@Sendable ([UInt8]) -> [UInt8])?
  let endpoint: @Sendable ([UInt8]) -> String?
  let conflictRecheck: Duration
  let wording: Wording
  let logger: Logger
  let state: Mutex<State>
  let pacing = Mutex(RegistrationPacing())
  let conflictEpisode = Mutex<ConflictEpisode?>(nil)

  /// Creates a registrar.
  ///
  /// - Parameters:
  ///   - client: A running etcd client.
  ///   - key: The key to own, such as `/services/backend/backend-1`.
  ///   - value: The value to register; `nil` means "not registered right now" (the key is deleted
  ///     but the lease is kept), for example while a health check fails.
  ///   - ttl: Lease TTL in seconds: how long the key outlives this process if it dies.
  ///   - drainPeriod: How long to stay registered as draining before deregistering on shutdown.
  ///   - drainingValue: Turns the current value into its draining form; `nil`: no draining step, the
  ///     lease is revoked at once on shutdown.
  ///   - endpoint: Where a value sends traffic (`10.0.0.5:8080`), or `nil` when unknown. A key held
  ///     under another live lease whose value has this registrar's endpoint is taken over (the same
  ///     instance restarted before its old lease expired); any other is a conflict. Also used in logs.
  ///   - conflictRecheck: During a conflict, how often the key is read again even when no watch
  ///     event says it changed hands.
  ///   - wording: The role and the flag that the registrar's error messages name.
  public init(
    client: EtcdClient,
    key: String,
    value: [UInt8]?,
    ttl: Int64 = 10,
    drainPeriod: Duration = .seconds(2),
    drainingValue: (@Sendable ([UInt8]) -> [UInt8])?,
    endpoint: @escaping @Sendable ([UInt8]) -> String? = { _ in nil },
    conflictRecheck: Duration = .seconds(10),
    wording: Wording = Wording(),
    logger: Logger
  ) {
    self.client = client
    self.key = key
    self.ttl = ttl
    self.drainPeriod = drainPeriod
    self.drainingValue = drainingValue
    self.endpoint = endpoint
    self.conflictRecheck = conflictRecheck
    self.wording = wording
    var logger = logger
    logger[metadataKey: "registration.key"] = "\(key)"
    self.logger = logger
    self.state = Mutex(State(value: value))
  }

  /// What the registrar's error messages tell an operator to check.
  public struct Wording: Sendable, Hashable {
    /// The etcd role that grants write permission on the key, as the messages name it.
    public var role: String
    /// The command-line flag that sets the id in the key, for the advice on an id conflict.
    public var idFlag: String

    /// Wording for a backend's registration: the role `registrar`, the flag `--id`.
    public init(role: String = "the registrar role", idFlag: String = "--id") {
      self.role = role
      self.idFlag = idFlag
    }
  }

  /// What a value says, for logs: its endpoint, else its bytes as text.
  func describe(_ value: [UInt8]) -> String {
    endpoint(value) ?? String(decoding: value.prefix(200), as: UTF8.self)
  }

  /// The current phase.
  public var phase: Phase { state.withLock { $0.phase } }

  /// What the registrar is doing, as the sample backend serves it at `/registration`.
  public struct Status: Sendable, Codable, Hashable {
    /// The key.
    public var key: String
    /// `unregistered`, `registered`, `conflicted`, `draining` or `stopped`.
    public var phase: String
    /// The lease the key is under, while registered.
    public var lease: Int64?
    /// The lease of the other process that holds the key, during a conflict.
    public var holderLease: Int64?
    /// How long the conflict has lasted, in seconds.
    public var conflictSeconds: Int64?
    /// How many times the key has been (re)written since start.
    public var registrations: Int
  }

  /// What the registrar is doing now.
  public var status: Status {
    let (phase, registrations) = state.withLock { ($0.phase, $0.registrations) }
    var status = Status(key: key, phase: "", registrations: registrations)
    switch phase {
    case .unregistered: status.phase = "unregistered"
    case .registered(let lease, _):
      status.phase = "registered"
      status.lease = lease
    case .conflicted(let holder):
      status.phase = "conflicted"
      status.holderLease = holder
      status.conflictSeconds = conflictEpisode.withLock { $0 }.map { $0.since.duration(to: .now).components.seconds }
    case .draining: status.phase = "draining"
    case .stopped: status.phase = "stopped"
    }
    return status
  }

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

  /// The lease the registrar holds: set by the lease loop, read by the shutdown.
  final class LeaseBox: Sendable {
    private let value = Mutex<Lease?>(nil)
    var current: Lease? {
      get { value.withLock { $0 } }
      set { value.withLock { $0 = newValue } }
    }
  }

  /// Runs `body` with a stream that yields once for every change of the value to register after
  /// `version` (at once if there has been one already).
  func withValueChanges<T>(
    since version: Int, _ body: (AsyncStream<Void>) async throws -> T
  ) async throws -> T {
    let (changes, changed) = AsyncStream<Void>.makeStream(bufferingPolicy: .bufferingNewest(1))
    state.withLock { state in
      state.onChange = changed
      if state.version != version { changed.yield() }
    }
    defer {
      state.withLock { $0.onChange = nil }
      changed.finish()
    }
    return try await body(changes)
  }

  func setPhase(_ phase: Phase) {
    state.withLock { $0.phase = phase }
  }
}
