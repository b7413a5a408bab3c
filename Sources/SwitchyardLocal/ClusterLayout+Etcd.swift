import EtcdClient
import Logging

extension ClusterLayout {
  /// Runs `body` with a client of the cluster's etcd that connects as `user`.
  func withEtcd<Result: Sendable>(
    as user: String,
    withPassword: Bool = true,
    _ body: (EtcdClient) async throws -> Result
  ) async throws -> Result {
    var logger = Logger(label: "switchyard.setup")
    logger.logLevel = .critical
    let configuration = try security.configuration(for: user, endpoints: etcdEndpoints, withPassword: withPassword)
    return try await withEtcdClient(configuration: configuration, logger: logger, body)
  }

  /// Runs `body` with a client of a cluster's etcd that has no authentication.
  func withPlainEtcd<Result: Sendable>(_ body: (EtcdClient) async throws -> Result) async throws -> Result {
    var logger = Logger(label: "switchyard.setup")
    logger.logLevel = .critical
    return try await withEtcdClient(
      configuration: try EtcdConfiguration(endpoints: etcdEndpoints), logger: logger, body)
  }

  /// Makes certificates, passwords and etcd users (as root) for parts about to start in a secure cluster.
  func addUsers(for specs: [PartSpec]) async throws {
    let users = specs.compactMap(ClusterLayout.etcdUser(of:))
    for user in users { try security.addUser(user.name) }
    try await withEtcd(as: AccessPolicy.root) { etcd in
      for user in users { try await security.addUser(user.name, role: user.role, to: etcd) }
    }
  }
}
