import Foundation
import Synchronization

/// What a controller knows about itself, for `/readyz` and `/state`. Updated by the controller, read by the
/// admin server.
public final class ControllerStatus: Sendable {
  /// One server as HAProxy runs it.
  public struct Server: Sendable, Hashable, Codable {
    /// Server name (instance id).
    public var name: String
    /// Address and port, as HAProxy has them.
    public var address: String
    /// Weight.
    public var weight: Int
    /// `ready`, `drain` or `maint`.
    public var adminState: String
    /// Whether its health check passes (`up`) or not (`down`).
    public var health: String
    /// Whether the server is still registered; `false` while a removed server drains.
    public var registered: Bool
  }

  /// One service and its servers.
  public struct Service: Sendable, Hashable, Codable {
    /// The service name.
    public var name: String
    /// The HAProxy backend.
    public var backend: String
    /// The health-check path of the backend.
    public var checkPath: String
    /// Servers, by name.
    public var servers: [Server]
  }

  /// An entry skipped as invalid.
  public struct InvalidEntry: Sendable, Hashable, Codable {
    /// The key (escaped).
    public var key: String
    /// Why it was skipped.
    public var reason: String
  }

  /// Everything `/state` shows.
  public struct Snapshot: Sendable, Codable {
    /// The node id.
    public var node: String
    /// Whether the node is ready, and if not, why.
    public var ready: Bool
    /// Why the node is not ready; empty when it is.
    public var notReadyReasons: [String]
    /// The etcd revision HAProxy was last brought in step with (0 before the first pass).
    public var appliedRevision: Int64
    /// HAProxy's master process.
    public var haproxyPID: Int32?
    /// Whether HAProxy runs.
    public var haproxyRunning: Bool
    /// Whether the controller adopted an HAProxy it found running.
    public var haproxyAdopted: Bool
    /// Whether the last etcd request succeeded.
    public var etcdConnected: Bool
    /// Seconds since the watch last gave word.
    public var watchSilentSeconds: Double?
    /// The etcd member the watch stream is open on (`host:port`), when one is open.
    public var etcdWatchEndpoint: String?
    /// Reloads since the controller started.
    public var reloads: Int
    /// HAProxy restarts since the controller started.
    public var haproxyRestarts: Int
    /// The last error, if the last pass failed.
    public var lastError: String?
    /// Services and their servers.
    public var services: [Service]
    /// Entries skipped in the last read.
    public var invalidEntries: [InvalidEntry]
  }

  struct State {
    var appliedRevision: Int64 = 0
    var initialPassDone = false
    var haproxyPID: Int32?
    var haproxyRunning = false
    var haproxyAdopted = false
    var etcdConnected = false
    /// Why the last read of etcd failed, while it fails.
    var etcdError: String?
    var watchEndpoint: String?
    var lastWatchWord: ContinuousClock.Instant?
    var reloads = 0
    var restarts = 0
    var lastError: String?
    var services: [Service] = []
    var invalidEntries: [InvalidEntry] = []
  }

  private let node: String
  private let watchStaleAfter: Duration
  let state = Mutex(State())

  /// Creates the status of node `node`.
  public init(node: String, watchStaleAfter: Duration) {
    self.node = node
    self.watchStaleAfter = watchStaleAfter
  }

  func update(_ change: (inout State) -> Void) { state.withLock { change(&$0) } }

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
        etcdConnected: state.etcdConnected,
        watchSilentSeconds: state.lastWatchWord.map { Self.seconds($0.duration(to: now)) },
        etcdWatchEndpoint: state.watchEndpoint,
        reloads: state.reloads,
        haproxyRestarts: state.restarts,
        lastError: state.lastError,
        services: state.services,
        invalidEntries: state.invalidEntries
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
