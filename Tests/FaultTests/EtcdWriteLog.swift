import EtcdClient
import SwitchyardModel
import SwitchyardTestSupport
import Synchronization
import Testing

/// Every write to etcd during a scenario, from a watch on the whole keyspace that starts at the
/// scenario's first revision, so that each write can be put down to who made it.
///
/// etcd does not say who wrote a key, so writes are attributed by what they are:
/// - the test's own: a put of a key and value the test put, or a delete of a key it deleted (a request
///   repeated after a frozen member woke up counts here too, and shows as more writes than requests);
/// - registrars': under `/services/`, a put with a lease (every registrar writes under its lease) or a
///   delete (a revoked or expired lease);
/// - the LB nodes' records: under `/switchyard/nodes/`, a put with a lease or a delete (the one thing a
///   controller writes; ``NodeRecordWrites`` holds them to a budget of their own);
/// - anything else: someone else, which in the fault cluster can only be a controller. Controllers
///   write nothing else; the count must stay 0.
final class EtcdWriteLog: Sendable {
  struct Write: Sendable, Hashable {
    var key: [UInt8]
    var value: [UInt8]
    var isDelete: Bool
    var lease: Int64
    var revision: Int64
    var seen: ContinuousClock.Instant

    var keyString: String { String(decoding: key, as: UTF8.self) }
  }

  private let writes = Mutex<[Write]>([])
  private let ownPuts = Mutex<Set<[UInt8]>>([])
  private let ownDeletes = Mutex<Set<[UInt8]>>([])
  private let requests = Mutex(0)
  private let task = Mutex<Task<Void, Never>?>(nil)
  let etcd: EtcdClient

  /// Starts watching every key from `revision` on.
  init(_ etcd: EtcdClient, from revision: Int64) {
    self.etcd = etcd
    let watch = Task {
      do {
        for try await response in etcd.watch(.all, options: WatchOptions(startRevision: revision)) {
          let now = ContinuousClock.now
          let new = response.events.map { event in
            Write(
              key: event.kv.key, value: event.kv.value, isDelete: event.kind == .delete, lease: event.kv.lease,
              revision: event.kv.modRevision, seen: now)
          }
          self.writes.withLock { $0 += new }
        }
      } catch {
        if !Task.isCancelled { Issue.record("the write log's watch ended: \(error)") }
      }
    }
    task.withLock { $0 = watch }
  }

  /// Puts `value` at `key` as the test, as an operator would: a request that times out (on a frozen
  /// member the client does not send a write elsewhere by itself) is sent again, up to three times.
  /// Returns the write's revision.
  @discardableResult
  func put(_ key: some EtcdBytesConvertible, _ value: some EtcdBytesConvertible) async throws -> Int64 {
    let (keyBytes, valueBytes) = (key.etcdBytes, value.etcdBytes)
    ownPuts.withLock { _ = $0.insert(keyBytes + [0] + valueBytes) }
    return try await again { try await self.etcd.put(keyBytes, value: valueBytes).header.revision }
  }

  /// Deletes `key` as the test (sent again as ``put(_:_:)`` is); returns the revision after it.
  @discardableResult
  func delete(_ key: some EtcdBytesConvertible) async throws -> Int64 {
    let keyBytes = key.etcdBytes
    ownDeletes.withLock { _ = $0.insert(keyBytes) }
    return try await again { try await self.etcd.delete(.key(keyBytes)).header.revision }
  }

  /// Requests the test sent again after a failure, with what failed.
  private let retries = Mutex<[String]>([])

  private func again(_ request: () async throws -> Int64) async throws -> Int64 {
    for attempt in 1...3 {
      requests.withLock { $0 += 1 }
      do {
        return try await request()
      } catch  where attempt < 3 {
        retries.withLock { $0.append("\(error)") }
      }
    }
    // Unreachable: the third attempt returns or throws.
    throw TestSupportError("no attempt left")
  }

  /// The failures after which the test sent a request again.
  var resent: [String] { retries.withLock { $0 } }

  /// The writes seen so far.
  var all: [Write] { writes.withLock { $0 } }

  /// The writes of the registration keys under `prefix` (`/services/web/`), in order.
  func registrationWrites(under prefix: String) -> [Write] {
    all.filter { $0.key.starts(with: Array(prefix.utf8)) }
  }

  /// What the writes were, by who made them.
  struct Attribution {
    var test = 0
    var testRequests = 0
    var registrars = 0
    var nodeRecords = 0
    var others: [Write] = []
    var total = 0
  }

  /// Waits until the log has seen `revision`, stops it and puts every write down to its writer.
  func finish(upTo revision: Int64) async -> Attribution {
    try? await retrying(timeout: .seconds(10), every: .milliseconds(50)) {
      guard (all.last?.revision ?? 0) >= revision else { throw TestSupportError("the write log is behind") }
    }
    task.withLock { $0?.cancel() }
    let (puts, deletes) = (ownPuts.withLock { $0 }, ownDeletes.withLock { $0 })
    var result = Attribution(testRequests: requests.withLock { $0 })
    let services = Array("/services/".utf8)
    let nodes = Array(NodeRecord.root.utf8)
    for write in all where write.revision <= revision {
      result.total += 1
      if write.isDelete ? deletes.contains(write.key) : puts.contains(write.key + [0] + write.value) {
        result.test += 1
      } else if write.key.starts(with: services) && (write.isDelete || write.lease != 0) {
        result.registrars += 1
      } else if write.key.starts(with: nodes) && (write.isDelete || write.lease != 0) {
        result.nodeRecords += 1
      } else {
        result.others.append(write)
      }
    }
    return result
  }

  func stop() { task.withLock { $0?.cancel() } }
}

extension ScenarioContext {
  /// Finishes `log` at etcd's current revision, notes who wrote what, and checks that only the test, the
  /// registrars and the nodes' records wrote: a controller writes nothing but its own record.
  @discardableResult
  func judgeWrites(_ log: EtcdWriteLog) async throws -> EtcdWriteLog.Attribution {
    let revision = try await etcd.get(.key("/")).header.revision
    let writes = await log.finish(upTo: revision)
    note(
      "etcd writes: \(writes.total) = \(writes.test) by the test (\(writes.testRequests) requests), "
        + "\(writes.registrars) by registrars, \(writes.nodeRecords) of the nodes' records, "
        + "\(writes.others.count) by anyone else (controllers)"
        + (log.resent.isEmpty ? "" : "; requests sent again after: \(log.resent)"))
    #expect(
      writes.others.isEmpty,
      "\(name): writes by neither the test nor a registrar: \(writes.others.map { "\($0.keyString) @\($0.revision)" })")
    return writes
  }
}
