import EtcdClient
import SwitchyardCerts

/// The LB nodes' HTTPS listeners (`up --https`, implied by `--secure`): lb1 on 127.0.0.1:8443, lb2 on :8444, …,
/// serving the certificate ``LocalSecurity/edgeCertificateName`` from etcd by default.
extension ClusterLayout {
  /// Whether the LB nodes serve HTTPS.
  public var servesHTTPS: Bool { https || secure }

  /// The HTTPS ports of the LB nodes, when they serve HTTPS: the given ones, else 8443, 8444, ….
  public var httpsPorts: [Int] {
    guard servesHTTPS else { return [] }
    return ports.https ?? ClusterPorts.defaultHTTPSPorts(nodes: ports.lb.count)
  }

  /// The controller options that serve HTTPS on LB node number `index` (from 0): the listener, the cluster
  /// key and the default certificate.
  func httpsArguments(_ index: Int) -> [String] {
    guard servesHTTPS, index < httpsPorts.count else { return [] }
    return [
      "--listen-https", "127.0.0.1:\(httpsPorts[index])",
      "--cluster-key", security.clusterKeyFile,
      "--default-certificate", LocalSecurity.edgeCertificateName,
    ]
  }

  /// The commands that reach each LB node over HTTPS, verified by the local CA: what `up` prints.
  public var httpsExamples: [String] {
    httpsPorts.map { "curl --cacert \(security.caCertificate) https://localhost:\($0)/" }
  }

  /// Writes the edge certificate to etcd (sealed with the cluster key) as the operator user in a secure
  /// cluster; returns the revision. The LB nodes serve a new one without a reload.
  @discardableResult
  func storeEdgeCertificate() async throws -> Int64 {
    let record = try security.edgeRecord()
    return try await withOperatorEtcd { etcd in
      try await etcd.put(record.path, value: record.jsonValue()).header.revision
    }
  }
}

extension PartSpec {
  /// Where a load-balancer node serves HTTPS (`https://127.0.0.1:8443`, from its controller's
  /// `--listen-https`), if it is one and does.
  public var httpsAddress: String? {
    guard kind == .lb, let flag = arguments.firstIndex(of: "--listen-https"), flag + 1 < arguments.count else {
      return nil
    }
    return "https://" + arguments[flag + 1]
  }
}
