import SwitchyardHTTP

extension LocalCluster {
  /// Waits until every running LB node answers `GET /` over HTTPS with a certificate the local CA verifies
  /// (for 127.0.0.1): the certificate from etcd is installed, not the self-signed one a node starts with.
  func waitHTTPS(_ state: ClusterState) async throws {
    let layout = state.layout(home: home)
    let nodes = state.parts(.lb).filter(\.isRunning)
    let ca = layout.security.caCertificate
    say(
      "Waiting until \(nodes.map(\.spec.name).joined(separator: " and ")) serve HTTPS with the local CA's certificate…")
    let deadline = ContinuousClock.now.advanced(by: timeout)
    for node in nodes {
      let port = layout.httpsPorts[node.spec.index - 1]
      var last = "no answer yet"
      while true {
        do {
          let answer = try await HTTPCheck.get("https://127.0.0.1:\(port)/", caCertificate: ca)
          if answer.status == 200 { break }
          last = "status \(answer.status)"
        } catch {
          last = "\(error)"
        }
        guard ContinuousClock.now < deadline else {
          throw LocalClusterError(
            "timed out after \(timeout) waiting for \(node.spec.name) to serve HTTPS on \(port): \(last)")
        }
        try await Task.sleep(for: .milliseconds(250))
      }
      say("  \(node.spec.name) serves https://127.0.0.1:\(port)/")
    }
  }

  /// Renews the edge certificate of a cluster with HTTPS but without `--secure` when it expires within 7
  /// days, and writes the new one to etcd: the LB nodes serve it without a reload.
  func renewEdgeCertificate(_ state: ClusterState, days: Int) async throws {
    var security = LocalSecurity(home: home)
    security.certificateDays = days
    guard try security.renewEdgeCertificateIfExpiring() else {
      say("The HTTPS certificate does not expire within 7 days.")
      return
    }
    let revision = try await state.layout(home: home).storeEdgeCertificate()
    say(
      "Renewed the HTTPS certificate and stored it in etcd (revision \(revision)); the LB nodes serve it without a reload."
    )
  }
}
