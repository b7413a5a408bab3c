import EtcdClient
import Foundation
import NIOSSL
import SwitchyardCerts
import SwitchyardLab
import SwitchyardModel
import SwitchyardPKI
import SwitchyardTestSupport
import Synchronization
import Testing

/// Issue 27 in the fault suite: a certificate renewed while the etcd member lb1 watches is frozen, under
/// HTTPS load on both nodes, then a record whose key does not match its certificate.
extension ScenarioContext {
  /// The certificate's name in etcd, and the host it serves.
  static let shopCertificate = "shop"
  static let shopHost = "shop.example.test"

  /// A new leaf for `shop.example.test` from the cluster's CA, validated as `switchyard cert add` does.
  func issueShop() throws -> CertificateBundle {
    let pair = try cluster.authority.issue(
      name: "shop-\(UUID().uuidString.prefix(8).lowercased())", commonName: Self.shopHost,
      usage: .server(ipAddresses: [], dnsNames: [Self.shopHost]), days: 2)
    return try CertificateBundle.validate(
      name: try CertificateName(validating: Self.shopCertificate),
      chainPEM: try String(contentsOfFile: pair.certificate, encoding: .utf8),
      keyPEM: try String(contentsOfFile: pair.key, encoding: .utf8), hosts: nil, now: Date())
  }

  /// `bundle`'s record as `switchyard cert add` writes it: the key sealed with the cluster key.
  func shopRecord(_ bundle: CertificateBundle) -> [UInt8] {
    bundle.record(sealedWith: cluster.clusterKey, source: .manual).jsonValue()
  }

  /// `shop`'s key in etcd.
  var shopKey: String { CertificateRecord.root + Self.shopCertificate }

  /// The certificate `lb` presents for `shop.example.test` over HTTPS, verified against the cluster's CA.
  func shopServed(by lb: String) async throws -> PeerCertificate {
    try await TLSClient.handshake(
      host: cluster.lab.host(lb).address, port: FaultCluster.httpsPort, serverName: Self.shopHost,
      trustRootsPEMFile: cluster.authority.certificate, timeout: .seconds(2))
  }

  /// Puts certificate `shop` and waits until both nodes serve it; the teardown deletes it.
  func certificateSetup() async throws {
    let bundle = try issueShop()
    fixture.wrote(shopKey)
    _ = try await etcd.put(shopKey, value: shopRecord(bundle))
    try await retrying(timeout: .seconds(20), every: .milliseconds(100)) {
      for lb in FaultCluster.lbNames {
        let peer = try await shopServed(by: lb)
        guard peer.sha256Fingerprint.lowercased() == bundle.sha256Fingerprint.lowercased() else {
          throw TestSupportError("\(lb) serves \(peer), not shop's first certificate")
        }
      }
    }
    try await waitReloadsSettled()
  }

  /// Deletes `shop` and waits until neither node lists it.
  func certificateTeardown() async throws {
    try await removeFixture()
    try await retrying(timeout: .seconds(10), every: .milliseconds(200)) {
      for lb in FaultCluster.lbNames
      where try await cluster.state(lb).certificates?.contains(where: { $0.name == Self.shopCertificate }) == true {
        throw TestSupportError("\(lb) still lists certificate shop")
      }
    }
  }

  /// HTTPS load on both nodes (full handshakes with SNI `shop.example.test` verified against the CA, and
  /// GETs over HTTPS); the member lb1 watches frozen (SIGSTOP) for 12 s, its leadership moved off first;
  /// `shop` renewed (a new leaf, same name) 0.5 s into the freeze, while lb1's watch still hangs on the
  /// frozen member; after the watches moved, a record for `shop` whose key belongs to the renewed
  /// certificate but whose chain is another's, then the renewed record again.
  ///
  /// Expected: 0 failed handshakes and requests; each node serves the renewed certificate within the
  /// change deadline of etcd acknowledging the put, and never the old one again; the hostile record is
  /// reported invalid in both nodes' `/state` ("does not match") while the renewed certificate stays
  /// served; after the thaw both nodes serve the renewed one from HAProxy and from their files, the record
  /// in etcd is the one put; 0 reloads and no etcd write by the controllers besides their node records.
  func certificateRenewedWhileFrozen() async throws {
    let log = EtcdWriteLog(etcd, from: try await etcd.get(.key("/")).header.revision + 1)
    defer { log.stop() }
    let reloadsBefore = try await reloadCount()
    let old = try await shopServed(by: "lb1").sha256Fingerprint.lowercased()
    let load = try HTTPSLoad.start(cluster, serverName: Self.shopHost)
    var member: ManagedProcess?
    defer { member?.signal(SIGCONT) }
    let renewed = try issueShop()
    let renewedRecord = shopRecord(renewed)
    let new = renewed.sha256Fingerprint.lowercased()
    var written = ContinuousClock.now
    do {
      try await Task.sleep(for: .seconds(1))
      let watched = (try await cluster.state("lb1").etcdWatchEndpoint).flatMap(cluster.etcdMember(at:)) ?? "etcd1"
      let other = (try? await cluster.state("lb2").etcdWatchEndpoint)?.flatMap(cluster.etcdMember(at:))
      if let moved = try await cluster.moveLeadership(off: watched, etcd) {
        note("leadership moved from \(watched) to \(moved) first")
      }
      note("froze \(watched); lb1 watched it, lb2 watched \(other ?? "none")")
      member = cluster.etcdProcess(watched)
      member?.signal(SIGSTOP)
      faultBegins()
      try await Task.sleep(for: .milliseconds(500))
      let requested = ContinuousClock.now
      try await log.put(shopKey, renewedRecord)
      written = .now
      note("renewal acknowledged by etcd \(requested.duration(to: written)) after it was sent")
      let applied = try await waitServedEverywhere(new, load: load, since: written)
      record(changeApplied: applied)
      for lb in FaultCluster.lbNames
      where applied[lb].flatMap({ $0 }).map({ $0 > FaultSuiteTests.changeDeadline }) ?? true {
        Issue.record("\(name): \(lb) served the renewed certificate after \(describe(applied[lb])) (limit 3 s)")
      }
      // After the watches moved to a member that answers.
      try await holdFault(for: .seconds(5))
      try await hostileShopRecord(renewed, log: log)
      try await log.put(shopKey, renewedRecord)
      try await waitShopState(.served(new), "after the renewed record was put again")
      try await holdFault(for: .seconds(12))
      member?.signal(SIGCONT)
      member = nil
    } catch {
      _ = await load.stop()
      throw error
    }
    let healed = ContinuousClock.now
    let convergence = await cluster.timeUntil(
      nodes: FaultCluster.lbNames, timeout: FaultSuiteTests.convergenceDeadline + .seconds(8), every: .milliseconds(50)
    ) { lb, _ in
      await shopMismatch(lb, renewed) == nil
    } refresh: {
      nil
    }
    record(convergence: convergence)
    for lb in FaultCluster.lbNames
    where convergence[lb].flatMap({ $0 }).map({ $0 > FaultSuiteTests.convergenceDeadline }) ?? true {
      Issue.record(
        "\(name): \(lb) serves shop as etcd holds it after \(describe(convergence[lb])) (limit 2 s): \(await shopMismatch(lb, renewed) ?? "equal now")"
      )
    }
    note("thawed; both nodes checked \(healed.duration(to: .now)) later")
    let seen = await load.stop()
    judge(seen, old: old, new: new, written: written)
    let inEtcd = try await etcd.value(of: shopKey)
    #expect(inEtcd?.value == renewedRecord, "\(name): shop's record in etcd is not the one put")
    try await judgeWrites(log)
    note("reloads during the body: \(Int(try await reloadCount() - reloadsBefore))")
  }

  /// Writes a record for `shop` with another certificate's chain and `renewed`'s sealed key (it opens,
  /// but does not match the leaf): both nodes must report it invalid and keep serving `renewed`.
  private func hostileShopRecord(_ renewed: CertificateBundle, log: EtcdWriteLog) async throws {
    let stranger = try issueShop()
    var hostile = try JSONSerialization.jsonObject(with: Data(shopRecord(stranger))) as? [String: Any] ?? [:]
    let good = try JSONSerialization.jsonObject(with: Data(shopRecord(renewed))) as? [String: Any] ?? [:]
    hostile["sealed_key"] = good["sealed_key"]
    try await log.put(shopKey, Array(try JSONSerialization.data(withJSONObject: hostile)))
    let put = ContinuousClock.now
    try await waitShopState(.invalid(renewed.sha256Fingerprint.lowercased()), "after the hostile record")
    note(
      "hostile record (key of another certificate) reported invalid by both nodes \(put.duration(to: .now)) after its put"
    )
    // Served on: the handshake load judges every handshake; one more look right now.
    for lb in FaultCluster.lbNames {
      let peer = try await shopServed(by: lb)
      #expect(
        peer.sha256Fingerprint.lowercased() == renewed.sha256Fingerprint.lowercased(),
        "\(name): \(lb) serves \(peer) after the hostile record")
    }
  }

  /// What `/state` should say of `shop`.
  enum ShopState {
    case served(String)
    /// Refused in etcd, the last good one (this fingerprint) still served.
    case invalid(String)
  }

  /// Waits until both nodes' `/state` say `expected` of `shop` (within 5 s).
  private func waitShopState(_ expected: ShopState, _ when: String) async throws {
    do {
      try await retrying(timeout: .seconds(5), every: .milliseconds(100)) {
        for lb in FaultCluster.lbNames {
          let entry = try await cluster.state(lb).certificates?.first { $0.name == Self.shopCertificate }
          let fingerprint = entry?.sha256Fingerprint?.lowercased()
          switch expected {
          case .served(let want):
            guard entry?.state == "served", fingerprint == want else {
              throw TestSupportError("\(lb): shop is \(String(describing: entry))")
            }
          case .invalid(let want):
            guard entry?.state == "invalid", entry?.problem?.contains("does not match") == true, fingerprint == want
            else { throw TestSupportError("\(lb): shop is \(String(describing: entry))") }
          }
        }
      }
    } catch {
      Issue.record("\(name): \(when): \(error)")
    }
  }

  /// Waits until the load has seen `fingerprint` on every node; returns, per node, the time from `since`
  /// to its first handshake that got it (nil: not within 10 s).
  private func waitServedEverywhere(
    _ fingerprint: String, load: HTTPSLoad, since: ContinuousClock.Instant
  ) async throws -> [String: Duration?] {
    var times: [String: Duration?] = [:]
    while times.count < FaultCluster.lbNames.count, since.duration(to: .now) < .seconds(10) {
      for lb in FaultCluster.lbNames where times[lb] == nil {
        if let first = load.firstSeen(fingerprint, on: lb) { times[lb] = max(.zero, since.duration(to: first)) }
      }
      try await Task.sleep(for: .milliseconds(50))
    }
    for lb in FaultCluster.lbNames where times[lb] == nil { times[lb] = .some(nil) }
    note(
      "renewed certificate served after \(FaultCluster.lbNames.map { "\($0) \(describe(times[$0]))" }.joined(separator: ", "))"
    )
    return times
  }

  /// Why `lb` does not serve `shop` as etcd holds it (`bundle`): `/state`, a handshake and the file on disk.
  private func shopMismatch(_ lb: String, _ bundle: CertificateBundle) async -> String? {
    let want = bundle.sha256Fingerprint.lowercased()
    do {
      let entry = try await cluster.state(lb).certificates?.first { $0.name == Self.shopCertificate }
      guard entry?.state == "served", entry?.sha256Fingerprint?.lowercased() == want else {
        return "/state has \(String(describing: entry))"
      }
      let peer = try await shopServed(by: lb)
      guard peer.sha256Fingerprint.lowercased() == want else { return "it presents \(peer)" }
      let file = try String(contentsOfFile: "\(cluster.stateDirectory(lb))/tls/certs/shop.pem", encoding: .utf8)
      guard file.hasPrefix(bundle.chainBlocks[0]) else {
        return "its file tls/certs/shop.pem holds another certificate"
      }
      return nil
    } catch {
      return "\(error)"
    }
  }

  /// Counts the HTTPS load in the figures and checks what each node presented: only the old and the
  /// renewed certificate, and never the old one after a node's first renewed handshake.
  private func judge(_ seen: HTTPSLoad.Report, old: String, new: String, written: ContinuousClock.Instant) {
    addRequests(seen.requests, failures: seen.failures, errors: seen.errors)
    for lb in FaultCluster.lbNames {
      let handshakes = seen.handshakes.filter { $0.lb == lb }
      let strays = Set(handshakes.map(\.fingerprint)).subtracting([old, new])
      #expect(strays.isEmpty, "\(name): \(lb) presented other certificates: \(strays)")
      let firstNew = handshakes.filter { $0.fingerprint == new }.map(\.finished).min()
      let wentBack =
        firstNew.map { first in handshakes.filter { $0.fingerprint == old && $0.started > first }.count } ?? 0
      #expect(wentBack == 0, "\(name): \(lb) presented the old certificate \(wentBack) times after the renewed one")
      let early = handshakes.filter { $0.fingerprint == new && $0.finished < written }.count
      note(
        "\(lb): \(handshakes.count) handshakes (\(handshakes.filter { $0.fingerprint == new }.count) renewed, "
          + "\(early) before etcd acknowledged the put), \(seen.gets[lb, default: 0]) HTTPS GETs, "
          + "\(seen.failures[lb, default: 0]) failed")
    }
  }

  private func describe(_ time: Duration??) -> String {
    guard let time = time ?? nil else { return "never" }
    return "\(time)"
  }
}

/// HTTPS load on every LB node: on each, two tasks doing full handshakes (a new connection each) and one
/// doing `GET /` over HTTPS with `Host` and SNI `serverName`, every answer verified against the cluster's
/// CA, each pausing 10 ms between attempts. Every handshake's certificate is kept with its times.
final class HTTPSLoad: Sendable {
  struct Handshake: Sendable {
    var lb: String
    var fingerprint: String
    var started: ContinuousClock.Instant
    var finished: ContinuousClock.Instant
  }

  struct Report {
    var requests = 0
    var failures: [String: Int] = [:]
    var errors: [String] = []
    var gets: [String: Int] = [:]
    var handshakes: [Handshake] = []
  }

  private let state = Mutex(Report())
  private let tasks = Mutex<[Task<Void, Never>]>([])

  private init() {}

  static func start(_ cluster: FaultCluster, serverName: String) throws -> HTTPSLoad {
    let load = HTTPSLoad()
    let context = try TLSClient.context(trustRootsPEMFile: cluster.authority.certificate)
    let roots = cluster.authority.certificate
    var started: [Task<Void, Never>] = []
    for lb in FaultCluster.lbNames {
      let host = cluster.lab.host(lb).address
      for _ in 0..<2 {
        started.append(
          Task {
            while !Task.isCancelled {
              let begun = ContinuousClock.now
              do {
                let peer = try await TLSClient.handshake(
                  host: host, port: FaultCluster.httpsPort, serverName: serverName, context: context,
                  timeout: SteadyLoad.requestTimeout)
                load.handshake(
                  Handshake(lb: lb, fingerprint: peer.sha256Fingerprint.lowercased(), started: begun, finished: .now))
              } catch {
                load.failed(lb, "handshake: \(error)")
              }
              try? await Task.sleep(for: .milliseconds(10))
            }
          })
      }
      started.append(
        Task {
          while !Task.isCancelled {
            do {
              let response = try await TLSClient.get(
                host: host, port: FaultCluster.httpsPort, path: "/", hostHeader: serverName, serverName: serverName,
                trustRootsPEMFile: roots, timeout: SteadyLoad.requestTimeout)
              if response.status == 200 { load.got(lb) } else { load.failed(lb, "GET answered \(response.status)") }
            } catch {
              load.failed(lb, "GET: \(error)")
            }
            try? await Task.sleep(for: .milliseconds(10))
          }
        })
    }
    load.tasks.withLock { $0 = started }
    return load
  }

  private func handshake(_ handshake: Handshake) {
    state.withLock {
      $0.requests += 1
      $0.handshakes.append(handshake)
    }
  }

  private func got(_ lb: String) {
    state.withLock {
      $0.requests += 1
      $0.gets[lb, default: 0] += 1
    }
  }

  private func failed(_ lb: String, _ error: String) {
    state.withLock {
      $0.requests += 1
      $0.failures[lb, default: 0] += 1
      if $0.errors.count < 6 { $0.errors.append("\(lb) https: \(error)") }
    }
  }

  /// When the first handshake with `lb` that got `fingerprint` finished, if one did.
  func firstSeen(_ fingerprint: String, on lb: String) -> ContinuousClock.Instant? {
    state.withLock { $0.handshakes.filter { $0.lb == lb && $0.fingerprint == fingerprint }.map(\.finished).min() }
  }

  /// Stops the load (letting the attempts in flight end) and says what it saw.
  func stop() async -> Report {
    let running = tasks.withLock { $0 }
    for task in running { task.cancel() }
    for task in running { await task.value }
    return state.withLock { $0 }
  }
}
