import EtcdClient
import Foundation
import NIOCore
import NIOPosix
import SwitchyardTestSupport
import Synchronization
import Testing

/// Passes that only follow up on draining servers ask HAProxy, not etcd.
@Suite(.serialized) struct FollowUpTests {
  @Test("a removal that waits for connections is followed up without reading etcd again")
  func followUpsDoNotReadEtcd() async throws {
    // f2 accepts connections and never answers: a request sent to it stays in flight, so its removal
    // waits (for the 5 s drain timeout) through follow-up passes.
    let silent = try await ServerBootstrap(group: MultiThreadedEventLoopGroup.singleton)
      .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
      .childChannelInitializer { $0.eventLoop.makeSucceededVoidFuture() }
      .bind(host: "127.0.0.1", port: 0)
      .get()
    defer { silent.close(promise: nil) }
    let silentPort = try #require(silent.localAddress?.port)
    try await withNodes { cluster, nodes, etcd in
      let node = nodes[0]
      let answering = try await HTTPTestServer.start(name: "f1")
      defer { Task { await answering.close() } }
      try await etcd.register("f1", port: answering.port, checkPath: "/")
      try await etcd.register("f2", port: silentPort, checkPath: "/")
      try await retrying(timeout: .seconds(10)) {
        guard try await node.servers().keys.sorted() == ["f1", "f2"] else { throw TestSupportError("not both yet") }
      }
      // Round robin sends one of these to f2, where it hangs.
      let hanging = (0..<2).map { _ in Task { try? await HTTPLoadClient.get(node.url, timeout: .seconds(20)) } }
      defer { for task in hanging { task.cancel() } }
      try await Task.sleep(for: .milliseconds(300))
      // The node's record in etcd (its applied revision, at most every 5 s) is written by its registrar,
      // which reads the key before each write: one range per announcement, counted apart.
      let announced = PutCounter()
      let from = try await etcd.get(.key("/")).header.revision + 1
      let announcements = Task {
        let options = WatchOptions(startRevision: from)
        for try await response in etcd.watch(.prefix("/switchyard/nodes/"), options: options) {
          announced.add(response.events.filter { $0.kind == .put }.count)
        }
      }
      let rangesBefore = try await etcdRanges(cluster)
      let passesBefore = try await node.metric("switchyard_reconciles_total{result=\"ok\"}") ?? 0
      let followUpsBefore = try await node.metric("switchyard_followup_passes_total") ?? 0
      try await etcd.deregister("f2")
      try await retrying(timeout: .seconds(15)) {
        guard try await node.servers()["f2"] == nil else { throw TestSupportError("f2 still there") }
      }
      let followUps = (try await node.metric("switchyard_followup_passes_total") ?? 0) - followUpsBefore
      let passes = (try await node.metric("switchyard_reconciles_total{result=\"ok\"}") ?? 0) - passesBefore
      let rangesTotal = try await etcdRanges(cluster) - rangesBefore
      try await Task.sleep(for: .milliseconds(200))
      announcements.cancel()
      let ranges = rangesTotal - Double(announced.count)
      #expect(followUps >= 3, "the removal took \(followUps) follow-up passes of \(passes)")
      // Every other pass reads the prefix (once: it fits one page); follow-ups read nothing.
      #expect(
        ranges <= passes - followUps,
        "\(ranges) etcd reads (besides \(announced.count) of node announcements) for \(passes) passes, \(followUps) of them follow-ups"
      )
    }
  }

  /// Ranges etcd has served, from its metrics.
  private func etcdRanges(_ cluster: EtcdCluster) async throws -> Double {
    let (_, body) = try await HTTPLoadClient.get("\(cluster.clientURL(of: 0))/metrics")
    let line = body.split(separator: "\n").first { $0.hasPrefix("etcd_debugging_mvcc_range_total ") }
    guard let value = line?.split(separator: " ").last.flatMap({ Double($0) }) else {
      throw TestSupportError("etcd's metrics have no etcd_debugging_mvcc_range_total")
    }
    return value
  }
}

/// Puts seen by a watch, counted from its task.
private final class PutCounter: Sendable {
  private let puts = Mutex(0)
  var count: Int { puts.withLock { $0 } }
  func add(_ count: Int) { puts.withLock { $0 += count } }
}
