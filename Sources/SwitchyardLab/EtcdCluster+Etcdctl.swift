import Foundation
import SwitchyardProcess

extension EtcdCluster {
  /// Runs etcdctl (API v3) against the cluster and returns its standard output; throws
  /// ``ProcessError/Code/commandFailed`` with its standard error if it fails.
  ///
  /// For what the Swift client does not cover, or to check its results independently: `put`, `get`,
  /// `lease revoke`, `compaction`, `member list`. The TLS flags are added when the cluster uses TLS.
  ///
  /// - Parameters:
  ///   - members: The members to talk to; the running ones if nil, so that a stopped member does not slow
  ///     the command down.
  ///   - user: Credentials to authenticate with. Passed in the environment (`ETCDCTL_USER`,
  ///     `ETCDCTL_PASSWORD`), so passwords stay out of command lines and error messages; etcdctl then refuses
  ///     a `--user` flag in `arguments`.
  @discardableResult
  public func etcdctl(_ arguments: [String], members: [Int]? = nil, user: Credentials? = nil) async throws -> String {
    let running = self.members.indices.filter { isRunning(member: $0) }
    return try await runEtcdctl(
      arguments,
      members: members ?? (running.isEmpty ? Array(self.members.indices) : running),
      user: user,
      timeout: .seconds(60)
    )
  }

  /// Creates the user `root` with `rootPassword`, grants it the `root` role and enables authentication.
  ///
  /// Afterwards etcdctl and clients need credentials, except that with TLS etcd takes the user name from
  /// the client certificate's common name (`root` for the default ``TLSFiles``). The cluster remembers the
  /// password for its own health checks and for ``addUser(name:password:roles:)``.
  public func enableAuth(rootPassword: String) async throws {
    try await etcdctl(["user", "add", "root", "--new-user-password=\(rootPassword)"])
    try await etcdctl(["user", "grant-role", "root", "root"])
    try await etcdctl(["auth", "enable"])
    state.withLock { $0.rootCredentials = Credentials(user: "root", password: rootPassword) }
  }

  /// Adds a user with a password and grants it `roles`, which must exist (`root` always does; create others
  /// with `etcdctl(["role", "add", name])`). Works before and after ``enableAuth(rootPassword:)``.
  public func addUser(name: String, password: String, roles: [String] = []) async throws {
    let root = state.withLock { $0.rootCredentials }
    try await etcdctl(["user", "add", name, "--new-user-password=\(password)"], user: root)
    for role in roles {
      try await etcdctl(["user", "grant-role", name, role], user: root)
    }
  }

  @discardableResult
  func runEtcdctl(
    _ arguments: [String],
    members: [Int],
    user: Credentials?,
    timeout: Duration
  ) async throws -> String {
    var flags = ["--endpoints=\(members.map(endpoint(of:)).joined(separator: ","))"]
    if let tls = options.tls {
      flags += ["--cacert=\(tls.caCertificate)", "--cert=\(tls.clientCertificate)", "--key=\(tls.clientKey)"]
    }
    var environment = environment
    if let user {
      environment["ETCDCTL_USER"] = user.user
      environment["ETCDCTL_PASSWORD"] = user.password
    }
    return try await ManagedProcess.run(
      options.etcdctlExecutable,
      arguments: flags + arguments,
      environment: environment,
      timeout: timeout
    )
  }
}
