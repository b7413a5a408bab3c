import Foundation
import SwitchyardModel
import Synchronization

/// What a controller knows about itself, for `/readyz` and `/state`. Updated by the controller, read by the
/// admin server.
public final class ControllerStatus: Sendable {
  /// One server as HAProxy runs it.
  public typealias Server = NodeSnapshot.Server
  /// One service and its servers.
  public typealias Service = NodeSnapshot.Service
  /// An entry skipped as invalid.
  public typealias InvalidEntry = NodeSnapshot.InvalidEntry
  /// Everything `/state` shows; shared with `switchyard status`, which decodes it.
  public typealias Snapshot = NodeSnapshot

  struct State {
    var appliedRevision: Int64 = 0
    /// The newest change to the keys the node serves from that HAProxy has been brought in step with; writes
    /// elsewhere in etcd (node announcements among them) never move it.
    var newestChangeApplied: Int64 = 0
    var initialPassDone = false
    var haproxyPID: Int32?
    var haproxyRunning = false
    var haproxyAdopted = false
    var haproxyVersion: String?
    var etcdConnected = false
    /// Why the last read of etcd failed, while it fails.
    var etcdError: String?
    var watchEndpoint: String?
    var lastWatchWord: ContinuousClock.Instant?
    var reloads = 0
    var lastReloadReason: String?
    var lastReloadAt: Int64?
    var restarts = 0
    var lastError: String?
    var services: [Service] = []
    var invalidEntries: [InvalidEntry] = []
    var invalidEntryCount = 0
    var overrides: [NodeSnapshot.Override] = []
    var routes: [NodeSnapshot.Route] = []
    var routeCount = 0
    var routeProblems: [String] = []
    var certificates: [NodeSnapshot.Certificate]?
    var acme: NodeSnapshot.ACME?
    /// Where ``acme`` comes from when ACME is on: the coordinator's report, read at each snapshot.
    var acmeReport: (@Sendable () -> NodeSnapshot.ACME)?
  }

  private let node: String
  private let watchStaleAfter: Duration
  let state = Mutex(State())
  /// The revisions the watch delivered and when HAProxy had each (`/state/changes`, the dashboard).
  public let recentChanges = RecentChanges()

  /// Creates the status of node `node`.
  public init(node: String, watchStaleAfter: Duration) {
    self.node = node
    self.watchStaleAfter = watchStaleAfter
  }

  func update(_ change: (inout State) -> Void) { state.withLock { change(&$0) } }

  /// Shows `report` (the ACME coordinator's) in `/state`.
  public func showACME(_ report: @escaping @Sendable () -> NodeSnapshot.ACME) {
    state.withLock { $0.acmeReport = report }
  }

  /// Why the node is not ready: HAProxy must run, the first pass must be applied, and the watch must be
  /// current. Empty when ready.
  public func notReadyReasons(now: ContinuousClock.Instant = .now) -> [String] {
    state.withLock { state in
      var reasons: [String] = []
      if !state.haproxyRunning { reasons.append("HAProxy is not running") }
      if !state.initialPassDone { reasons.append("the first reconcile pass has not been applied yet") }
      if !state.etcdConnected {
        reasons.append(state.etcdError.map { "reading etcd failed: \($0)" } ?? "etcd is not reachable")
      }
      if let word = state.lastWatchWord {
        if word.duration(to: now) > watchStaleAfter {
          reasons.append("the etcd watch has been silent for \(Self.seconds(word.duration(to: now))) s")
        }
      } else {
        reasons.append("the etcd watch has not started")
      }
      return reasons
    }
  }

  /// Whether the node is ready.
  public var isReady: Bool { notReadyReasons().isEmpty }

  /// Whether the etcd watch has given word within `watchStaleAfter` (one of the readiness conditions).
  public func isWatchCurrent(now: ContinuousClock.Instant = .now) -> Bool {
    state.withLock { state in state.lastWatchWord.map { $0.duration(to: now) <= watchStaleAfter } ?? false }
  }

  /// The etcd revision HAProxy was last brought in step with.
  public var appliedRevision: Int64 { state.withLock { $0.appliedRevision } }

  /// Everything `/state` shows.
  public func snapshot() -> Snapshot {
    let now = ContinuousClock.now
    let reasons = notReadyReasons(now: now)
    return state.withLock { state in
      Snapshot(
        node: node,
        ready: reasons.isEmpty,
        notReadyReasons: reasons,
        appliedRevision: state.appliedRevision,
        haproxyPID: state.haproxyPID,
        haproxyRunning: state.haproxyRunning,
        haproxyAdopted: state.haproxyAdopted,
        haproxyVersion: state.haproxyVersion,
        etcdConnected: state.etcdConnected,
        watchSilentSeconds: state.lastWatchWord.map { Self.seconds($0.duration(to: now)) },
        etcdWatchEndpoint: state.watchEndpoint,
        reloads: state.reloads,
        haproxyRestarts: state.restarts,
        lastError: state.lastError,
        services: state.services,
        invalidEntries: state.invalidEntries,
        invalidEntryCount: state.invalidEntryCount,
        overrides: state.overrides,
        routes: state.routes,
        routeCount: state.routeCount,
        routeProblems: state.routeProblems,
        lastReloadReason: state.lastReloadReason,
        lastReloadAt: state.lastReloadAt,
        certificates: state.certificates,
        acme: state.acmeReport?() ?? state.acme
      )
    }
  }

  /// `/state` as pretty-printed JSON with sorted keys.
  public func json() -> Data {
    let encoder = JSONEncoder()
    encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
    return (try? encoder.encode(snapshot())) ?? Data("{}".utf8)
  }

  static func seconds(_ duration: Duration) -> Double {
    let components = duration.components
    return ((Double(components.seconds) + Double(components.attoseconds) / 1e18) * 1000).rounded() / 1000
  }
}
