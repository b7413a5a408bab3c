import EtcdClient
import Foundation
import SwitchyardCerts
import SwitchyardModel
import SwitchyardPKI

#if canImport(Glibc)
  import Glibc
#endif

/// Who may do what in a secure local cluster's etcd: one role per kind of part, each part its own user.
///
/// - `registrar` (backends, and the second sample service `web`) may read and write registrations,
///   `/services/<service>/<id>`, and nothing else. Its range starts at `/services/-`, the lowest character a
///   service name may start with, so a delete of the prefix `/services/` as a whole falls outside it and etcd
///   refuses it. Routes, service settings and overrides are out of its reach: a backend cannot send another
///   service's traffic to itself, change how it is balanced, or undo its own drain.
/// - `controller` (LB nodes, and `switchyard status`) may read and watch everything a controller serves from:
///   `/services/`, the operators' overrides (`/switchyard/overrides/`), routes (`/switchyard/routes/`) and
///   service settings (`/switchyard/services/`), and the nodes' announcements (`/switchyard/nodes/`), and
///   write nothing.
/// - Both `controller` and `operator` read the certificates, `/switchyard/certs/` (their private keys are
///   sealed with the cluster key, which only LB nodes and operators hold); `operator` writes them, and
///   `controller` reads the ACME challenges' answers (`/switchyard/acme/challenges/`) that every node serves.
/// - `node-<id>` (one per LB node, given to that node's user besides `controller`) may read and write exactly
///   the node's own announcement, `/switchyard/nodes/<id>`: a node cannot overwrite or remove another's.
/// - `operator` (the user `operator`: `switchyard up` writing the sample routes, and the operator's commands
///   that connect to a secure local cluster without credentials of their own) may read and write routes,
///   service settings and overrides, and read registrations (to count instances and name the one an override
///   is about), and nothing else: no registration, user or role.
/// - `root` sets this up and is used by no part.
public enum AccessPolicy {
  /// The role of backends and sidecars.
  public static let registrarRole = "registrar"
  /// The role of LB nodes' controllers.
  public static let controllerRole = "controller"
  /// The role of operators: routes, service settings and overrides.
  public static let operatorRole = "operator"
  /// etcd's all-powerful user and role.
  public static let root = "root"
  /// The read-only user `switchyard status` reads registrations with.
  public static let statusUser = "status"
  /// The user with the role `operator`.
  public static let operatorUser = "operator"
  /// The users every secure local cluster has besides its parts' own, each with a certificate and a password.
  public static var clusterUsers: [String] { [root, statusUser, operatorUser] }

  /// Every key a registration can have (service names are ASCII letters, digits, `-`, `_` and `.`, the
  /// lowest of which is `-`), and not the bare prefix.
  public static var registrationKeys: KeyRange { .range(from: "/services/-", to: "/services0") }

  /// The keyspaces that only operators write: overrides, routes, service settings and certificates.
  public static var operatorPrefixes: [String] {
    [InstanceOverride.root, Route.root, ServiceSettings.root, CertificateRecord.root]
  }

  /// The ACME challenges' answers that every LB node serves (SwitchyardACME's `ACMEChallenge.root`).
  public static let acmeChallengesPrefix = "/switchyard/acme/challenges/"

  /// The role that lets LB node `node`'s user write its own announcement, `/switchyard/nodes/<node>`, and
  /// nothing else: `node-<node>`.
  public static func nodeRole(of node: String) -> (name: String, permissions: [Permission]) {
    ("node-\(node)", [Permission(.readWrite, .key(NodeRecord.root + node))])
  }

  /// The permissions of each role this policy creates.
  public static var roles: [(name: String, permissions: [Permission])] {
    [
      (registrarRole, [Permission(.readWrite, registrationKeys)]),
      (
        controllerRole,
        ([RegistrationKey.root] + operatorPrefixes + [NodeRecord.root, acmeChallengesPrefix]).map {
          Permission(.read, .prefix($0))
        }
      ),
      (
        operatorRole,
        [Permission(.read, .prefix(RegistrationKey.root))]
          + operatorPrefixes.map { Permission(.readWrite, .prefix($0)) }
      ),
    ]
  }

  /// The role of a part's user; `nil` for etcd members, which have no user.
  public static func role(of kind: PartKind) -> String? {
    switch kind {
    case .etcd: nil
    case .lb: controllerRole
    case .backend, .web: registrarRole
    }
  }
}

/// The certificates and etcd credentials of a secure local cluster, kept in the state directory:
/// `pki/` (the CA, the members' certificate, one client certificate per user, and each LB node's admin
/// server certificate, `<node>-admin.pem`; keys 0600) and `secrets/` (one password file per user, 0600; the
/// directory 0700).
///
/// A client certificate's common name is `<user>.tls`, which is no etcd user: etcd takes the user from the
/// certificate only when a request carries no token, so a certificate alone grants nothing, and a password
/// alone cannot connect.
public struct LocalSecurity: Sendable {
  /// The state directory.
  public let home: String
  /// How long leaf certificates are valid.
  public var certificateDays = 365
  /// How long the CA is valid; renewing it would need a restart of every part.
  public static let authorityDays = 3650
  /// Certificates that expire sooner than this are renewed by `up --secure`.
  public static let renewalMargin: Duration = .seconds(7 * 24 * 3600)

  /// The security files of the cluster in `home`.
  public init(home: String) { self.home = home }

  /// The PKI directory.
  public var pkiDirectory: String { "\(home)/pki" }
  /// The secrets directory.
  public var secretsDirectory: String { "\(home)/secrets" }
  /// The CA certificate.
  public var caCertificate: String { "\(pkiDirectory)/ca.pem" }
  /// The etcd members' certificate, for client and peer connections.
  public var memberPair: KeyPair { pair("etcd-member") }

  /// The client certificate of `user`.
  public func clientPair(for user: String) -> KeyPair { pair(user) }

  /// The server certificate of LB node `node`'s admin endpoints (`/readyz`, `/state`, the dashboard):
  /// `pki/<node>-admin.pem`, for 127.0.0.1, ::1 and localhost.
  public func adminPair(for node: String) -> KeyPair { pair(Self.adminCertificateName(of: node)) }

  /// The suffix of an admin certificate's name (`lb1-admin`).
  static let adminSuffix = "-admin"

  /// `lb1-admin` for `lb1`.
  static func adminCertificateName(of node: String) -> String { node + adminSuffix }

  /// The LB node whose admin certificate `name` is (`lb1` for `lb1-admin`), or `nil`. Users and parts never
  /// end in `-admin`: LB nodes are `lb<n>`, backends `backend-<n>`, `web-<n>`.
  static func adminNode(ofCertificate name: String) -> String? {
    guard name.hasSuffix(adminSuffix), name.count > adminSuffix.count else { return nil }
    return String(name.dropLast(adminSuffix.count))
  }

  /// The password file of `user`.
  public func passwordFile(for user: String) -> String { "\(secretsDirectory)/\(user).password" }

  /// The user of the LB nodes' stats pages (HTTP basic authentication).
  public static let statsUser = "admin"
  /// The password file of the stats pages; HAProxy's config holds only its hash.
  public var statsPasswordFile: String { "\(secretsDirectory)/stats-page.password" }

  /// The user of the LB nodes' dashboards (HTTP basic authentication, `--dashboard-auth`).
  public static let dashboardUser = "admin"
  /// The password file of the dashboards, read by each controller at start.
  public var dashboardPasswordFile: String { "\(secretsDirectory)/dashboard.password" }

  private func pair(_ name: String) -> KeyPair {
    KeyPair(certificate: "\(pkiDirectory)/\(name).pem", key: "\(pkiDirectory)/\(name)-key.pem")
  }

  /// The command-line options that make a switchyard command connect as `user`.
  public func clientArguments(for user: String) -> [String] {
    let pair = clientPair(for: user)
    return [
      "--cacert", caCertificate, "--cert", pair.certificate, "--key", pair.key,
      "--user", user, "--password-file", passwordFile(for: user),
    ]
  }

  /// A client configuration that connects to `endpoints` as `user` (with its password when `withPassword`).
  public func configuration(for user: String, endpoints: String, withPassword: Bool = true) throws -> EtcdConfiguration
  {
    var configuration = try EtcdConfiguration(endpoints: endpoints)
    let pair = clientPair(for: user)
    configuration.tls = .init(
      caCertificatePath: caCertificate,
      clientCertificatePath: pair.certificate,
      clientKeyPath: pair.key
    )
    if withPassword {
      configuration.credentials = .init(username: user, password: try password(of: user))
    }
    return configuration
  }

  /// The password of `user`, from its file.
  public func password(of user: String) throws -> String {
    let path = passwordFile(for: user)
    guard let data = FileManager.default.contents(atPath: path),
      let password = String(data: data, encoding: .utf8)?.trimmingCharacters(in: .newlines), !password.isEmpty
    else { throw LocalClusterError("cannot read the password file \(path)") }
    return password
  }

  // MARK: - Creating and renewing

  /// Creates a fresh CA, the members' certificate, and a certificate and password for each of `users`,
  /// replacing whatever `pki/` and `secrets/` held.
  public func create(users: [String]) throws {
    for directory in [pkiDirectory, secretsDirectory] { try? FileManager.default.removeItem(atPath: directory) }
    let authority = try CertificateAuthority.create(
      in: pkiDirectory,
      commonName: "Switchyard local CA",
      days: Self.authorityDays
    )
    try issueMemberCertificate(authority)
    try FileManager.default.createDirectory(atPath: secretsDirectory, withIntermediateDirectories: true)
    chmod(secretsDirectory, 0o700)
    for user in users { try addUser(user, authority: authority) }
    try Self.writeSecret(Self.newPassword(), to: statsPasswordFile)
    try Self.writeSecret(Self.newPassword(), to: dashboardPasswordFile)
  }

  /// Makes a certificate and a password for `user` unless both exist.
  public func addUser(_ user: String) throws {
    try addUser(user, authority: CertificateAuthority(existingIn: pkiDirectory))
  }

  private func addUser(_ user: String, authority: CertificateAuthority) throws {
    if !FileManager.default.fileExists(atPath: clientPair(for: user).certificate) {
      try authority.issue(name: user, commonName: "\(user).tls", usage: .client, days: certificateDays)
    }
    let path = passwordFile(for: user)
    if !FileManager.default.fileExists(atPath: path) { try Self.writeSecret(Self.newPassword(), to: path) }
  }

  /// Issues (or replaces) LB node `node`'s admin server certificate, ``adminPair(for:)``, from the local CA.
  /// The files are replaced by rename, the key first; a running controller serves the new pair to new
  /// connections within seconds (it looks at the files' modification times) and keeps the old one until
  /// both files match.
  @discardableResult
  public func issueAdminCertificate(for node: String) throws -> KeyPair {
    try issueAdminCertificate(for: node, authority: CertificateAuthority(existingIn: pkiDirectory))
  }

  @discardableResult
  private func issueAdminCertificate(for node: String, authority: CertificateAuthority) throws -> KeyPair {
    try authority.issue(
      name: Self.adminCertificateName(of: node),
      commonName: "\(node)-admin.tls",
      usage: .server(ipAddresses: ["127.0.0.1", "::1"], dnsNames: ["localhost"]),
      days: certificateDays
    )
  }

  /// Issues the admin certificate of each of `nodes` that has none (a cluster made before admin
  /// endpoints served TLS, or a node added since).
  public func addAdminCertificates(for nodes: [String]) throws {
    let authority = try CertificateAuthority(existingIn: pkiDirectory)
    for node in nodes where !FileManager.default.fileExists(atPath: adminPair(for: node).certificate) {
      try issueAdminCertificate(for: node, authority: authority)
    }
  }

  private func issueMemberCertificate(_ authority: CertificateAuthority) throws {
    try authority.issue(
      name: "etcd-member",
      commonName: "etcd-member.tls",
      usage: .server(ipAddresses: ["127.0.0.1"], dnsNames: ["localhost"]),
      days: certificateDays
    )
  }

  /// Renews every leaf certificate that expires within ``renewalMargin``, with the same CA, and returns
  /// the names of those renewed. Running parts keep their connections; etcd reads its certificate files
  /// for each new connection, clients for each new connection they open, and controllers their admin
  /// certificate (`<node>-admin`) when its files change, checked at most every few seconds.
  public func renewExpiring() throws -> [String] {
    let authority = try CertificateAuthority(existingIn: pkiDirectory)
    if try CertificateAuthority.expires(authority.certificate, within: Self.renewalMargin) {
      throw LocalClusterError(
        "the local CA (\(authority.certificate)) expires within 7 days; renewing it needs new certificates for "
          + "every part: `switchyard down --purge`, then `switchyard up --secure`")
    }
    var renewed: [String] = []
    for name in try leafNames()
    where try CertificateAuthority.expires(pair(name).certificate, within: Self.renewalMargin) {
      if name == "etcd-member" {
        try issueMemberCertificate(authority)
      } else if let node = Self.adminNode(ofCertificate: name) {
        try issueAdminCertificate(for: node, authority: authority)
      } else if name == Self.edgeLeafName {
        try issueEdgeCertificate(authority: authority)
      } else {
        try authority.issue(name: name, commonName: "\(name).tls", usage: .client, days: certificateDays)
      }
      renewed.append(name)
    }
    return renewed
  }

  /// The leaf certificates' names (`etcd-member`, `root`, `lb1`, …).
  private func leafNames() throws -> [String] {
    try FileManager.default.contentsOfDirectory(atPath: pkiDirectory)
      .filter { $0.hasSuffix(".pem") && !$0.hasSuffix("-key.pem") && $0 != "ca.pem" && !$0.hasPrefix(".") }
      .map { String($0.dropLast(4)) }
      .sorted()
  }

  /// One line for `switchyard status`: when the first certificate expires, and which ones
  /// `up --secure` would renew now.
  public func certificateSummary() throws -> String {
    var earliest: (date: Date, text: String, name: String)?
    var expiring: [String] = []
    for name in try leafNames() {
      let path = pair(name).certificate
      let text = try CertificateAuthority.expiry(of: path)
      if let date = Self.parseExpiry(text), earliest.map({ date < $0.date }) ?? true {
        earliest = (date, text, name)
      }
      if try CertificateAuthority.expires(path, within: Self.renewalMargin) { expiring.append(name) }
    }
    guard let earliest else { return "no certificates in \(pkiDirectory)" }
    let first = "certificates valid until \(earliest.text) (\(earliest.name) first)"
    return expiring.isEmpty
      ? first
      : "\(first); \(expiring.joined(separator: ", ")) expire within 7 days: renew with `switchyard up --secure`"
  }

  /// openssl's `notAfter` (`Dec  3 20:33:13 2026 GMT`) as a date.
  public static func parseExpiry(_ text: String) -> Date? {
    let formatter = DateFormatter()
    formatter.locale = Locale(identifier: "en_US_POSIX")
    formatter.timeZone = TimeZone(identifier: "GMT")
    formatter.dateFormat = "MMM d HH:mm:ss yyyy zzz"
    return formatter.date(from: text.split(separator: " ", omittingEmptySubsequences: true).joined(separator: " "))
  }

  /// 32 random bytes from the system's CSPRNG, base64url-encoded (43 characters).
  static func newPassword() -> String {
    var generator = SystemRandomNumberGenerator()
    let bytes = (0..<32).map { _ in UInt8.random(in: .min ... .max, using: &generator) }
    return Data(bytes).base64EncodedString()
      .replacingOccurrences(of: "+", with: "-")
      .replacingOccurrences(of: "/", with: "_")
      .replacingOccurrences(of: "=", with: "")
  }

  /// Writes `secret` to a new file that only the owner can read (created 0600, never wider).
  static func writeSecret(_ secret: String, to path: String) throws {
    let descriptor = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0o600)
    guard descriptor >= 0 else {
      throw LocalClusterError("cannot create \(path): \(String(cString: strerror(errno)))")
    }
    defer { close(descriptor) }
    let bytes = Array((secret + "\n").utf8)
    let written = bytes.withUnsafeBytes { write(descriptor, $0.baseAddress, $0.count) }
    guard written == bytes.count else { throw LocalClusterError("cannot write \(path)") }
  }

  // MARK: - etcd

  /// Creates the roles, `root`, the status and operator users and `users` (each with the role given) in an
  /// etcd that has authentication off, then turns authentication on. Run once, as the `root` client certificate.
  public func configureAuth(_ etcd: EtcdClient, users: [(name: String, role: String)]) async throws {
    for role in AccessPolicy.roles {
      try await etcd.addRole(role.name)
      for permission in role.permissions { try await etcd.grant(permission, to: role.name) }
    }
    try await etcd.addUser(AccessPolicy.root, password: try password(of: AccessPolicy.root))
    try await etcd.grantRole(AccessPolicy.root, to: AccessPolicy.root)
    let clusterUsers = [
      (AccessPolicy.statusUser, AccessPolicy.controllerRole), (AccessPolicy.operatorUser, AccessPolicy.operatorRole),
    ]
    for user in clusterUsers + users {
      try await addUser(user.0, role: user.1, to: etcd)
    }
    try await etcd.enableAuth()
  }

  /// Adds `user` with its password and grants it `role`; a user that exists keeps its password and gets
  /// the role. An LB node's user (role `controller`) also gets its own role, ``AccessPolicy/nodeRole(of:)``,
  /// made here if it does not exist yet.
  public func addUser(_ user: String, role: String, to etcd: EtcdClient) async throws {
    do {
      try await etcd.addUser(user, password: try password(of: user))
    } catch let error as EtcdError where error.message.contains("already exists") {
      // Made by an earlier scale-up: same name, same password file.
    }
    try await etcd.grantRole(role, to: user)
    if role == AccessPolicy.controllerRole, user != AccessPolicy.statusUser {
      let node = AccessPolicy.nodeRole(of: user)
      do {
        try await etcd.addRole(node.name)
      } catch let error as EtcdError where error.message.contains("already exists") {
        // Made by an earlier run for the same node.
      }
      for permission in node.permissions { try await etcd.grant(permission, to: node.name) }
      try await etcd.grantRole(node.name, to: user)
    }
  }
}
