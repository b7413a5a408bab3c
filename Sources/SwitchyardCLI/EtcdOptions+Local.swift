import ArgumentParser
import EtcdClient
import Foundation
import Logging
import SwitchyardLocal

/// The user an operator's command connects to a secure local cluster as, when its options name no
/// endpoint, credential or certificate.
enum LocalClusterUser: Sendable {
  /// etcd's `root`: for tools that may touch any key, user or lease (`switchyard etcd`, `switchyard lease`).
  case root
  /// The user `operator` (role `operator`): read and write routes, service settings and overrides, read
  /// registrations, nothing else. The least a command that manages routes, services or overrides needs.
  case `operator`

  /// The etcd user's name.
  var name: String {
    switch self {
    case .root: AccessPolicy.root
    case .operator: AccessPolicy.operatorUser
    }
  }
}

extension EtcdOptions {
  /// The configuration of a secure local cluster's etcd, as `user` (`root` unless told), when these options
  /// name no endpoint, credential or certificate and the state directory (`$SWITCHYARD_HOME`, else
  /// `.switchyard`) holds a cluster started with `switchyard up --secure`; otherwise `nil`.
  ///
  /// So `switchyard etcd get /services/ --prefix` works against a secure local cluster as it does against
  /// a plain one. The timeouts still come from the options. A cluster made before the user `operator`
  /// existed has no password file for it: `operator` then connects as `root`, the one user that cluster
  /// has for operators.
  func secureLocalClusterConfiguration(
    environment: [String: String],
    as user: LocalClusterUser = .root
  ) throws -> EtcdConfiguration? {
    let explicit: [String?] = [endpoints, self.user, passwordFile, caCertificate, certificate, key]
    guard explicit.allSatisfy({ $0 == nil }),
      ["ETCD_ENDPOINTS", "SWITCHYARD_ETCD_USER", "SWITCHYARD_ETCD_PASSWORD"].allSatisfy({ environment[$0] == nil })
    else { return nil }
    let home = LocalCluster.defaultHome(environment: environment)
    guard let state = try? ClusterState.load(home: home), state.isSecure else { return nil }
    let layout = state.layout(home: home)
    var name = user.name
    if user == .operator, !FileManager.default.fileExists(atPath: layout.security.passwordFile(for: name)) {
      name = AccessPolicy.root
    }
    do {
      return try layout.security.configuration(for: name, endpoints: layout.etcdEndpoints)
    } catch {
      throw ValidationError(
        "\(home) holds a secure local cluster, but the credentials of its user \(name) cannot be used (\(error)); "
          + "pass --etcd-endpoints, --cacert, --cert, --key, --user and --password-file")
    }
  }

  /// The client configuration these options describe; options that name no endpoint, user or certificate
  /// mean the secure local cluster in the state directory, as `user`, when there is one (see
  /// ``secureLocalClusterConfiguration(environment:as:)``).
  func makeConfiguration(
    localCluster user: LocalClusterUser,
    environment: [String: String] = ProcessInfo.processInfo.environment
  ) throws -> EtcdConfiguration {
    // Validates every option, the timeouts too, also when the local cluster's credentials are used.
    let given = try makeConfiguration(environment: environment)
    guard var local = try secureLocalClusterConfiguration(environment: environment, as: user) else { return given }
    local.dialTimeout = given.dialTimeout
    local.requestTimeout = given.requestTimeout
    return local
  }

  /// Runs `body` with a connected client, closed afterwards; as `user` in a secure local cluster when the
  /// options name no endpoint, user or certificate. Commands that manage routes, service settings or
  /// overrides pass `.operator`: in a secure local cluster they need no root.
  func withClient<Result: Sendable>(
    localCluster user: LocalClusterUser,
    logger: Logger = Logger(label: "switchyard.etcd"),
    _ body: (EtcdClient) async throws -> Result
  ) async throws -> Result {
    let configuration = try makeConfiguration(localCluster: user)
    return try await withEtcdClient(configuration: configuration, logger: logger, body)
  }
}
