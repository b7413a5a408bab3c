import ArgumentParser
import EtcdClient
import Foundation
import SwitchyardLocal

extension EtcdOptions {
  /// The configuration of a secure local cluster's etcd, as `root`, when these options name no endpoint,
  /// credential or certificate and the state directory (`$SWITCHYARD_HOME`, else `.switchyard`) holds a
  /// cluster started with `switchyard up --secure`; otherwise `nil`.
  ///
  /// So `switchyard etcd get /services/ --prefix` works against a secure local cluster as it does against
  /// a plain one. The timeouts still come from the options.
  func secureLocalClusterConfiguration(environment: [String: String]) throws -> EtcdConfiguration? {
    let explicit: [String?] = [endpoints, user, passwordFile, caCertificate, certificate, key]
    guard explicit.allSatisfy({ $0 == nil }),
      ["ETCD_ENDPOINTS", "SWITCHYARD_ETCD_USER", "SWITCHYARD_ETCD_PASSWORD"].allSatisfy({ environment[$0] == nil })
    else { return nil }
    let home = LocalCluster.defaultHome(environment: environment)
    guard let state = try? ClusterState.load(home: home), state.isSecure else { return nil }
    let layout = state.layout(home: home)
    do {
      return try layout.security.configuration(for: AccessPolicy.root, endpoints: layout.etcdEndpoints)
    } catch {
      throw ValidationError(
        "\(home) holds a secure local cluster, but its root credentials cannot be used (\(error)); "
          + "pass --etcd-endpoints, --cacert, --cert, --key, --user and --password-file")
    }
  }
}
