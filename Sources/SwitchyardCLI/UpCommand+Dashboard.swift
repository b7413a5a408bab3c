import SwitchyardLocal

extension UpCommand {
  /// Where each LB node serves the dashboard of the whole cluster, and, in a secure cluster, how to log in.
  func dashboards(_ ports: ClusterPorts) -> String {
    let cluster = home.cluster()
    let layout = ClusterLayout(home: cluster.home, switchyard: "switchyard", ports: ports, secure: secure)
    var lines = ["", "Dashboards (the whole cluster, live; any node's shows every node):"]
    for node in layout.lbNodes() {
      guard let url = node.dashboardURL else { continue }
      lines.append("  \(node.name)  \(url)")
    }
    if secure {
      lines.append(
        "  log in as \(LocalSecurity.dashboardUser), with the password in \(layout.security.dashboardPasswordFile)")
      lines.append(
        "  over https, with a certificate from the local CA \(layout.security.caCertificate) (trust it, or "
          + "curl --cacert \(layout.security.caCertificate) -u \(LocalSecurity.dashboardUser):… "
          + "\(layout.lbNodes().first?.adminURL ?? "")/api/cluster)")
    }
    return lines.joined(separator: "\n")
  }
}
