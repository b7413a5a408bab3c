import EtcdClient
import Foundation
import SwitchyardLab
import SwitchyardModel
import SwitchyardProcess

/// What the routes scenarios add to the lab: routes and service settings in etcd, writes in transactions,
/// and cleaning up `/switchyard/` as well as `/services/`.
extension BenchLab {
  /// Most operations etcd takes in one transaction (its `--max-txn-ops` default).
  static let transactionSize = 128

  /// The value of a registration at 127.0.0.1:`port` with `weight`.
  static func value(port: Int, weight: Int) throws -> [UInt8] {
    try Registration(address: Address(validating: "127.0.0.1"), port: port, weight: weight).encoded()
  }

  /// The route named `name` as etcd holds it: its key and JSON value.
  static func route(
    _ name: String, service: String, hosts: [String] = [], pathPrefix: String = "/", stripPrefix: Bool = false
  ) throws -> (key: String, value: [UInt8]) {
    let route = try Route(
      name: RouteName(validating: name),
      service: ServiceName(validating: service),
      hosts: hosts.map { try HostPattern(validating: $0) },
      pathPrefix: pathPrefix,
      stripPrefix: stripPrefix
    )
    return (route.path, route.encoded())
  }

  /// Writes (or rewrites) a route.
  func putRoute(
    _ name: String, service: String, hosts: [String] = [], pathPrefix: String = "/", stripPrefix: Bool = false
  ) async throws {
    let route = try Self.route(name, service: service, hosts: hosts, pathPrefix: pathPrefix, stripPrefix: stripPrefix)
    try await etcd.put(route.key, value: route.value)
  }

  /// Deletes the route named `name`.
  func deleteRoute(_ name: String) async throws {
    try await etcd.delete(.key(Route.root + name))
  }

  /// Writes every `(key, value)` in transactions of ``transactionSize`` puts, `writers` at a time: one
  /// revision per transaction, as a provisioning tool would write a fleet.
  func putInTransactions(_ writes: [(key: String, value: [UInt8])], writers: Int = 4) async throws {
    let batches = stride(from: 0, to: writes.count, by: Self.transactionSize).map {
      Array(writes[$0..<min($0 + Self.transactionSize, writes.count)])
    }
    try await withThrowingTaskGroup(of: Void.self) { group in
      for writer in 0..<max(writers, 1) {
        group.addTask {
          for index in stride(from: writer, to: batches.count, by: max(writers, 1)) {
            let operations = batches[index].map { TxnOp.put($0.key, $0.value) }
            _ = try await self.etcd.txn(Txn(success: operations))
          }
        }
      }
      try await group.waitForAll()
    }
  }

  /// Removes every registration, route and service setting.
  func clearAll() async throws {
    try await clear()
    try await etcd.delete(.prefix(Route.root))
    try await etcd.delete(.prefix(ServiceSettings.root))
  }

  /// Runs `body`, then removes every registration, route and service setting however it ended, so the next
  /// scenario starts from nothing.
  func withEverythingCleared<Result>(_ body: () async throws -> Result) async throws -> Result {
    do {
      let result = try await body()
      try await clearAll()
      return result
    } catch {
      try? await clearAll()
      throw error
    }
  }

  /// One request through the LB to `path`, on a connection of its own (``HTTPLoadClient/measuredGet``): its
  /// status, the name of the backend that answered (from `Hello from <name>`), when it was sent and when its
  /// answer was in; `nil` when it failed.
  static func probe(port: Int, path: String) async -> RouteAnswer? {
    let sent = ContinuousClock.now
    guard let response = try? await HTTPLoadClient.measuredGet("http://127.0.0.1:\(port)\(path)", timeout: .seconds(2))
    else { return nil }
    let answered = ContinuousClock.now
    let name = response.body.trimmingCharacters(in: .whitespacesAndNewlines)
      .replacingOccurrences(of: "Hello from ", with: "")
    return RouteAnswer(status: response.status, name: name, sent: sent, answered: answered)
  }
}

/// One answer through the LB: its status, which test server answered, and when.
struct RouteAnswer: Sendable {
  var status: Int
  var name: String
  var sent: ContinuousClock.Instant
  var answered: ContinuousClock.Instant

  /// Whether the test server `name` answered with 200.
  func from(_ name: String) -> Bool { status == 200 && self.name == name }
}

/// Resident memory of processes, from `/proc/<pid>/status` (``ProcFS`` reads the peak, `VmHWM`; this reads
/// the current size, `VmRSS`).
enum ResidentMemory {
  /// `VmRSS` of `pid` in MB; 0 when it cannot be read.
  static func megabytes(of pid: Int32) -> Double {
    guard let data = FileManager.default.contents(atPath: "/proc/\(pid)/status") else { return 0 }
    let status = String(decoding: data, as: UTF8.self)
    guard let line = status.split(separator: "\n").first(where: { $0.hasPrefix("VmRSS:") }),
      let kilobytes = line.split(separator: " ").compactMap({ Int($0) }).first
    else { return 0 }
    return Double(kilobytes) / 1024
  }

  /// `VmHWM` of `pid` in MB; 0 when it cannot be read.
  static func peakMegabytes(of pid: Int32) -> Double {
    ProcFS.peakResidentBytes(of: pid).map { Double($0) / 1_048_576 } ?? 0
  }
}

extension LBNode {
  /// HAProxy's workers (the master's children), by PID.
  var haproxyWorkers: [Int32] {
    ProcFS.children(of: masterPID).filter { ProcFS.command(of: $0) == "haproxy" }
  }

  /// The CPU time of HAProxy's master and workers so far, in seconds.
  func haproxyCPUSeconds() -> Double {
    ([masterPID] + haproxyWorkers).compactMap { ProcFS.cpuTime(of: $0) }.map(KeepAliveLoad.seconds).reduce(0, +)
  }

  /// `/state`, decoded.
  func state() async throws -> NodeSnapshot {
    let body = try await HTTPLoadClient.get("\(adminURL)/state", timeout: .seconds(10)).body
    return try JSONDecoder().decode(NodeSnapshot.self, from: Data(body.utf8))
  }
}
