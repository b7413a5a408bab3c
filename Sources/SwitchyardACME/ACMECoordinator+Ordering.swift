import Crypto
import EtcdClient
import Foundation
import Logging
import ServiceLifecycle
import SwitchyardCerts
import SwitchyardModel
import Synchronization

/// The leader's work on one certificate: decide, order (or resume the order in etcd), prove control of its
/// hosts through HTTP-01 challenges every node answers, finalize, and store the result.
extension ACMECoordinator {
  /// Decides about one certificate and orders it when needed.
  func keep(_ name: CertificateName, hosts: [String], client: ACMEClient, fence: Fence) async throws -> (
    report: ACMEReport.Order, wake: Date
  ) {
    let now = Date()
    var certificate: (hosts: [String], notBefore: Date, notAfter: Date)?
    if let kv = try await etcd.value(of: CertificateRecord.path(for: name)),
      let record = try? CertificateRecord.parse(key: kv.key, value: kv.value, modRevision: kv.modRevision),
      let bundle = try? CertificateBundle.open(record, with: configuration.clusterKey, now: now)
    {
      certificate = (bundle.hosts.map(\.text), bundle.notBefore, bundle.notAfter)
    }
    var order: ACMEOrderRecord?
    if let kv = try await etcd.value(of: ACMEOrderRecord.key(for: name)) {
      order = try? ACMEOrderRecord.parse(kv.value)
    }
    let step = ACMEPlan.step(
      hosts: hosts, certificate: certificate, order: order, now: now, renewalFraction: configuration.renewalFraction)
    switch step {
    case .keep(let renewAt):
      return (.init(name: name.rawValue, hosts: hosts, state: "valid"), renewAt)
    case .wait(let until):
      return (
        .init(
          name: name.rawValue, hosts: hosts, state: "backoff",
          lastError: order?.lastError.map { ACMEText.printable($0, limit: 500) },
          nextAttemptAt: Int64(until.timeIntervalSince1970)), until
      )
    case .order(let reason):
      state.withLock { report in
        report.orders.removeAll { $0.name == name.rawValue }
        report.orders.append(
          .init(name: name.rawValue, hosts: hosts, state: reason == .renewal ? "renewing" : "ordering"))
      }
      var record = order.flatMap { $0.hosts == hosts ? $0 : nil } ?? ACMEOrderRecord(hosts: hosts)
      do {
        try await issue(name, record: &record, client: client, fence: fence)
        return (.init(name: name.rawValue, hosts: hosts, state: "valid"), Date())
      } catch let error as ACMEError where error.code == .notLeader {
        throw error
      } catch is CancellationError {
        throw CancellationError()
      } catch {
        record.attempts += 1
        let wait = ACMEPlan.backoff(
          attempts: record.attempts, minimum: configuration.backoffMinimum, maximum: configuration.backoffMaximum)
        let next = Date().addingTimeInterval(wait.seconds)
        record.nextAttemptAt = Int64(next.timeIntervalSince1970.rounded(.up))
        record.lastError = ACMEText.printable("\(error)", limit: 500)
        logger.info(
          "ACME order failed",
          metadata: [
            "acme.certificate": "\(name)", "acme.error": "\(record.lastError ?? "")",
            "acme.attempts": "\(record.attempts)",
          ])
        try await fenced(fence, [.put(ACMEOrderRecord.key(for: name), record.encoded())])
        return (
          .init(
            name: name.rawValue, hosts: hosts, state: "backoff", lastError: record.lastError,
            nextAttemptAt: record.nextAttemptAt), next
        )
      }
    }
  }

  /// Runs (or resumes) the order in `record` to a stored certificate.
  func issue(_ name: CertificateName, record: inout ACMEOrderRecord, client: ACMEClient, fence: Fence)
    async throws
  {
    let orderKey = ACMEOrderRecord.key(for: name)
    var resumed: (url: String, order: ACMEOrder, key: P256.Signing.PrivateKey)?
    if let url = record.orderURL, ACMEPlan.isSameOrigin(url, as: configuration.directoryURL),
      let keyID = record.keyID, let sealed = record.sealedKey.flatMap({ Data(base64Encoded: $0) }),
      let pem = try? configuration.clusterKey.open(SealedSecret(keyID: keyID, combined: Array(sealed)), for: name),
      let key = try? P256.Signing.PrivateKey(pemRepresentation: String(decoding: pem, as: UTF8.self)),
      let order = try? await client.order(url).order,
      ["pending", "ready", "processing", "valid"].contains(order.status)
    {
      resumed = (url, order, key)
      logger.info(
        "ACME order resumed", metadata: ["acme.certificate": "\(name)", "acme.order.status": "\(order.status)"])
    }
    if resumed == nil {
      let key = P256.Signing.PrivateKey()
      let (url, order) = try await client.newOrder(hosts: record.hosts)
      let sealed = configuration.clusterKey.seal(Array(key.pemRepresentation.utf8), for: name)
      record.orderURL = url
      record.keyID = sealed.keyID
      record.sealedKey = Data(sealed.combined).base64EncodedString()
      try await fenced(fence, [.put(orderKey, record.encoded())])
      resumed = (url, order, key)
      logger.info("ACME order placed", metadata: ["acme.certificate": "\(name)", "acme.order": "\(url)"])
    }
    guard let (orderURL, placed, certificateKey) = resumed else { return }
    var order = placed
    var published: [ACMEChallenge] = []
    do {
      if order.status == "pending" {
        published = try await prove(order, client: client, fence: fence)
        order = try await client.poll(
          orderURL, timeout: configuration.orderTimeout, fetch: { try await $0.order($1) },
          done: { $0.status != "pending" })
      }
      if order.status == "ready" {
        let csr = try ACMECSR.der(hosts: record.hosts, key: certificateKey)
        order = try await client.finalize(order, csr: csr)
      }
      if order.status == "processing" {
        order = try await client.poll(
          orderURL, timeout: configuration.orderTimeout, fetch: { try await $0.order($1) },
          done: { $0.status != "processing" })
      }
      guard order.status == "valid", let certificateURL = order.certificate,
        ACMEPlan.isSameOrigin(certificateURL, as: configuration.directoryURL)
      else {
        throw ACMEError(.problem, "the order is \(ACMEText.printable(order.status, limit: 20))", problem: order.error)
      }
      let chain = try await client.certificateChain(certificateURL)
      let hosts = try record.hosts.map { try HostPattern(validating: $0) }
      let bundle = try CertificateBundle.validate(
        name: name, chainPEM: chain, keyPEM: certificateKey.pemRepresentation, hosts: hosts, now: Date())
      let stored = bundle.record(sealedWith: configuration.clusterKey, source: .acme)
      try await fenced(
        fence,
        [.put(stored.path, stored.jsonValue()), .delete(.key(orderKey))]
          + published.map { .delete(.key($0.key)) })
      logger.info(
        "ACME certificate stored",
        metadata: [
          "acme.certificate": "\(name)", "acme.not_after": "\(CertificateDates.text(bundle.notAfter))",
          "acme.sha256": "\(bundle.sha256Fingerprint)",
        ])
    } catch {
      if !published.isEmpty {
        try? await fenced(fence, published.map { .delete(.key($0.key)) })
      }
      throw error
    }
  }

  /// Publishes the HTTP-01 answer of every pending authorization, says "ready" to the CA, and waits until
  /// each is valid.
  func prove(_ order: ACMEOrder, client: ACMEClient, fence: Fence) async throws -> [ACMEChallenge] {
    var published: [ACMEChallenge] = []
    var pending: [String] = []
    for url in order.authorizations {
      guard ACMEPlan.isSameOrigin(url, as: configuration.directoryURL) else {
        throw ACMEError(.badResponse, "an authorization URL is not at the CA")
      }
      let authorization = try await client.authorization(url).authorization
      if authorization.status == "valid" { continue }
      guard authorization.status == "pending" else {
        throw ACMEError(
          .problem,
          "the authorization for \(ACMEText.printable(authorization.identifier.value, limit: 253)) is \(ACMEText.printable(authorization.status, limit: 20))"
        )
      }
      guard let challenge = authorization.challenges.first(where: { $0.type == "http-01" }), let token = challenge.token
      else { throw ACMEError(.badResponse, "the CA offers no http-01 challenge") }
      let answer = try ACMEChallenge(
        token: token, keyAuthorization: keyAuthorization(token: token, accountKey: client.accountKey.publicKey))
      try await fenced(fence, [.put(answer.key, answer.keyAuthorization, options: PutOptions(lease: fence.leaseID))])
      published.append(answer)
      if challenge.status == "pending" { try await client.respond(to: challenge.url) }
      pending.append(url)
    }
    for url in pending {
      let authorization = try await client.poll(
        url, timeout: configuration.orderTimeout, fetch: { try await $0.authorization($1) },
        done: { $0.status != "pending" })
      guard authorization.status == "valid" else {
        let problem = authorization.challenges.first { $0.type == "http-01" }?.error
        throw ACMEError(
          .problem,
          "the authorization for \(ACMEText.printable(authorization.identifier.value, limit: 253)) is \(ACMEText.printable(authorization.status, limit: 20))",
          problem: problem)
      }
    }
    return published
  }
}
