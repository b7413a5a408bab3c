import EtcdClient
import Foundation
import SwitchyardDashboard
import SwitchyardModel
import Synchronization

/// The node's history of the revisions its watch delivered and when HAProxy had each (`GET /state/changes`,
/// and the dashboard's recent changes): a ring buffer of the last ``ChangeHistory/capacity`` revisions.
///
/// The watch records every event as it arrives, a pass that applied a revision marks it applied; both cost
/// one short lock and no work per server.
public final class RecentChanges: Sendable {
  private let history: Mutex<ChangeHistory>

  /// An empty history of at most `capacity` revisions.
  public init(capacity: Int = 200) {
    history = Mutex(ChangeHistory(capacity: capacity))
  }

  /// The records, oldest first.
  public var records: [ChangeRecord] { history.withLock { $0.records } }

  /// Records the events of one watch response, seen now. The nodes' own records (`/switchyard/nodes/`)
  /// are no registration change and are left out.
  func record(_ events: [WatchEvent]) {
    let events = events.filter { !$0.kv.key.starts(with: Self.nodeRecordPrefix) }
    guard !events.isEmpty else { return }
    let now = Self.now
    history.withLock { history in
      for event in events {
        history.record(
          revision: event.kv.modRevision, key: String(decoding: event.kv.key, as: UTF8.self),
          deleted: event.kind == .delete, at: now)
      }
    }
  }

  /// HAProxy is in step with `revision` from now on.
  func applied(through revision: Int64) {
    let now = Self.now
    history.withLock { $0.applied(through: revision, at: now) }
  }

  private static let nodeRecordPrefix = Array(NodeRecord.root.utf8)

  /// The wall clock in milliseconds since 1970.
  static var now: Int64 { Int64((Date().timeIntervalSince1970 * 1000).rounded()) }
}
