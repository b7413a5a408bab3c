import EtcdClient
import Foundation
import SwitchyardController
import SwitchyardModel
import SwitchyardTestSupport
import Synchronization
import Testing

/// Load-balancer nodes announce themselves in etcd (`/switchyard/nodes/<node-id>`): the record's fields, its
/// lease (gone within the TTL after a crash, at once after a graceful stop), how few writes it costs, and two
/// controllers that claim one node id. Real etcd, real controllers and HAProxy.
@Suite(.serialized) struct NodeAnnouncementTests {
  @Test func aNodesRecordHasItsAddressesVersionsAndAppliedRevision() async throws {
    let before = Int64(Date().timeIntervalSince1970)
    try await withNodes(count: 1) { _, nodes, etcd in
      let node = nodes[0]
      let kv = try await announcement(of: "lb1", etcd: etcd, timeout: .seconds(10))
      let record = try NodeRecord.parse(key: kv.key, value: kv.value)
      #expect(record.listen.description == "127.0.0.1:\(node.listenPort)")
      #expect(record.stats.description == "127.0.0.1:\(node.statsPort)")
      #expect(record.adminURL == node.adminURL)
      #expect(record.switchyardVersion == SwitchyardVersion.current)
      let state = try await node.state()
      #expect(record.haproxyVersion != nil && record.haproxyVersion == state.haproxyVersion)
      // The first write waits for the first pass: it carries the revision that pass applied.
      #expect(record.appliedRevision > 0 && record.appliedRevision <= state.appliedRevision)
      #expect(record.started >= before - 1 && record.started <= Int64(Date().timeIntervalSince1970))
      #expect(kv.lease != 0)
      let ttl = try await etcd.timeToLive(lease: kv.lease)
      #expect(ttl.grantedTTL == NodeRecord.ttl && ttl.ttl > 0 && ttl.ttl <= NodeRecord.ttl)
      // One put so far: the grant and the first write at start.
      #expect(kv.version == 1, "the key was written \(kv.version) times")
      // That write changes nothing HAProxy runs; the node counts it as applied all the same (it watches the
      // records), so its applied revision is etcd's, without a pass (the next full one is 5 minutes away).
      let current = try await etcd.get(.key("/")).header.revision
      let caughtUp = await eventually(timeout: .seconds(3)) { try await node.state().appliedRevision == current }
      let applied = try await node.state().appliedRevision
      #expect(caughtUp, "applied \(applied), etcd at \(current)")
      #expect(try await node.metric("switchyard_incremental_passes_total") == 0)
    }
  }

  @Test func aKilledControllersRecordLeavesWithinTheTTLAndAStoppedOnesAtOnce() async throws {
    try await withNodes(count: 2) { _, nodes, etcd in
      _ = try await announcement(of: "lb1", etcd: etcd, timeout: .seconds(10))
      _ = try await announcement(of: "lb2", etcd: etcd, timeout: .seconds(10))
      await nodes[0].killController()
      let killed = ContinuousClock.now
      let gone = await eventually(timeout: .seconds(NodeRecord.ttl + 3), every: .milliseconds(100)) {
        try await etcd.value(of: NodeRecord.root + "lb1") == nil
      }
      let after = killed.duration(to: .now)
      #expect(gone, "lb1's record was still there \(after) after its controller was killed")
      #expect(after <= .seconds(NodeRecord.ttl + 1), "lb1's record left after \(after)")
      #expect(try await etcd.value(of: NodeRecord.root + "lb2") != nil, "lb2's record went too")

      await nodes[1].stop()
      #expect(nodes[1].controller?.isRunning == false)
      #expect(try await etcd.value(of: NodeRecord.root + "lb2") == nil, "lb2's record outlived its graceful stop")
    }
  }

  @Test func theAppliedRevisionIsWrittenAtMostEveryFiveSecondsAndNotAtRest() async throws {
    // A full pass every second reads etcd's revision, which the records' own writes move: they must not
    // count as news, or the two nodes would write in turn for ever.
    try await withNodes(count: 2, extraArguments: ["--resync-interval", "1"]) { _, nodes, etcd in
      _ = try await announcement(of: "lb1", etcd: etcd, timeout: .seconds(10))
      _ = try await announcement(of: "lb2", etcd: etcd, timeout: .seconds(10))
      let start = try await etcd.get(.key("/")).header.revision
      let log = NodeKeyLog(etcd, from: start + 1)
      defer { log.stop() }
      // At rest, 8 s: keep-alives only.
      try await Task.sleep(for: .seconds(8))
      #expect(log.writes.isEmpty, "writes at rest: \(log.writes)")

      // 12 s of churn, a change every 200 ms.
      let server = try await HTTPTestServer.start(name: "c1")
      defer { Task { await server.close() } }
      let churnStart = ContinuousClock.now
      var last: Int64 = 0
      for index in 0..<60 {
        last = try await etcd.register("c1", port: server.port, weight: 50 + index % 2)
        try await Task.sleep(for: .milliseconds(200))
      }
      let churn = churnStart.duration(to: .now)
      // Caught up: within 5 s plus the registrar's pacing, each record says a revision at or after the last change.
      for name in ["lb1", "lb2"] {
        let caughtUp = await eventually(timeout: .seconds(10)) {
          guard let kv = try await etcd.value(of: NodeRecord.root + name) else { return false }
          return try NodeRecord.parse(key: kv.key, value: kv.value).appliedRevision >= last
        }
        #expect(caughtUp, "\(name)'s record never said revision \(last)")
      }
      let quiet = log.writes.count
      try await Task.sleep(for: .seconds(8))
      #expect(log.writes.count == quiet, "writes after the churn ended: \(log.writes.dropFirst(quiet))")
      // The records' writes change nothing a node runs, but each node counts them as applied: at rest, the
      // applied revision is etcd's.
      let current = try await etcd.get(.key("/")).header.revision
      for node in nodes {
        let applied = try await node.state().appliedRevision
        #expect(applied == current, "\(node.name) applied \(applied), etcd is at \(current)")
      }
      for name in ["lb1", "lb2"] {
        let times = log.writes.filter { $0.node == name }.map(\.seen)
        // One write per 5 s of churn, and the one that catches up after it.
        let limit = Int(churn / .seconds(5)) + 2
        #expect(times.count >= 2 && times.count <= limit, "\(name): \(times.count) writes in \(churn) (limit \(limit))")
        for (earlier, later) in zip(times, times.dropFirst()) {
          // The watch may deliver two writes a little closer than they were made.
          #expect(
            earlier.duration(to: later) >= .milliseconds(4_800), "\(name): writes \(earlier.duration(to: later)) apart")
        }
        #expect(log.writes.allSatisfy { !$0.isDelete }, "a record was deleted")
      }
    }
  }

  @Test func aSecondControllerWithTheSameNodeIDWritesNothingUntilTheFirstIsGone() async throws {
    try await withNodes(count: 1) { cluster, nodes, etcd in
      let first = try await announcement(of: "lb1", etcd: etcd, timeout: .seconds(10))
      let log = NodeKeyLog(etcd, from: try await etcd.get(.key("/")).header.revision + 1)
      defer { log.stop() }
      let twin = try LBNode(name: "lb1", endpoints: cluster.endpoints)
      defer { Task { await twin.cleanup() } }
      try twin.start()
      try await twin.waitReady()
      let conflict = await eventually(timeout: .seconds(10)) {
        twin.log().contains("instance id conflict: /switchyard/nodes/lb1 is held by another live process")
      }
      #expect(conflict, "\(twin.log())")
      #expect(twin.log().contains("another --node-id"), "\(twin.log())")
      try await Task.sleep(for: .seconds(2))
      let held = try #require(try await etcd.value(of: NodeRecord.root + "lb1"))
      #expect(held.lease == first.lease && held.modRevision == first.modRevision, "the twin overwrote the record")
      #expect(log.writes.isEmpty, "\(log.writes)")

      // Once the first stops (its lease revoked), the twin takes the key.
      await nodes[0].stop()
      let taken = await eventually(timeout: .seconds(15)) {
        guard let kv = try await etcd.value(of: NodeRecord.root + "lb1") else { return false }
        return try NodeRecord.parse(key: kv.key, value: kv.value).adminURL == twin.adminURL
      }
      #expect(taken, "\(twin.log())")
    }
  }
}

/// Waits for `node`'s record and returns it.
func announcement(of node: String, etcd: EtcdClient, timeout: Duration) async throws -> KeyValue {
  var found: KeyValue?
  try await retrying(timeout: timeout) {
    guard let kv = try await etcd.value(of: NodeRecord.root + node) else {
      throw TestSupportError("no record of \(node) in etcd")
    }
    found = kv
  }
  return try #require(found)
}

/// Every write under `/switchyard/nodes/` from a revision on, from a watch.
final class NodeKeyLog: Sendable {
  struct Write: Sendable, CustomStringConvertible {
    var node: String
    var isDelete: Bool
    var revision: Int64
    var seen: ContinuousClock.Instant

    var description: String { "\(isDelete ? "delete" : "put") \(node) @\(revision)" }
  }

  private let log = Mutex<[Write]>([])
  private let task = Mutex<Task<Void, Never>?>(nil)

  init(_ etcd: EtcdClient, from revision: Int64) {
    let watch = Task {
      let options = WatchOptions(startRevision: revision)
      do {
        for try await response in etcd.watch(.prefix(NodeRecord.root), options: options) {
          let now = ContinuousClock.now
          let writes = response.events.map {
            Write(
              node: String(decoding: $0.kv.key.dropFirst(NodeRecord.root.utf8.count), as: UTF8.self),
              isDelete: $0.kind == .delete, revision: $0.kv.modRevision, seen: now)
          }
          self.log.withLock { $0 += writes }
        }
      } catch {
        if !Task.isCancelled { Issue.record("the node key watch ended: \(error)") }
      }
    }
    task.withLock { $0 = watch }
  }

  var writes: [Write] { log.withLock { $0 } }

  func stop() { task.withLock { $0?.cancel() } }
}
