import EtcdClient
import Foundation
import Hummingbird
import Logging
import SwitchyardACME
import SwitchyardCerts
import SwitchyardModel
import SwitchyardTestSupport
import Synchronization
import X509

/// A quiet logger for the coordinators under test.
let quietLogger: Logger = {
  var logger = Logger(label: "acme-test")
  logger.logLevel = .critical
  return logger
}()

/// A client for `cluster` with short timeouts.
func makeEtcdClient(_ cluster: EtcdCluster) throws -> EtcdClient {
  var configuration = try EtcdConfiguration(endpoints: cluster.endpoints.joined(separator: ","))
  configuration.requestTimeout = .seconds(5)
  configuration.dialTimeout = .seconds(1)
  return try EtcdClient(configuration: configuration, logger: quietLogger)
}

/// Holds the first validation request until the test opens the gate.
final class ValidationGate: Sendable {
  private let state = Mutex<(hits: Int, open: Bool)>((0, false))
  var hits: Int { state.withLock { $0.hits } }
  func open() { state.withLock { $0.open = true } }
  func pass() async {
    state.withLock { $0.hits += 1 }
    while !state.withLock({ $0.open }) { try? await Task.sleep(for: .milliseconds(20)) }
  }
}

/// What every node will do: answers `GET /.well-known/acme-challenge/<token>` from etcd, through
/// ``ACMEChallenge/parse(key:value:)``, on `port`. Counts what it served and what it refused.
final class ChallengeResponder: Sendable {
  private let counts = Counts()
  private let task: Task<Void, any Error>
  /// Answers served.
  var served: Int { counts.value.withLock { $0.served } }
  /// Requests refused (no entry, or one that does not parse).
  var refused: Int { counts.value.withLock { $0.refused } }

  final class Counts: Sendable {
    let value = Mutex<(served: Int, refused: Int)>((0, 0))
  }

  init(port: Int, etcd: EtcdClient, gate: ValidationGate? = nil) {
    let router = Router()
    let counts = counts
    router.get("/.well-known/acme-challenge/{token}") { _, context -> Response in
      if let gate { await gate.pass() }
      let token = context.parameters.get("token") ?? ""
      let key = ACMEChallenge.root + token
      guard let kv = try await etcd.value(of: key),
        let challenge = try? ACMEChallenge.parse(key: kv.key, value: kv.value)
      else {
        counts.value.withLock { $0.refused += 1 }
        return Response(status: .notFound)
      }
      counts.value.withLock { $0.served += 1 }
      return Response(status: .ok, body: .init(byteBuffer: ByteBuffer(string: challenge.keyAuthorization)))
    }
    let app = Application(
      router: router, configuration: .init(address: .hostname("127.0.0.1", port: port)), logger: quietLogger)
    task = Task { try await app.runService(gracefulShutdownSignals: []) }
  }

  func stop() async {
    task.cancel()
    _ = try? await task.value
  }
}

/// Etcd, Pebble, a responder and a cluster key, for one test.
struct ACMELab {
  let cluster: EtcdCluster
  let pebble: PebbleLab
  let etcd: EtcdClient
  let responder: ChallengeResponder
  let clusterKey: ClusterKey

  static func with(gate: ValidationGate? = nil, _ body: (ACMELab) async throws -> Void) async throws {
    let httpPort = try FreePort.allocate()
    try await EtcdCluster.with(members: 1) { cluster in
      try await PebbleLab.with(httpPort: httpPort) { pebble in
        let etcd = try makeEtcdClient(cluster)
        let etcdTask = Task { try await etcd.run() }
        let responder = ChallengeResponder(port: httpPort, etcd: etcd, gate: gate)
        defer { etcdTask.cancel() }
        do {
          try await body(
            ACMELab(cluster: cluster, pebble: pebble, etcd: etcd, responder: responder, clusterKey: .generate()))
          await responder.stop()
        } catch {
          await responder.stop()
          throw error
        }
      }
    }
  }

  func configuration(node: String) -> ACMECoordinator.Configuration {
    var configuration = ACMECoordinator.Configuration(
      nodeID: node, directoryURL: pebble.directoryURL, trustRootsFile: pebble.caCertificate, clusterKey: clusterKey)
    configuration.leaseTTL = 3
    configuration.campaignInterval = .milliseconds(200)
    configuration.passInterval = .milliseconds(300)
    configuration.backoffMinimum = .seconds(30)
    configuration.orderTimeout = .seconds(20)
    configuration.requestTimeout = .seconds(5)
    return configuration
  }

  /// Runs a coordinator with its own etcd client; the handle stops it gracefully or "crashes" it.
  func start(_ configuration: ACMECoordinator.Configuration) throws -> RunningCoordinator {
    let client = try makeEtcdClient(cluster)
    let clientTask = Task { try await client.run() }
    let coordinator = ACMECoordinator(configuration: configuration, etcd: client, logger: quietLogger)
    let task = Task { try await coordinator.run() }
    return RunningCoordinator(coordinator: coordinator, client: client, clientTask: clientTask, task: task)
  }

  func putRoute(_ name: String, hosts: [String]) async throws {
    let route = try Route(
      name: RouteName(validating: name), service: ServiceName(validating: "shop"),
      hosts: hosts.map { try HostPattern(validating: $0) }, acme: true)
    try await etcd.put(route.path, value: route.encoded())
  }

  /// The stored certificate `name`, opened and validated with the cluster key, and its etcd entry.
  func certificate(_ name: String) async throws -> (
    bundle: CertificateBundle, record: CertificateRecord, version: Int64
  )? {
    guard let kv = try await etcd.value(of: CertificateRecord.root + name) else { return nil }
    let record = try CertificateRecord.parse(key: kv.key, value: kv.value, modRevision: kv.modRevision)
    return (try CertificateBundle.open(record, with: clusterKey, now: Date()), record, kv.version)
  }

  /// Whether the chain's last certificate is signed by Pebble's issuing root.
  func chainsToPebbleRoot(_ bundle: CertificateBundle) async throws -> Bool {
    let root = try Certificate(pemEncoded: try await pebble.issuingRoot())
    guard let last = try bundle.chainBlocks.last.map({ try Certificate(pemEncoded: $0) }) else { return false }
    return last.issuer == root.subject && root.publicKey.isValidSignature(last.signature, for: last)
  }
}

struct RunningCoordinator {
  let coordinator: ACMECoordinator
  let client: EtcdClient
  let clientTask: Task<Void, any Error>
  let task: Task<Void, any Error>

  /// Cancels the coordinator (it revokes its lease) and closes its client.
  func stop() async {
    task.cancel()
    _ = try? await task.value
    client.shutdown()
    clientTask.cancel()
  }

  /// A crash as etcd sees it: the client goes away first, so no revoke and no keepalive reaches etcd.
  func crash() async {
    client.shutdown()
    clientTask.cancel()
    task.cancel()
    _ = try? await task.value
  }
}
