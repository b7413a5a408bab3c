import EtcdClient
import Foundation
import Logging
import SwitchyardLocal
import SwitchyardModel
import SwitchyardPKI
import SwitchyardTestSupport
import Testing

/// Issue 12 against a real etcd with TLS (client certificates required) and authentication, set up exactly
/// as `switchyard up --secure` sets it up: ``LocalSecurity`` makes the CA, certificates and passwords, and
/// ``LocalSecurity/configureAuth(_:users:)`` the roles and users.
@Suite(.serialized) struct SecurityTests {
  /// A secure etcd with users `backend-1` (registrar) and `lb1` (controller) besides `root`, `status` and
  /// `operator`, and simple tokens that expire after `tokenTTL` seconds without use.
  private func withSecureEtcd(
    tokenTTL: Int = 300,
    _ body: (LocalSecurity, [String]) async throws -> Void
  ) async throws {
    let directory = try TemporaryDirectory(prefix: "secure")
    defer { directory.remove() }
    let security = LocalSecurity(home: directory.path)
    try security.create(users: AccessPolicy.clusterUsers + ["backend-1", "lb1"])
    let root = security.clientPair(for: AccessPolicy.root)
    let files = TLSFiles(
      caCertificate: security.caCertificate,
      serverCertificate: security.memberPair.certificate,
      serverKey: security.memberPair.key,
      clientCertificate: root.certificate,
      clientKey: root.key
    )
    let options = EtcdCluster.Options(tls: files, extraArguments: ["--auth-token-ttl", String(tokenTTL)])
    try await EtcdCluster.with(members: 1, options: options) { cluster in
      let endpoints = cluster.endpoints.map { "https://\($0)" }
      let setup = try security.configuration(
        for: AccessPolicy.root, endpoints: endpoints.joined(separator: ","), withPassword: false)
      try await withEtcdClient(configuration: setup, logger: quiet) { etcd in
        try await security.configureAuth(
          etcd,
          users: [("backend-1", AccessPolicy.registrarRole), ("lb1", AccessPolicy.controllerRole)]
        )
      }
      try await body(security, endpoints)
    }
  }

  private func client<T: Sendable>(
    _ security: LocalSecurity,
    _ endpoints: [String],
    as user: String,
    withPassword: Bool = true,
    change: (inout EtcdConfiguration) -> Void = { _ in },
    _ body: (EtcdClient) async throws -> T
  ) async throws -> T {
    var configuration = try security.configuration(
      for: user, endpoints: endpoints.joined(separator: ","), withPassword: withPassword)
    configuration.dialTimeout = .seconds(2)
    configuration.requestTimeout = .seconds(4)
    change(&configuration)
    return try await withEtcdClient(configuration: configuration, logger: quiet, body)
  }

  /// Runs `body`, which must fail with an ``EtcdError``; returns it.
  private func failure(_ body: () async throws -> Void) async -> EtcdError? {
    do {
      try await body()
      return nil
    } catch let error as EtcdError {
      return error
    } catch {
      Issue.record("not an EtcdError: \(error)")
      return nil
    }
  }

  @Test func rolesAllowWhatTheirPartNeedsAndNothingElse() async throws {
    try await withSecureEtcd { security, endpoints in
      try await client(security, endpoints, as: "backend-1") { etcd in
        try await etcd.put("/services/backend/backend-1", value: #"{"address":"127.0.0.1","port":9001}"#)
        let own = try await etcd.get(.prefix("/services/backend/")).kvs.count
        #expect(own == 1)
        let outside = await failure { _ = try await etcd.put("/elsewhere", value: "x") }
        #expect(outside?.code == .permissionDenied, "\(String(describing: outside))")
        #expect(outside?.message.contains("permission denied") == true)
        let wholePrefix = await failure { _ = try await etcd.delete(.prefix("/services/")) }
        #expect(wholePrefix?.code == .permissionDenied, "\(String(describing: wholePrefix))")
        let everything = await failure { _ = try await etcd.delete(.prefix("")) }
        #expect(everything?.code == .permissionDenied)
        // Its own registration it may delete, key by key.
        try await etcd.put("/services/backend/scratch", value: "{}")
        let deleted = try await etcd.delete(.key("/services/backend/scratch")).deleted
        #expect(deleted == 1)
      }
      for user in ["lb1", AccessPolicy.statusUser] {
        try await client(security, endpoints, as: user) { etcd in
          let visible = try await etcd.get(.prefix("/services/")).kvs.count
          #expect(visible == 1)
          let write = await failure { _ = try await etcd.put("/services/backend/lb", value: "{}") }
          #expect(write?.code == .permissionDenied, "\(user): \(String(describing: write))")
          let delete = await failure { _ = try await etcd.delete(.key("/services/backend/backend-1")) }
          #expect(delete?.code == .permissionDenied, "\(user): \(String(describing: delete))")
          let outside = await failure { _ = try await etcd.get(.key("/elsewhere")) }
          #expect(outside?.code == .permissionDenied, "\(user): \(String(describing: outside))")
          let writeOutside = await failure { _ = try await etcd.put("/elsewhere", value: "x") }
          #expect(writeOutside?.code == .permissionDenied, "\(user): \(String(describing: writeOutside))")
        }
      }
      // A client certificate alone (no password, so no token) is no user: its common name is `<user>.tls`.
      try await client(security, endpoints, as: "backend-1", withPassword: false) { etcd in
        let anonymous = await failure { _ = try await etcd.put("/services/backend/anonymous", value: "{}") }
        #expect(anonymous != nil, "a certificate without a password could write")
      }
      try await client(security, endpoints, as: AccessPolicy.root) { etcd in
        let keys = try await etcd.get(.prefix("")).kvs.map(\.keyString)
        #expect(keys == ["/services/backend/backend-1"])
      }
    }
  }

  /// Issue 26: an LB node's user (`lb1`, role `controller` and its own `node-lb1`) may write its own record,
  /// `/switchyard/nodes/lb1`, under a lease and revoke it, and no other; `status` and the node read them all;
  /// a registrar reads and writes none.
  @Test func eachNodeWritesItsOwnRecordOnly() async throws {
    try await withSecureEtcd { security, endpoints in
      try await client(security, endpoints, as: "lb1") { etcd in
        let lease = try await etcd.grantLease(ttl: 10)
        try await etcd.put("/switchyard/nodes/lb1", value: "{}", options: PutOptions(lease: lease.id))
        let others = ["lb2", "lb10", "", "lb1/x"].map { "/switchyard/nodes/\($0)" }
        for key in others {
          let other = await failure { _ = try await etcd.put(key, value: "{}") }
          #expect(other?.code == .permissionDenied, "\(key): \(String(describing: other))")
        }
        let wholePrefix = await failure { _ = try await etcd.delete(.prefix("/switchyard/nodes/")) }
        #expect(wholePrefix?.code == .permissionDenied, "\(String(describing: wholePrefix))")
        #expect(try await etcd.get(.prefix("/switchyard/nodes/")).kvs.map(\.keyString) == ["/switchyard/nodes/lb1"])
        try await etcd.revokeLease(lease.id)
        #expect(try await etcd.get(.prefix("/switchyard/nodes/")).kvs.isEmpty)
      }
      try await client(security, endpoints, as: AccessPolicy.statusUser) { etcd in
        let records = try await etcd.get(.prefix("/switchyard/nodes/")).kvs
        #expect(records.isEmpty)
        let write = await failure { _ = try await etcd.put("/switchyard/nodes/status", value: "{}") }
        #expect(write?.code == .permissionDenied, "\(String(describing: write))")
      }
      try await client(security, endpoints, as: "backend-1") { etcd in
        let read = await failure { _ = try await etcd.get(.prefix("/switchyard/nodes/")) }
        #expect(read?.code == .permissionDenied, "\(String(describing: read))")
        let write = await failure { _ = try await etcd.put("/switchyard/nodes/lb1", value: "{}") }
        #expect(write?.code == .permissionDenied, "\(String(describing: write))")
      }
    }
  }

  /// Issue 24: routes and service settings are the operator's. The user `operator` may put and delete them (and
  /// overrides) and read registrations; a registrar can neither write, delete nor read them; a controller (and
  /// `status`) reads and watches them and writes nothing.
  @Test func routesAndSettingsAreTheOperatorsOnly() async throws {
    try await withSecureEtcd { security, endpoints in
      let web = try ServiceName(validating: "web")
      let route = try Route(name: RouteName(validating: "web"), service: web, pathPrefix: "/web", stripPrefix: true)
      let settings = try ServiceSettings(service: web, balance: .leastconn)
      let override = "\(InstanceOverride.root)web/web-1"
      _ = try await client(security, endpoints, as: "backend-1") { etcd in
        try await etcd.put("/services/web/web-1", value: #"{"address":"127.0.0.1","port":9001}"#)
      }
      try await client(security, endpoints, as: AccessPolicy.operatorUser) { etcd in
        try await etcd.put(route.path, value: route.encoded())
        try await etcd.put(settings.path, value: settings.encoded())
        try await etcd.put(override, value: #"{"state":"drain"}"#)
        // `route ls` counts instances; `drain` checks that the instance is registered.
        let registered = try await etcd.get(.prefix("/services/")).kvs.map(\.keyString)
        #expect(registered == ["/services/web/web-1"])
        let registration = await failure { _ = try await etcd.put("/services/web/intruder", value: "{}") }
        #expect(registration?.code == .permissionDenied, "\(String(describing: registration))")
        let unregister = await failure { _ = try await etcd.delete(.key("/services/web/web-1")) }
        #expect(unregister?.code == .permissionDenied, "\(String(describing: unregister))")
        let outside = await failure { _ = try await etcd.put("/elsewhere", value: "x") }
        #expect(outside?.code == .permissionDenied, "\(String(describing: outside))")
        let users = await failure { _ = try await etcd.users() }
        #expect(users?.code == .permissionDenied, "\(String(describing: users))")
      }
      for user in ["lb1", AccessPolicy.statusUser] {
        try await client(security, endpoints, as: user) { etcd in
          let routes = try await etcd.get(.prefix(Route.root))
          #expect(routes.kvs.map(\.value) == [route.encoded()], "\(user)")
          let services = try await etcd.get(.prefix(ServiceSettings.root)).kvs.map(\.value)
          #expect(services == [settings.encoded()], "\(user)")
          // A controller watches both prefixes from its read's revision + 1.
          let next = routes.header.revision + 1
          let watches = [Route.root, ServiceSettings.root].map {
            etcd.watch(.prefix($0), options: WatchOptions(startRevision: next))
          }
          for (forbidden, put) in [
            (route.path, route.encoded()), (settings.path, settings.encoded()), (override, Array("{}".utf8)),
          ] {
            let write = await failure { _ = try await etcd.put(forbidden, value: put) }
            #expect(write?.code == .permissionDenied, "\(user) put \(forbidden): \(String(describing: write))")
            let delete = await failure { _ = try await etcd.delete(.key(forbidden)) }
            #expect(delete?.code == .permissionDenied, "\(user) delete \(forbidden): \(String(describing: delete))")
          }
          let changed = try await client(security, endpoints, as: AccessPolicy.operatorUser) { operatorClient in
            _ = try await operatorClient.put(route.path, value: route.encoded())
            return try await operatorClient.put(settings.path, value: settings.encoded()).header.revision
          }
          for watch in watches {
            let seen = try await withTimeout(.seconds(10)) {
              for try await response in watch where !response.events.isEmpty {
                return response.events.map(\.kv.modRevision)
              }
              return []
            }
            #expect(seen.allSatisfy { $0 <= changed } && !seen.isEmpty, "\(user): \(seen)")
          }
        }
      }
      try await client(security, endpoints, as: "backend-1") { etcd in
        for (key, value) in [(route.path, route.encoded()), (settings.path, settings.encoded())] {
          let write = await failure { _ = try await etcd.put(key, value: value) }
          #expect(write?.code == .permissionDenied, "registrar put \(key): \(String(describing: write))")
          #expect(write?.message.contains("permission denied") == true)
          let delete = await failure { _ = try await etcd.delete(.key(key)) }
          #expect(delete?.code == .permissionDenied, "registrar delete \(key): \(String(describing: delete))")
          let read = await failure { _ = try await etcd.get(.key(key)) }
          #expect(read?.code == .permissionDenied, "registrar read \(key): \(String(describing: read))")
        }
        let wholePrefix = await failure { _ = try await etcd.delete(.prefix("/switchyard/")) }
        #expect(wholePrefix?.code == .permissionDenied, "\(String(describing: wholePrefix))")
      }
      try await client(security, endpoints, as: AccessPolicy.operatorUser) { etcd in
        for key in [route.path, settings.path, override] {
          let deleted = try await etcd.delete(.key(key)).deleted
          #expect(deleted == 1, "\(key)")
        }
      }
      try await client(security, endpoints, as: AccessPolicy.root) { etcd in
        let keys = try await etcd.get(.prefix("")).kvs.map(\.keyString)
        #expect(keys == ["/services/web/web-1"])
      }
    }
  }

  @Test func badConnectionsFailNamingTheCauseAndRegisterNothing() async throws {
    try await withSecureEtcd { security, endpoints in
      let otherCA = try CertificateAuthority.create(
        in: "\(security.home)/other-ca", commonName: "Some other CA", days: 30)
      let attempts: [(String, (inout EtcdConfiguration) -> Void, [String])] = [
        ("without the CA", { $0.tls?.caCertificatePath = nil }, ["not signed by a ca we trust", "--cacert"]),
        ("with a wrong CA", { $0.tls?.caCertificatePath = otherCA.certificate }, ["not signed by a ca we trust"]),
        (
          "without a client certificate",
          {
            $0.tls?.clientCertificatePath = nil
            $0.tls?.clientKeyPath = nil
          }, ["refused our client certificate", "--cert"]
        ),
        (
          "with a wrong password", { $0.credentials?.password = "not-the-password" },
          ["backend-1", "could not log in", "authentication failed"]
        ),
      ]
      for (what, change, words) in attempts {
        let error = await failure {
          try await client(security, endpoints, as: "backend-1", change: change) { etcd in
            _ = try await etcd.put("/services/backend/intruder", value: "{}")
          }
        }
        let message = error.map { String(describing: $0) } ?? "no error"
        #expect(error != nil, "\(what): the put succeeded")
        for word in words {
          #expect(message.lowercased().contains(word), "\(what): the error does not name the cause: \(message)")
        }
        #expect(!message.contains("not-the-password"))
      }
      try await client(security, endpoints, as: AccessPolicy.root) { etcd in
        let registered = try await etcd.get(.prefix("/services/")).kvs
        #expect(registered.isEmpty, "\(registered.map(\.keyString))")
      }
    }
  }

  @Test func aBackendWithRefusedCredentialsSaysSoAndRegistersNothing() async throws {
    try await withSecureEtcd { security, endpoints in
      let wrong = "\(security.home)/wrong.password"
      try "not-the-password\n".write(toFile: wrong, atomically: true, encoding: .utf8)
      let cases: [(user: String, passwordFile: String, says: String)] = [
        // An LB node's user may only read: the write is refused.
        ("lb1", security.passwordFile(for: "lb1"), "the etcd user needs read and write permission"),
        ("backend-1", wrong, "check --user and --password-file"),
      ]
      for (user, passwordFile, says) in cases {
        let pair = security.clientPair(for: user)
        let log = "\(security.home)/backend-\(user).log"
        let backend = try ManagedProcess(
          switchyardBinary,
          arguments: [
            "backend", "--etcd-endpoints", endpoints.joined(separator: ","), "--cacert", security.caCertificate,
            "--cert", pair.certificate, "--key", pair.key, "--user", user, "--password-file", passwordFile,
            "--listen", "127.0.0.1:\(try FreePort.allocate(1)[0])", "--id", "intruder",
          ],
          logPath: log
        )
        defer { backend.kill() }
        try await retrying(timeout: .seconds(15)) {
          guard backend.logContents().contains("etcd refused the registration: \(says)") else {
            throw TestSupportError("\(user): no clear error yet:\n\(backend.logContents())")
          }
        }
        await backend.terminate()
        #expect(!backend.logContents().contains("not-the-password"))
      }
      try await client(security, endpoints, as: AccessPolicy.root) { etcd in
        let registered = try await etcd.get(.prefix("/services/")).kvs
        #expect(registered.isEmpty, "\(registered.map(\.keyString))")
      }
    }
  }

  @Test func aRenewedClientCertificateIsUsedWithoutARestart() async throws {
    try await withSecureEtcd { security, endpoints in
      // Without a password etcd takes the user from the certificate: `backend-1.tls` is nobody, a
      // certificate for `backend-1` is the registrar. The swap shows which one a new connection presents.
      try await client(
        security, endpoints, as: "backend-1", withPassword: false,
        change: { $0.tls?.reloadInterval = .milliseconds(200) }
      ) { etcd in
        let before = await failure { _ = try await etcd.put("/services/backend/renewed", value: "{}") }
        #expect(before != nil, "the first certificate is nobody, yet it could write")
        try CertificateAuthority(existingIn: security.pkiDirectory)
          .issue(name: "backend-1", commonName: "backend-1", usage: .client, days: 1)
        try await retrying(timeout: .seconds(10)) {
          _ = try await etcd.put("/services/backend/renewed", value: "{}")
        }
        let value = try await etcd.value(of: "/services/backend/renewed")
        #expect(value != nil)
      }
    }
  }

  @Test func expiredTokensWhileIdleChangeNothing() async throws {
    try await withSecureEtcd(tokenTTL: 1) { security, endpoints in
      try await client(security, endpoints, as: "backend-1") { registrar in
        try await client(security, endpoints, as: "lb1") { controller in
          let lease = try await registrar.grantLease(ttl: 4)
          let renewals = Task {
            var count = 0
            for try await _ in registrar.keepAlive(lease) { count += 1 }
            return count
          }
          defer { renewals.cancel() }
          let start = try await registrar.put("/services/backend/a", value: "{}", options: .init(lease: lease.id))
          let events = controller.watch(
            .prefix("/services/"), options: WatchOptions(startRevision: start.header.revision + 1))
          let collected = Task {
            var keys: [String] = []
            for try await response in events {
              keys += response.events.map(\.kv.keyString)
              if keys.count >= 2 { break }
            }
            return keys
          }
          // Idle for several token lifetimes and more than one lease TTL: only keep-alives run.
          try await Task.sleep(for: .seconds(6))
          try await registrar.put("/services/backend/b", value: "{}", options: .init(lease: lease.id))
          try await registrar.put("/services/backend/c", value: "{}", options: .init(lease: lease.id))
          let keys = try await withTimeout(.seconds(10)) { try await collected.value }
          #expect(keys == ["/services/backend/b", "/services/backend/c"])
          let left = try await client(security, endpoints, as: AccessPolicy.root) { root in
            try await root.timeToLive(lease: lease.id).ttl
          }
          #expect(left > 0, "the lease expired while its keep-alive ran")
        }
      }
    }
  }
}

private let quiet: Logger = {
  var logger = Logger(label: "security-test")
  logger.logLevel = ProcessInfo.processInfo.environment["TEST_LOG"] == nil ? .critical : .trace
  return logger
}()

private func withTimeout<T: Sendable>(_ timeout: Duration, _ body: @escaping @Sendable () async throws -> T)
  async throws -> T
{
  try await withThrowingTaskGroup(of: T.self) { group in
    group.addTask { try await body() }
    group.addTask {
      try await Task.sleep(for: timeout)
      throw TestSupportError("no result within \(timeout)")
    }
    defer { group.cancelAll() }
    return try await group.next()!
  }
}
