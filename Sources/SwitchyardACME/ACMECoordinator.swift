import Crypto
import EtcdClient
import Foundation
import Logging
import ServiceLifecycle
import SwitchyardCerts
import SwitchyardModel
import Synchronization

/// What a node's coordinator reports for `/state` (never key material).
public typealias ACMEReport = NodeSnapshot.ACME

/// Obtains and renews the certificates of routes with `acme` by ACME HTTP-01, once for the whole cluster.
///
/// Every load-balancer node runs one; one at a time leads, elected through an etcd lease: the key
/// ``leaderKey`` holds the node id, created in a transaction only when absent, under a lease of
/// ``Configuration/leaseTTL`` kept alive. When the keepalive fails the leader stops at once, and every write
/// it makes is guarded by the key still holding its id under its lease, so a deposed leader changes nothing.
///
/// The leader reads the routes and the certificates; for each route with `acme` it keeps the certificate
/// `acme-<route>` for the route's hosts, ordering it when missing, when the hosts changed, or in the last
/// ``Configuration/renewalFraction`` of its lifetime. Challenges go to `/switchyard/acme/challenges/<token>`
/// under the lease (every node answers them); the result is a ``CertificateRecord`` with its key sealed by
/// the cluster key. The order in progress and its backoff are kept in `/switchyard/acme/orders/<name>`, so
/// the next leader resumes it.
public final class ACMECoordinator: Service, Sendable {
  /// The election key.
  public static let leaderKey = "/switchyard/acme/leader"

  /// Settings; the defaults suit production, tests shorten them.
  public struct Configuration: Sendable {
    /// This node's id, the value of the leader key.
    public var nodeID: String
    /// The CA's directory URL.
    public var directoryURL: String
    /// The PEM file of the roots that the CA's HTTPS certificate is checked against.
    public var trustRootsFile: String
    /// Seals the account key and every certificate key.
    public var clusterKey: ClusterKey
    /// The leader lease's TTL, in seconds (default 10).
    public var leaseTTL: Int64 = 10
    /// How often a follower tries to become leader (default 2 s).
    public var campaignInterval: Duration = .seconds(2)
    /// How often the leader looks at the routes and certificates (default 30 s).
    public var passInterval: Duration = .seconds(30)
    /// The last part of a certificate's lifetime in which it is renewed (default 1/3).
    public var renewalFraction: Double = 1.0 / 3.0
    /// The first wait after a failed order (default 1 minute); doubled per failure.
    public var backoffMinimum: Duration = .seconds(60)
    /// The longest wait after failed orders (default 6 hours).
    public var backoffMaximum: Duration = .seconds(6 * 3600)
    /// Each HTTP request's limit (default 10 s).
    public var requestTimeout: Duration = .seconds(10)
    /// How long authorizations and the order may take to become valid (default 2 minutes).
    public var orderTimeout: Duration = .seconds(120)

    /// Settings with defaults.
    public init(nodeID: String, directoryURL: String, trustRootsFile: String, clusterKey: ClusterKey) {
      self.nodeID = nodeID
      self.directoryURL = directoryURL
      self.trustRootsFile = trustRootsFile
      self.clusterKey = clusterKey
    }
  }

  /// The settings.
  public let configuration: Configuration
  let etcd: EtcdClient
  let logger: Logger
  let state: Mutex<ACMEReport>

  /// Creates a coordinator; it does nothing until ``run()``.
  public init(configuration: Configuration, etcd: EtcdClient, logger: Logger) {
    self.configuration = configuration
    self.etcd = etcd
    self.logger = logger
    self.state = Mutex(ACMEReport(leader: nil, isLeader: false, orders: []))
  }

  /// Whether this node leads, who does, and each certificate's state as this node last saw it.
  public var report: ACMEReport { state.withLock { $0 } }

  /// Campaigns, and leads while elected, until cancelled or graceful shutdown. A leader that stops revokes
  /// its lease, so the next one takes over at once.
  public func run() async throws {
    try await cancelWhenGracefulShutdown {
      while !Task.isCancelled {
        do {
          if let lease = try await self.campaign() {
            try await self.lead(lease)
          }
        } catch is CancellationError {
          break
        } catch {
          if Task.isCancelled { break }
          self.logger.info(
            "ACME coordinator: not leading",
            metadata: ["acme.reason": "\(error)", "acme.node": "\(self.configuration.nodeID)"])
        }
        self.state.withLock { $0.isLeader = false }
        try? await Task.sleep(for: self.configuration.campaignInterval)
      }
    }
  }

  // MARK: - Election

  /// Tries once to create the leader key under a new lease; the lease when elected.
  private func campaign() async throws -> Lease? {
    // A read first: while someone leads, followers write nothing (no lease granted and revoked every try).
    if let current = try await etcd.value(of: Self.leaderKey) {
      let leader = ACMEText.printable(current.valueString, limit: 128)
      state.withLock {
        $0.leader = leader
        $0.isLeader = false
        $0.orders = []
      }
      return nil
    }
    let lease = try await etcd.grantLease(ttl: configuration.leaseTTL)
    let result = try await etcd.txn(
      Txn(
        compare: [.createRevision(Self.leaderKey, .equal, 0)],
        success: [.put(Self.leaderKey, configuration.nodeID, options: PutOptions(lease: lease.id))],
        failure: [.get(.key(Self.leaderKey))]
      ))
    if result.succeeded {
      logger.info("ACME coordinator: elected", metadata: ["acme.node": "\(configuration.nodeID)"])
      state.withLock {
        $0.leader = configuration.nodeID
        $0.isLeader = true
      }
      return lease
    }
    try? await etcd.revokeLease(lease.id)
    var leader: String?
    if case .get(let range)? = result.responses.first, let kv = range.kvs.first {
      leader = ACMEText.printable(kv.valueString, limit: 128)
    }
    state.withLock {
      $0.leader = leader
      $0.isLeader = false
      $0.orders = []
    }
    return nil
  }

  /// Leads until the lease is lost (throws) or the task is cancelled (revokes the lease).
  private func lead(_ lease: Lease) async throws {
    let fence = Fence(nodeID: configuration.nodeID, leaseID: lease.id)
    do {
      try await withThrowingTaskGroup(of: Void.self) { group in
        group.addTask {
          for try await _ in self.etcd.keepAlive(lease) {}
          throw ACMEError(.notLeader, "the leader lease's keepalive ended")
        }
        let changed = ChangeFlag()
        group.addTask {
          // Routes and certificates changed (a new route with acme, a deleted certificate): look again at once
          // instead of at the next pass. Level-triggered: the pass reads everything anyway.
          for try await response in self.etcd.watch(.prefix("/switchyard/")) where !response.events.isEmpty {
            let relevant = response.events.contains {
              $0.kv.keyString.hasPrefix(Route.root) || $0.kv.keyString.hasPrefix(CertificateRecord.root)
            }
            if relevant { changed.set() }
          }
          throw ACMEError(.notLeader, "the watch of routes and certificates ended")
        }
        group.addTask { try await self.leadLoop(fence, changed: changed) }
        try await group.next()
        group.cancelAll()
      }
    } catch {
      if Task.isCancelled {
        // A graceful stop: hand over at once. (A crash leaves the lease to expire.)
        let etcd = self.etcd
        await Task { try? await etcd.revokeLease(lease.id) }.value
      }
      throw error
    }
  }

  /// The leader's guard: every write holds only while the leader key has this node's id under this lease.
  struct Fence {
    var nodeID: String
    var leaseID: Int64
    var compare: [Compare] {
      [.value(ACMECoordinator.leaderKey, .equal, nodeID), .lease(ACMECoordinator.leaderKey, .equal, leaseID)]
    }
  }

  func fenced(_ fence: Fence, _ operations: [TxnOp]) async throws {
    let result = try await etcd.txn(Txn(compare: fence.compare, success: operations))
    guard result.succeeded else { throw ACMEError(.notLeader, "this node no longer holds the ACME lease") }
  }

  // MARK: - Leading

  /// Passes until cancelled; between passes it sleeps until the next one is due or `changed` is set.
  private func leadLoop(_ fence: Fence, changed: ChangeFlag) async throws {
    var client: ACMEClient?
    defer { if let client { Task { await client.shutdown() } } }
    while true {
      var wake = Date().addingTimeInterval(configuration.passInterval.seconds)
      do {
        if client == nil { client = try await accountClient(fence) }
        if let client { wake = min(wake, try await pass(client, fence)) }
      } catch let error as ACMEError where error.code == .notLeader {
        throw error
      } catch is CancellationError {
        throw CancellationError()
      } catch {
        logger.info("ACME pass failed", metadata: ["acme.error": "\(error)"])
      }
      while wake.timeIntervalSinceNow > 0, !changed.isSet {
        try await Task.sleep(for: .milliseconds(Int64(min(0.25, wake.timeIntervalSinceNow) * 1000) + 1))
      }
      changed.clear()
    }
  }

  /// The client of the cluster's account: read from etcd, or created at the CA and stored.
  private func accountClient(_ fence: Fence) async throws -> ACMEClient {
    let key = configuration.clusterKey
    if let kv = try await etcd.value(of: ACMEAccountRecord.key) {
      let record = try ACMEAccountRecord.parse(kv.value)
      guard ACMEPlan.isSameOrigin(record.accountURL, as: configuration.directoryURL),
        let combined = Data(base64Encoded: record.sealedKey)
      else { throw ACMEError(.invalidInput, "the ACME account record is not for this CA or is malformed") }
      let raw = try key.open(
        SealedSecret(keyID: record.keyID, combined: Array(combined)), for: ACMEAccountRecord.sealName)
      let accountKey = try P256.Signing.PrivateKey(rawRepresentation: raw)
      return try makeClient(accountKey, accountURL: record.accountURL)
    }
    let accountKey = P256.Signing.PrivateKey()
    let client = try makeClient(accountKey, accountURL: nil)
    do {
      let url = try await client.newAccount()
      let sealed = key.seal(Array(accountKey.rawRepresentation), for: ACMEAccountRecord.sealName)
      let record = ACMEAccountRecord(
        accountURL: url, keyID: sealed.keyID, sealedKey: Data(sealed.combined).base64EncodedString())
      let result = try await etcd.txn(
        Txn(
          compare: fence.compare + [.createRevision(ACMEAccountRecord.key, .equal, 0)],
          success: [.put(ACMEAccountRecord.key, record.encoded())]))
      guard result.succeeded else { throw ACMEError(.notLeader, "the account record could not be written") }
      logger.info("ACME account created", metadata: ["acme.account": "\(url)"])
      return client
    } catch {
      await client.shutdown()
      throw error
    }
  }

  private func makeClient(_ accountKey: P256.Signing.PrivateKey, accountURL: String?) throws -> ACMEClient {
    try ACMEClient(
      directoryURL: configuration.directoryURL, trustRootsFile: configuration.trustRootsFile, accountKey: accountKey,
      accountURL: accountURL, requestTimeout: configuration.requestTimeout, logger: logger)
  }

  /// One look at every route with `acme`; returns when the next look is due.
  private func pass(_ client: ACMEClient, _ fence: Fence) async throws -> Date {
    let routes = try await etcd.get(.prefix(Route.root)).kvs.compactMap {
      try? Route.parse(key: $0.key, value: $0.value, modRevision: $0.modRevision)
    }
    var wake = Date.distantFuture
    var orders: [ACMEReport.Order] = []
    var wanted: [(name: CertificateName, hosts: [String])] = []
    for route in routes where route.acme {
      let hosts = route.hosts.filter { $0.kind == .exact }.map(\.text).sorted()
      guard let name = try? CertificateName(validating: "acme-\(route.name.rawValue)"), !hosts.isEmpty else {
        orders.append(
          .init(
            name: "acme-\(route.name.rawValue)", hosts: hosts, state: "waiting",
            lastError: "the route's name is too long for a certificate name, or it has no exact host"))
        continue
      }
      wanted.append((name, hosts))
    }
    // An order whose route is gone or no longer asks for ACME is dropped, with its backoff, before any order
    // of this pass (which may take minutes) begins.
    let kept = Set((wanted.map(\.name.rawValue) + orders.map(\.name)).map { ACMEOrderRecord.root + $0 })
    let stale = try await etcd.get(.prefix(ACMEOrderRecord.root), options: GetOptions(keysOnly: true)).kvs
      .filter { !kept.contains($0.keyString) }
    if !stale.isEmpty { try await fenced(fence, stale.map { .delete(.key($0.key)) }) }
    state.withLock { $0.orders = orders }
    for (name, hosts) in wanted {
      let entry = try await keep(name, hosts: hosts, client: client, fence: fence)
      orders.append(entry.report)
      wake = min(wake, entry.wake)
      state.withLock { $0.orders = orders }
    }
    state.withLock { $0.orders = orders }
    return wake
  }

}

/// Set by the watch when routes or certificates change, read and cleared by the leader's loop.
final class ChangeFlag: Sendable {
  private let value = Mutex(false)
  var isSet: Bool { value.withLock { $0 } }
  func set() { value.withLock { $0 = true } }
  func clear() { value.withLock { $0 = false } }
}

extension Duration {
  /// The duration in seconds, as a floating-point number.
  var seconds: TimeInterval {
    TimeInterval(components.seconds) + TimeInterval(components.attoseconds) / 1e18
  }
}
