import ArgumentParser
import EtcdClient
import Foundation
import Logging
import SwitchyardController
import SwitchyardModel

extension ControllerCommand {
  /// The admin URL this node announces in etcd: `--admin-url`, else `http://<--admin>` (`https://` with
  /// `--admin-tls-cert`). An `--admin` on every address (`0.0.0.0`, `::`) says nothing others could reach, so
  /// it needs `--admin-url`.
  func makeAdminURL() throws -> String {
    try Self.adminURL(
      given: adminURL, admin: try parseHostPort(admin, flag: "--admin"), tls: adminTLSCertificate != nil)
  }

  /// The admin URL from `--admin-url` (`given`), else from the `--admin` address and whether TLS is on.
  static func adminURL(given: String?, admin: HostPort, tls: Bool) throws -> String {
    if let given {
      if let problem = NodeRecord.adminURLProblem(given) { throw ValidationError("--admin-url: \(problem)") }
      return given
    }
    guard !admin.address.isUnspecified else {
      throw ValidationError(
        "--admin-url is needed: --admin \(admin) listens on every address, which says nothing others can reach; "
          + "give the URL other hosts reach this node's admin endpoints at, such as --admin-url "
          + "\(tls ? "https" : "http")://lb1.example.net:\(admin.port)")
    }
    return "\(tls ? "https" : "http")://\(admin)"
  }
}

extension ControllerCommand {
  /// The announcer of this node's record in etcd (`/switchyard/nodes/<node-id>`).
  func makeAnnouncer(
    client: EtcdClient, configuration: ControllerConfiguration, adminURL: String, status: ControllerStatus,
    logger: Logger
  ) throws -> NodeAnnouncer {
    let started = Int64(Date().timeIntervalSince1970)
    do {
      let identity = try NodeAnnouncer.Identity(
        node: try InstanceID(validating: configuration.node.nodeID), listen: configuration.node.listen,
        stats: configuration.node.stats, adminURL: adminURL, started: started)
      return NodeAnnouncer(client: client, identity: identity, status: status, logger: logger)
    } catch {
      throw ValidationError("--node-id: \(error.reason)")
    }
  }
}
