import EtcdClient
import Foundation
import Logging
import SwitchyardLab
import SwitchyardModel
import SwitchyardProcess
import Synchronization

/// What the scenarios share: one etcd member, a client for it, a working directory, the `switchyard`
/// executable to start controllers from, and six keep-alive backends (the fleet).
final class BenchLab: Sendable {
  let cluster: EtcdCluster
  let etcd: EtcdClient
  let directory: TemporaryDirectory
  let switchyardExecutable: String
  /// The HAProxy executable the controllers run.
  let haproxyExecutable: String
  let fleet: [HTTPTestServer]
  /// A backend of its own for the instance whose arrival and departure convergence measures.
  let probe: HTTPTestServer
  /// A loopback port where nothing listens, for large fleets whose servers need not answer.
  let closedPort: Int
  private let serial = Atomic<Int>(0)

  init(
    cluster: EtcdCluster,
    etcd: EtcdClient,
    directory: TemporaryDirectory,
    switchyardExecutable: String,
    haproxyExecutable: String,
    fleet: [HTTPTestServer],
    probe: HTTPTestServer,
    closedPort: Int
  ) {
    self.cluster = cluster
    self.etcd = etcd
    self.directory = directory
    self.switchyardExecutable = switchyardExecutable
    self.haproxyExecutable = haproxyExecutable
    self.fleet = fleet
    self.probe = probe
    self.closedPort = closedPort
  }

  var endpoints: String { cluster.endpoints.joined(separator: ",") }

  func nextSerial() -> Int { serial.add(1, ordering: .relaxed).newValue }

  static func key(_ instance: String, service: String = "backend") -> String { "/services/\(service)/\(instance)" }

  static func value(port: Int) -> [UInt8] {
    // Valid by construction: a loopback address and a port from 1 to 65535.
    (try? Registration(address: Address(validating: "127.0.0.1"), port: port))?.encoded() ?? []
  }

  func register(_ instance: String, service: String = "backend", port: Int) async throws {
    try await etcd.put(Self.key(instance, service: service), value: Self.value(port: port))
  }

  func deregister(_ instance: String, service: String = "backend") async throws {
    try await etcd.delete(.key(Self.key(instance, service: service)))
  }

  /// Writes every `(key, port)` (registrations of weight `weight`) with `writers` concurrent writers.
  func putAll(_ entries: [(key: String, port: Int)], weight: Int = 100, writers: Int = 16) async throws {
    try await withThrowingTaskGroup(of: Void.self) { group in
      for writer in 0..<writers {
        group.addTask {
          for index in stride(from: writer, to: entries.count, by: writers) {
            let value =
              weight == 100
              ? Self.value(port: entries[index].port) : try Self.value(port: entries[index].port, weight: weight)
            try await self.etcd.put(entries[index].key, value: value)
          }
        }
      }
      try await group.waitForAll()
    }
  }

  /// Deletes every key, one delete each, with `writers` concurrent writers.
  func deleteAll(_ keys: [String], writers: Int = 16) async throws {
    try await withThrowingTaskGroup(of: Void.self) { group in
      for writer in 0..<writers {
        group.addTask {
          for index in stride(from: writer, to: keys.count, by: writers) {
            try await self.etcd.delete(.key(keys[index]))
          }
        }
      }
      try await group.waitForAll()
    }
  }

  /// etcd's current revision: after writes that have all been acknowledged, the revision of the last.
  func revision() async throws -> Int64 {
    try await etcd.get(.key("/services/"), options: GetOptions(countOnly: true)).header.revision
  }

  /// Removes every registration, so that the next scenario starts from nothing.
  func clear() async throws {
    try await etcd.delete(.prefix("/services/"))
  }

  /// Registers the six fleet backends as `fleet-1` … `fleet-6`, each name followed by `suffix`.
  func registerFleet(suffix: String = "") async throws {
    for server in fleet { try await register(server.name + suffix, port: server.port) }
  }

  /// Deletes the fleet's registrations that ``registerFleet(suffix:)`` made with `suffix`.
  func deregisterFleet(suffix: String) async throws {
    for server in fleet { try await deregister(server.name + suffix) }
  }

  /// One answer of a polling round: the backend that answered, when its request was sent, and when its
  /// answer was in.
  struct PollAnswer: Sendable {
    var name: String
    var sent: ContinuousClock.Instant
    var answered: ContinuousClock.Instant
  }

  /// Sends `parallel` GETs through the LB, each on a new connection, and returns the answers.
  static func pollRound(port: Int, parallel: Int) async -> [PollAnswer] {
    await withTaskGroup(of: PollAnswer?.self) { group in
      for _ in 0..<parallel {
        group.addTask {
          let sent = ContinuousClock.now
          guard
            let response = try? await HTTPLoadClient.measuredGet("http://127.0.0.1:\(port)/", timeout: .seconds(2)),
            response.status == 200
          else { return nil }
          let answered = ContinuousClock.now
          let name = response.body.trimmingCharacters(in: .whitespacesAndNewlines)
            .replacingOccurrences(of: "Hello from ", with: "")
          return PollAnswer(name: name, sent: sent, answered: answered)
        }
      }
      var answers: [PollAnswer] = []
      for await answer in group {
        if let answer { answers.append(answer) }
      }
      return answers
    }
  }

  /// Waits until fresh connections through the LB have reached every fleet backend.
  func waitFleetServing(_ node: LBNode) async throws {
    let wanted = Set(fleet.map(\.name))
    var seen = Set<String>()
    let deadline = ContinuousClock.now.advanced(by: .seconds(60))
    while !wanted.isSubset(of: seen) {
      guard ContinuousClock.now < deadline else {
        throw ProcessError("the fleet did not serve through HAProxy (saw \(seen.sorted()))")
      }
      seen.formUnion(await Self.pollRound(port: node.listenPort, parallel: fleet.count + 1).map(\.name))
      try await Task.sleep(for: .milliseconds(20))
    }
  }
}

/// Milliseconds in a duration.
func milliseconds(_ duration: Duration) -> Double {
  Double(duration.components.seconds) * 1000 + Double(duration.components.attoseconds) / 1e15
}
