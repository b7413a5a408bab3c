import EtcdClient
import Foundation
import Logging
import ServiceLifecycle
import SwitchyardAgent
import SwitchyardModel
import Synchronization

/// Announces this load-balancer node in etcd: its ``NodeRecord`` under `/switchyard/nodes/<node-id>`, held
/// by a lease of ``NodeRecord/ttl`` (10 s) that is kept alive, so that a node that dies disappears within the
/// TTL and a node stopped gracefully disappears at once (the lease is revoked).
///
/// The lease, the keep-alives, re-registration after a lost lease, the conflict of two processes with one
/// node id and the pacing of attempts are the ``Registrar``'s, as for a backend; this type decides what the
/// record says and when it changes:
/// - it first waits for the controller's first pass (at most ``initialWait``), so that the first write
///   carries the applied revision and the HAProxy version: a grant and one put at start;
/// - a new HAProxy version is written at once;
/// - a new applied revision at most once every ``AnnouncementSchedule/revisionInterval`` (5 s), and only
///   when a change to the keys the node serves from moved it. Writes elsewhere in etcd, the node records
///   among them, move etcd's revision too; they do not count, or every node's write would cause the next
///   one of every other node.
///
/// At rest it writes nothing: the keep-alives go on.
public final class NodeAnnouncer: Service, Sendable {
  /// What a node says about itself that does not change while its controller runs.
  public struct Identity: Sendable, Hashable {
    /// The node id (`--node-id`).
    public var node: InstanceID
    /// Where HAProxy accepts client traffic.
    public var listen: HostPort
    /// Where HAProxy serves its stats page.
    public var stats: HostPort
    /// Where others reach the controller's admin endpoints (`--admin-url`).
    public var adminURL: String
    /// When the controller started, in seconds since 1970.
    public var started: Int64

    /// Creates an identity; `adminURL` is checked as ``NodeRecord`` checks it.
    public init(node: InstanceID, listen: HostPort, stats: HostPort, adminURL: String, started: Int64)
      throws(RegistrationError)
    {
      // The same checks as the record's, so that a bad URL is refused at start, not at the first write.
      _ = try NodeRecord(
        node: node, listen: listen, stats: stats, adminURL: adminURL, switchyardVersion: SwitchyardVersion.current,
        started: started)
      self.node = node
      self.listen = listen
      self.stats = stats
      self.adminURL = adminURL
      self.started = started
    }
  }

  /// How long the first write waits for the controller's first pass before it goes without it.
  public static let initialWait: Duration = .seconds(10)

  /// The node's key.
  public var key: String { NodeRecord.key(of: identity.node) }

  let client: EtcdClient
  let identity: Identity
  let status: ControllerStatus
  let logger: Logger
  let pollInterval: Duration

  /// Creates an announcer for the node `identity` describes, reading the figures it announces from `status`.
  /// Nothing happens until `run()`.
  public init(
    client: EtcdClient, identity: Identity, status: ControllerStatus, pollInterval: Duration = .milliseconds(500),
    logger: Logger
  ) {
    self.client = client
    self.identity = identity
    self.status = status
    self.pollInterval = pollInterval
    self.logger = logger
  }

  /// Announces the node until graceful shutdown, then revokes its lease (which deletes the key).
  public func run() async throws {
    guard let first = await firstFigures() else { return }
    let registrar = Registrar(
      client: client,
      key: key,
      value: record(first),
      ttl: NodeRecord.ttl,
      drainPeriod: .zero,
      drainingValue: nil,
      endpoint: { [key] bytes in
        // The same node restarted within its old lease's TTL says the same; it takes its key back at once.
        (try? NodeRecord.parse(key: Array(key.utf8), value: bytes)).map { "admin \($0.adminURL), listen \($0.listen)" }
      },
      wording: Registrar.Wording(
        role: "a role with readwrite on exactly this key: node-\(identity.node) in `switchyard up --secure`",
        idFlag: "--node-id"),
      logger: logger
    )
    let started = ContinuousClock.now
    try await withThrowingDiscardingTaskGroup { group in
      group.addTask {
        var schedule = AnnouncementSchedule(announced: first, at: started)
        while !Task.isCancelled {
          try? await Task.sleep(for: self.pollInterval)
          if case .announce = schedule.decide(self.figures(), now: .now) {
            registrar.update(value: self.record(schedule.announced))
          }
        }
      }
      try await registrar.run()
      group.cancelAll()
    }
  }

  /// The figures to announce first: once the first pass is applied, or after ``initialWait``; `nil` when the
  /// service shuts down before.
  private func firstFigures() async -> AnnouncementSchedule.Figures? {
    let deadline = ContinuousClock.now + Self.initialWait
    await cancelWhenGracefulShutdown {
      while !Task.isCancelled, ContinuousClock.now < deadline {
        if self.status.state.withLock({ $0.initialPassDone }) { return }
        try? await Task.sleep(for: .milliseconds(100))
      }
    }
    if Task.isCancelled || Task.isShuttingDownGracefully { return nil }
    return figures()
  }

  private func figures() -> AnnouncementSchedule.Figures {
    status.state.withLock {
      AnnouncementSchedule.Figures(
        appliedRevision: $0.appliedRevision, newestChange: $0.newestChangeApplied, haproxyVersion: $0.haproxyVersion)
    }
  }

  private let refusedVersion = Mutex<String?>(nil)

  /// The value for `figures`; an HAProxy version the record cannot hold is left out (and logged once).
  private func record(_ figures: AnnouncementSchedule.Figures) -> [UInt8] {
    func make(haproxyVersion: String?) throws(RegistrationError) -> NodeRecord {
      try NodeRecord(
        node: identity.node, listen: identity.listen, stats: identity.stats, adminURL: identity.adminURL,
        switchyardVersion: SwitchyardVersion.current, haproxyVersion: haproxyVersion,
        appliedRevision: max(0, figures.appliedRevision), started: identity.started)
    }
    do {
      return try make(haproxyVersion: figures.haproxyVersion).encoded()
    } catch {
      let first = refusedVersion.withLock { refused in
        defer { refused = figures.haproxyVersion }
        return refused != figures.haproxyVersion
      }
      if first {
        logger.warning(
          "The HAProxy version cannot go into the node's record; announcing the node without it",
          metadata: ["error": "\(error)"])
      }
      // The identity was checked at start and the revision is not negative: this cannot fail.
      return (try? make(haproxyVersion: nil).encoded()) ?? []
    }
  }
}

/// When a node's announcement changes: the decision of ``NodeAnnouncer``, apart so that it can be tested
/// without etcd.
///
/// A new HAProxy version is announced at once. A new applied revision is announced when a change to the
/// served keys moved it (``Figures/newestChange``), at most once every ``revisionInterval``; one that comes
/// sooner waits until then, and whatever is current then goes out in one write.
public struct AnnouncementSchedule: Sendable {
  /// What a node's record says that changes while its controller runs.
  public struct Figures: Sendable, Hashable {
    /// The etcd revision HAProxy was last brought in step with.
    public var appliedRevision: Int64
    /// The newest change to the served keys that HAProxy has been brought in step with.
    public var newestChange: Int64
    /// The HAProxy version, once known.
    public var haproxyVersion: String?

    /// Creates figures.
    public init(appliedRevision: Int64, newestChange: Int64, haproxyVersion: String?) {
      self.appliedRevision = appliedRevision
      self.newestChange = newestChange
      self.haproxyVersion = haproxyVersion
    }
  }

  /// What to do now.
  public enum Decision: Sendable, Hashable {
    /// Write ``AnnouncementSchedule/announced``, which now holds the current figures.
    case announce
    /// A new revision waits until this instant.
    case wait(until: ContinuousClock.Instant)
    /// Nothing to write.
    case nothing
  }

  /// The shortest time between two writes of a new applied revision.
  public let revisionInterval: Duration
  /// The figures last announced.
  public private(set) var announced: Figures
  private var lastRevisionWrite: ContinuousClock.Instant

  /// A schedule whose record says `announced`, written at `instant`.
  public init(announced: Figures, at instant: ContinuousClock.Instant, revisionInterval: Duration = .seconds(5)) {
    self.announced = announced
    self.lastRevisionWrite = instant
    self.revisionInterval = revisionInterval
  }

  /// Whether `current` is to be announced at `now`.
  public mutating func decide(_ current: Figures, now: ContinuousClock.Instant) -> Decision {
    let newRevision = current.newestChange > announced.newestChange
    if current.haproxyVersion != announced.haproxyVersion {
      if newRevision { lastRevisionWrite = now }
      announced = current
      return .announce
    }
    guard newRevision else { return .nothing }
    let due = lastRevisionWrite + revisionInterval
    guard now >= due else { return .wait(until: due) }
    lastRevisionWrite = now
    announced = current
    return .announce
  }
}
