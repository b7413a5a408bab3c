import ArgumentParser
import EtcdClient
import Logging
import SwitchyardController
import SwitchyardDashboard

extension ControllerCommand {
  /// The dashboard's login from `--dashboard-auth USER:PASSWORDFILE` (the password is the file's first line,
  /// read once at start), or `nil` without it.
  func makeDashboardLogin() throws -> DashboardLogin? {
    guard let dashboardAuth else { return nil }
    let (user, file) = try Self.parseLogin(
      dashboardAuth, flag: "--dashboard-auth", userProblem: DashboardLogin.userProblem)
    do {
      return try DashboardLogin(user: user, password: try readSecretFile(file, flag: "--dashboard-auth"))
    } catch let error as DashboardLoginError {
      throw ValidationError("--dashboard-auth: \(error)")
    }
  }

  /// The CA that signs the other nodes' admin certificates: `--admin-cacert`, else etcd's `--cacert` (one CA
  /// for both, as in `switchyard up --secure`), else none (the system's roots).
  func makeAdminCACertificate() throws -> String? {
    guard let path = adminCACertificate ?? etcd.caCertificate else { return nil }
    do {
      try Dashboard.checkCACertificate(path)
    } catch {
      let flag = adminCACertificate == nil ? "--cacert" : "--admin-cacert"
      throw ValidationError("\(flag): cannot load a PEM certificate from \(path) (\(error))")
    }
    return path
  }

  /// The dashboard this node serves on its admin address.
  func makeDashboard(
    client: EtcdClient, configuration: ControllerConfiguration, adminURL: String, status: ControllerStatus,
    logger: Logger
  ) throws -> Dashboard {
    Dashboard(
      configuration: DashboardConfiguration(
        nodeID: nodeID, adminURL: adminURL, login: try makeDashboardLogin(),
        adminCACertificate: try makeAdminCACertificate(),
        adminSocketPath: configuration.node.adminSocketPath),
      client: client, status: status, logger: logger)
  }
}
