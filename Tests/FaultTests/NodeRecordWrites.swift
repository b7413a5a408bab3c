import EtcdClient
import SwitchyardModel
import SwitchyardTestSupport
import Synchronization
import Testing

/// The writes of the LB nodes' own records (`/switchyard/nodes/<lb>`) during a scenario, from a watch on that
/// prefix: the one kind of etcd write a controller makes. A put counts when it holds a lease (a controller's
/// announcement always does; a hostile record the test writes does not), a delete when it removes an LB
/// node's key (a lease revoked at a graceful stop, or expired after a kill or a lease lost).
final class NodeRecordWrites: Sendable {
  /// The writes, by node.
  struct Counts: Sendable {
    var puts: [String: Int] = [:]
    var deletes: [String: Int] = [:]

    var total: Int { puts.values.reduce(0, +) + deletes.values.reduce(0, +) }
    var deleteCount: Int { deletes.values.reduce(0, +) }

    /// `lb1 2 puts, 1 delete; lb2 1 put`.
    var summary: String {
      FaultCluster.lbNames.compactMap { lb -> String? in
        let (put, deleted) = (puts[lb] ?? 0, deletes[lb] ?? 0)
        guard put + deleted > 0 else { return nil }
        return "\(lb) \(put) put\(put == 1 ? "" : "s")" + (deleted > 0 ? ", \(deleted) delete" : "")
      }.joined(separator: "; ")
    }
  }

  /// The most node-record writes a scenario of `duration` may cost: per node, one put per 5 s while changes
  /// apply and one more; a put after each delete (a lease lost, a controller stopped or killed, then started
  /// again), and the delete itself.
  static func budget(duration: Duration, deletes: Int) -> Int {
    FaultCluster.lbNames.count * (Int((duration / .seconds(5)).rounded(.up)) + 1) + 2 * deletes
  }

  private struct Write: Sendable {
    var node: String
    var isDelete: Bool
    var hasLease: Bool
    var revision: Int64
  }

  private let writes = Mutex<[Write]>([])
  private let task = Mutex<Task<Void, Never>?>(nil)
  private let started = ContinuousClock.now

  /// Starts watching the nodes' records from `revision` on.
  init(_ etcd: EtcdClient, from revision: Int64) {
    let watch = Task {
      do {
        let options = WatchOptions(startRevision: revision)
        for try await response in etcd.watch(.prefix(NodeRecord.root), options: options) {
          let new = response.events.map { event in
            Write(
              node: String(decoding: event.kv.key.dropFirst(NodeRecord.root.utf8.count), as: UTF8.self),
              isDelete: event.kind == .delete, hasLease: event.kv.lease != 0, revision: event.kv.modRevision)
          }
          self.writes.withLock { $0 += new }
        }
      } catch {
        if !Task.isCancelled { Issue.record("the node records' watch ended: \(error)") }
      }
    }
    task.withLock { $0 = watch }
  }

  /// How long the log has been watching.
  var duration: Duration { started.duration(to: .now) }

  /// Waits until the watch is past `revision` or has had a moment to be (a write elsewhere moves the
  /// revision without an event here), stops, and counts the LB nodes' writes up to `revision`.
  func finish(upTo revision: Int64, etcd: EtcdClient) async -> Counts {
    // A write under the prefix at `revision` or before has reached the watch once a read of the prefix at
    // that revision and the watch agree on the newest modification.
    let newest =
      (try? await etcd.get(
        .prefix(NodeRecord.root),
        options: GetOptions(revision: revision, sortOrder: .descending, sortTarget: .modRevision)
      ).kvs.first?.modRevision) ?? 0
    _ = await eventually(timeout: .seconds(5), every: .milliseconds(50)) {
      (writes.withLock { $0.last?.revision } ?? 0) >= newest
    }
    task.withLock { $0?.cancel() }
    var counts = Counts()
    for write in writes.withLock({ $0 }) where write.revision <= revision {
      guard FaultCluster.lbNames.contains(write.node) else { continue }
      if write.isDelete {
        counts.deletes[write.node, default: 0] += 1
      } else if write.hasLease {
        counts.puts[write.node, default: 0] += 1
      }
    }
    return counts
  }

  func stop() { task.withLock { $0?.cancel() } }
}
