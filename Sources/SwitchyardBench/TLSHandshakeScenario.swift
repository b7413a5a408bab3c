import EtcdClient
import Foundation
import SwitchyardCerts
import SwitchyardLab
import SwitchyardPKI
import SwitchyardProcess

#if canImport(Glibc)
  import Glibc
#endif

/// The TLS scenario: full handshakes per second (a new connection each, no session resumption, a P-256
/// certificate for `localhost`) on each of two LB nodes that serve the certificate from etcd, next to an
/// HAProxy started alone with the same certificate from a file (`bind … ssl crt <file>`), with the same
/// client and duration; then handshakes on one node while its certificate is renewed in etcd every second,
/// with the failed handshakes, the certificates served and the reloads counted.
///
/// Nothing is asserted about speed: the figures are printed. The nodes and the lone HAProxy are measured one
/// after the other, so that none shares the machine's cores with another's load.
struct TLSHandshakeBench {
  let lab: BenchLab
  let options: BenchOptions

  /// The certificate's name in etcd.
  static let certificateName = "bench"
  /// The SNI name the client sends.
  static let serverName = "localhost"

  /// What the scenario's parts share: a CA, its current leaf, and the cluster key.
  private struct Material {
    let authority: CertificateAuthority
    let clusterKeyFile: String
    let clusterKey: ClusterKey
    let name: CertificateName
  }

  func run() async throws -> [ScenarioResult] {
    let material = try makeMaterial()
    let first = try await storeNewLeaf(material)
    let haproxyFile = lab.directory.path("tls-bench/haproxy.pem")
    try first.haproxyPEM.write(toFile: haproxyFile, atomically: true, encoding: .utf8)
    chmod(haproxyFile, 0o600)

    var results: [ScenarioResult] = []
    var nodeRates: [Double] = []
    for node in ["lb1", "lb2"] {
      let httpsPort = try FreePort.allocate()
      let result = try await withHTTPSNode(material, httpsPort: httpsPort) { lbNode in
        try await waitServing(port: httpsPort, fingerprint: first.sha1Fingerprint, lbNode: lbNode)
        let load = try await handshakes(port: httpsPort, for: options.tlsDuration)
        var result = ScenarioResult(name: "tls", strategy: "runtime", variant: "\(node): certificate from etcd")
        add(load, to: &result)
        result.add("reloads", try await lbNode.reloads())
        return result
      }
      nodeRates.append(result["handshakes_per_s"] ?? 0)
      results.append(result)
    }

    var alone = ScenarioResult(name: "tls", strategy: "—", variant: "HAProxy alone: crt file")
    let aloneLoad = try await withPlainHAProxy(certificateFile: haproxyFile) { port in
      try await handshakes(port: port, for: options.tlsDuration)
    }
    add(aloneLoad, to: &alone)
    if aloneLoad.perSecond > 0, let mean = nodeRates.isEmpty ? nil : nodeRates.reduce(0, +) / Double(nodeRates.count) {
      results = results.map { result in
        var result = result
        result.add("vs_haproxy_alone", (result["handshakes_per_s"] ?? 0) / aloneLoad.perSecond)
        return result
      }
      alone.add("nodes_mean_per_s", mean)
    }
    results.append(alone)

    let httpsPort = try FreePort.allocate()
    let renewal = try await withHTTPSNode(material, httpsPort: httpsPort) { lbNode in
      // This node starts with the last certificate stored, from the runs above.
      let current = try await storeNewLeaf(material)
      try await waitServing(port: httpsPort, fingerprint: current.sha1Fingerprint, lbNode: lbNode)
      let reloadsBefore = try await lbNode.reloads()
      let deadline = ContinuousClock.now.advanced(by: options.tlsRenewalDuration)
      let (load, renewals) = try await withThrowingTaskGroup(of: Int.self) { group in
        // A new certificate every second while the handshakes run, the last one a second before they end.
        group.addTask {
          var renewals = 0
          while ContinuousClock.now.advanced(by: .seconds(1)) < deadline {
            try await Task.sleep(for: .seconds(1))
            try await storeNewLeaf(material)
            renewals += 1
          }
          return renewals
        }
        let load = try await handshakes(port: httpsPort, for: options.tlsRenewalDuration)
        var renewals = 0
        for try await count in group { renewals += count }
        return (load, renewals)
      }
      var result = ScenarioResult(name: "tls", strategy: "runtime", variant: "lb1: renewed in etcd every second")
      add(load, to: &result)
      result.add("renewals", Double(renewals))
      result.add("reloads", try await lbNode.reloads() - reloadsBefore)
      return result
    }
    results.append(renewal)
    return results
  }

  /// Adds a load's figures: handshakes per second, the completed and failed handshakes, and how many
  /// certificates were served.
  private func add(_ load: TLSHandshakeLoad.Result, to result: inout ScenarioResult) {
    result.add("handshakes_per_s", load.perSecond)
    result.add("handshakes", Double(load.succeeded))
    result.add("failed", Double(load.failed))
    result.add("certificates_seen", Double(load.fingerprints.count))
    if !load.failures.isEmpty {
      // Printed, not a failure of the run: the bench measures.
      let reasons = load.failures.sorted { $0.value > $1.value }.prefix(3).map { "\($0.value)× \($0.key)" }
      result.variant += " (failed: " + reasons.joined(separator: "; ") + ")"
    }
  }

  /// Full handshakes with `port` for `duration`, after a short warm-up that is not counted (the first
  /// connections of a run pay for the client's and the server's lazy set-up).
  private func handshakes(port: Int, for duration: Duration) async throws -> TLSHandshakeLoad.Result {
    let load = TLSHandshakeLoad(
      port: port, serverName: Self.serverName, trustRootsPEMFile: lab.directory.path("tls-bench/pki/ca.pem"),
      concurrency: options.tlsConcurrency)
    _ = try await load.run(for: .milliseconds(300))
    return try await load.run(for: duration)
  }

  private func makeMaterial() throws -> Material {
    let directory = lab.directory.path("tls-bench")
    try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
    chmod(directory, 0o700)
    let authority = try CertificateAuthority.create(
      in: directory + "/pki", commonName: "Switchyard bench CA", days: 2)
    let key = ClusterKey.generate()
    let keyFile = directory + "/cluster.key"
    try key.fileContents.write(toFile: keyFile, atomically: true, encoding: .utf8)
    chmod(keyFile, 0o600)
    return Material(
      authority: authority, clusterKeyFile: keyFile, clusterKey: key,
      name: try CertificateName(validating: Self.certificateName))
  }

  /// Issues a new P-256 leaf (a new key) for `localhost` and 127.0.0.1, validates it, and writes it to etcd
  /// sealed with the cluster key.
  @discardableResult
  private func storeNewLeaf(_ material: Material) async throws -> CertificateBundle {
    let pair = try material.authority.issue(
      name: "leaf", commonName: Self.serverName,
      usage: .server(ipAddresses: ["127.0.0.1"], dnsNames: [Self.serverName]), days: 1)
    let bundle = try CertificateBundle.validate(
      name: material.name, chainPEM: String(contentsOfFile: pair.certificate, encoding: .utf8),
      keyPEM: String(contentsOfFile: pair.key, encoding: .utf8), hosts: nil, now: Date())
    let record = bundle.record(sealedWith: material.clusterKey, source: .manual)
    try await lab.etcd.put(record.path, value: record.jsonValue())
    return bundle
  }

  /// A controller serving HTTPS on `httpsPort` with the certificate from etcd by default.
  private func withHTTPSNode<Result>(
    _ material: Material, httpsPort: Int, _ body: (LBNode) async throws -> Result
  ) async throws -> Result {
    try await LBNode.with(
      lab: lab, strategy: "runtime",
      extraArguments: [
        "--listen-https", "127.0.0.1:\(httpsPort)", "--cluster-key", material.clusterKeyFile,
        "--default-certificate", Self.certificateName,
      ], body)
  }

  /// Waits until `port` presents the certificate with `fingerprint` (SHA-1, upper-case hex).
  private func waitServing(port: Int, fingerprint: String, lbNode: LBNode) async throws {
    let deadline = ContinuousClock.now.advanced(by: .seconds(20))
    var seen = "nothing"
    while ContinuousClock.now < deadline {
      if let certificate = try? await TLSClient.handshake(
        port: port, serverName: Self.serverName, trustRootsPEMFile: nil)
      {
        if certificate.sha1Fingerprint == fingerprint { return }
        seen = certificate.description
      }
      try await Task.sleep(for: .milliseconds(50))
    }
    throw ProcessError(
      "the node did not serve the certificate from etcd within 20 s (it serves \(seen)):\n\(lbNode.controller.logTail())"
    )
  }

  /// An HAProxy started alone with `bind 127.0.0.1:<port> ssl crt <file>` and the same ALPN as a node's
  /// HTTPS listener; stopped however `body` ends.
  private func withPlainHAProxy<Result>(
    certificateFile: String, _ body: (Int) async throws -> Result
  ) async throws -> Result {
    let port = try FreePort.allocate()
    let configuration = lab.directory.path("tls-bench/haproxy.cfg")
    try """
    global
      maxconn 4096
    defaults
      mode http
      timeout connect 5s
      timeout client 30s
      timeout server 30s
    frontend https
      bind 127.0.0.1:\(port) ssl crt \(certificateFile) alpn h2,http/1.1
      http-request return status 200
    """.appending("\n").write(toFile: configuration, atomically: true, encoding: .utf8)
    let haproxy = try ManagedProcess(
      lab.haproxyExecutable, arguments: ["-db", "-f", configuration],
      logPath: lab.directory.path("tls-bench/haproxy.log"))
    do {
      let listening = await eventually(timeout: .seconds(10)) {
        (try? await TLSClient.handshake(port: port, serverName: Self.serverName, trustRootsPEMFile: nil)) != nil
      }
      guard listening else { throw ProcessError("the lone HAProxy did not serve TLS:\n\(haproxy.logTail())") }
      let result = try await body(port)
      await haproxy.terminate()
      return result
    } catch {
      await haproxy.terminate()
      throw error
    }
  }
}
