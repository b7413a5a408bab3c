import EtcdClient
import Foundation
import SwitchyardTestSupport
import Synchronization
import Testing

/// Issue 10, item 1: after a missed lease renewal a backend must not write its key again and again.
/// These tests count the writes to a backend's key through a lease scare and after it.
@Suite("switchyard backend: writes to its key after a lease scare", .serialized)
struct LeaseScareTests {
  private static func backendArguments(_ cluster: EtcdCluster, id: String, ttl: Int) throws -> [String] {
    [
      "backend", "--etcd-endpoints", cluster.endpoints.joined(separator: ","), "--id", id,
      "--listen", "127.0.0.1:\(try FreePort.allocate())", "--ttl", "\(ttl)", "--drain-seconds", "0",
      "--log-level", "debug",
    ]
  }

  /// Waits for the key to be registered under a live lease; returns it.
  private static func registration(
    _ key: String,
    etcd: EtcdClient,
    other lease: Int64? = nil,
    backend: ManagedProcess,
    timeout: Duration = .seconds(15)
  ) async throws -> KeyValue {
    var found: KeyValue?
    let registered = await eventually(timeout: timeout) {
      guard let kv = try await etcd.value(of: key), kv.lease != lease else { return false }
      guard try await etcd.timeToLive(lease: kv.lease).ttl > 0 else { return false }
      found = kv
      return true
    }
    #expect(registered, "not registered: \(backend.logTail())")
    return try #require(found)
  }

  @Test("etcd frozen for longer than the TTL: the lease is lost, one paced write, then only keepalives")
  func frozenLongerThanTTL() async throws {
    let directory = try TemporaryDirectory()
    defer { directory.remove() }
    try await EtcdCluster.with(members: 1) { cluster in
      let key = "/services/backend/frozen"
      let backend = try startSwitchyard(
        Self.backendArguments(cluster, id: "frozen", ttl: 3), directory: directory, name: "frozen")
      defer { backend.kill() }
      try await withClient(cluster) { etcd in
        let first = try await Self.registration(key, etcd: etcd, backend: backend)
        let writes = KeyWriteLog(etcd: etcd, key: key, after: first.modRevision)
        defer { writes.stop() }
        // Let a renewal land, then freeze etcd well past the TTL: the backend hears nothing for longer
        // than its lease lasts, and etcd expires the lease as soon as it runs again.
        try await Task.sleep(for: .seconds(1))
        let clock = ContinuousClock()
        try cluster.pause(member: 0)
        let paused = clock.now
        try await Task.sleep(for: .seconds(4.5))
        try cluster.resume(member: 0)

        let again = try await Self.registration(key, etcd: etcd, other: first.lease, backend: backend)
        let registeredAgain = clock.now
        // Registered again: from here on only keepalives, so the store's revision must not move while
        // the new lease is renewed through twice its TTL.
        let settled = try await etcd.get(.key(key)).header.revision
        try await Task.sleep(for: .seconds(6))
        let later = try await etcd.get(.key(key))
        #expect(later.header.revision == settled, "writes after the registration was back: \(writes.summary)")
        #expect(later.kvs.first?.lease == again.lease, "the new lease is kept alive")
        #expect(try await etcd.timeToLive(lease: again.lease).ttl > 0)

        await writes.waitUntilSeen(revision: later.header.revision, etcd: etcd)
        let puts = writes.puts
        let scare = paused.duration(to: registeredAgain)
        print("lease scare: \(puts.count) puts in \(scare), at most \(writes.maximumPutsPerSecond) in one second")
        #expect(puts.count >= 1, "the expired registration was written again")
        #expect(puts.count <= 3, "a few writes at most during the scare: \(writes.summary)")
        #expect(writes.maximumPutsPerSecond <= 2, "\(writes.summary)")
        #expect(puts.allSatisfy { $0.lease == again.lease }, "one new lease, not one per write")
        #expect(
          backend.logContents().contains("lease renewal deadline passed"), "the backend saw the scare")
      }
    }
  }

  @Test("etcd down for longer than the TTL and restarted: the lease survives, and nothing is written")
  func restartedAfterTTL() async throws {
    let directory = try TemporaryDirectory()
    defer { directory.remove() }
    try await EtcdCluster.with(members: 1) { cluster in
      let key = "/services/backend/restarted"
      let backend = try startSwitchyard(
        Self.backendArguments(cluster, id: "restarted", ttl: 5), directory: directory, name: "restarted")
      defer { backend.kill() }
      let first = try await withClient(cluster) { etcd in
        try await Self.registration(key, etcd: etcd, backend: backend)
      }
      try await Task.sleep(for: .seconds(1))
      // A restarted etcd renews every lease by its full TTL, so the old lease is still good when the
      // backend gets through again: it must resume keepalives without writing.
      try await cluster.stop(member: 0)
      try await Task.sleep(for: .seconds(6.5))
      try await cluster.start(member: 0)
      try await withClient(cluster) { etcd in
        let writes = KeyWriteLog(etcd: etcd, key: key, after: first.modRevision)
        defer { writes.stop() }
        // Longer than the TTL: without keepalives on the old lease, etcd would delete the key by now.
        try await Task.sleep(for: .seconds(7))
        let now = try await etcd.get(.key(key))
        await writes.waitUntilSeen(revision: now.header.revision, etcd: etcd)
        print("restart past the TTL: \(writes.puts.count) puts, \(writes.summary)")
        #expect(now.kvs.first?.lease == first.lease, "the same lease: \(backend.logTail())")
        #expect(now.kvs.first?.modRevision == first.modRevision, "not written again: \(writes.summary)")
        #expect(writes.all.count == 0, "\(writes.summary)")
        #expect(try await etcd.timeToLive(lease: first.lease).ttl > 0, "renewed again")
        #expect(
          backend.logContents().contains("lease renewal deadline passed"), "the backend saw the scare")
      }
    }
  }
}

/// Every change to one key after a revision, with when the watch delivered it.
final class KeyWriteLog: Sendable {
  struct Change: Sendable {
    var kind: WatchEvent.Kind
    var lease: Int64
    var revision: Int64
    var seen: ContinuousClock.Instant
  }

  private final class Record: Sendable {
    let changes = Mutex<[Change]>([])
    let lastRevision: Mutex<Int64>
    init(revision: Int64) { lastRevision = Mutex(revision) }
  }

  private let record: Record
  private let task: Task<Void, Never>

  /// Starts watching `key` from the revision after `revision`.
  init(etcd: EtcdClient, key: String, after revision: Int64) {
    let record = Record(revision: revision)
    let watch = etcd.watch(.key(key), options: WatchOptions(startRevision: revision + 1, notifyCreated: true))
    task = Task {
      let clock = ContinuousClock()
      do {
        for try await response in watch {
          let now = clock.now
          let seen = response.events.map {
            Change(kind: $0.kind, lease: $0.kv.lease, revision: $0.kv.modRevision, seen: now)
          }
          record.changes.withLock { $0.append(contentsOf: seen) }
          record.lastRevision.withLock { $0 = max($0, response.revision) }
        }
      } catch {}
    }
    self.record = record
  }

  /// Stops watching.
  func stop() {
    task.cancel()
  }

  /// Waits until the watch has delivered everything up to `revision`.
  func waitUntilSeen(revision: Int64, etcd: EtcdClient) async {
    let seen = await eventually(timeout: .seconds(10)) {
      etcd.requestWatchProgress()
      return self.record.lastRevision.withLock { $0 } >= revision
    }
    #expect(seen, "the watch did not catch up to revision \(revision)")
  }

  /// Every change seen so far.
  var all: [Change] { record.changes.withLock { $0 } }

  /// The puts seen so far.
  var puts: [Change] { all.filter { $0.kind == .put } }

  /// The most puts delivered within any one second.
  var maximumPutsPerSecond: Int {
    let times = puts.map(\.seen)
    var most = 0
    var start = 0
    for end in times.indices {
      while times[start].duration(to: times[end]) >= .seconds(1) { start += 1 }
      most = max(most, end - start + 1)
    }
    return most
  }

  /// Counts for failure messages.
  var summary: String {
    let all = all
    let leases = Set(all.map(\.lease)).count
    return "\(all.count) changes (\(puts.count) puts, \(all.count - puts.count) deletes) on \(leases) leases"
  }
}
