import EtcdClient
import Foundation
import SwitchyardCerts
import SwitchyardLab
import SwitchyardModel
import SwitchyardPKI
import SwitchyardProcess
import SwitchyardTestSupport
import Testing

/// Certificates kept in etcd and served by a real controller's HAProxy: SNI, the default certificate,
/// renewal under load without a reload or a failed handshake, a refused record keeping the last good
/// one, removal, and no key anywhere in `/state`.
@Suite("Edge TLS: certificates from etcd served by HAProxy", .serialized)
struct EdgeTLSTests {
  /// A CA, a cluster key and leaf certificates for the test's host names.
  struct Material {
    let directory: TemporaryDirectory
    let authority: CertificateAuthority
    let clusterKey: ClusterKey
    var clusterKeyFile: String { "\(directory.path)/cluster.key" }

    init() throws {
      directory = try TemporaryDirectory(prefix: "edge-tls")
      authority = try CertificateAuthority.create(in: directory.path, commonName: "Edge TLS test CA", days: 2)
      clusterKey = ClusterKey.generate()
      try clusterKey.fileContents.write(toFile: clusterKeyFile, atomically: true, encoding: .utf8)
    }

    /// A new leaf for `hosts`, validated as the CLI would.
    func bundle(_ name: String, hosts: [String]) throws -> CertificateBundle {
      let pair = try authority.issue(
        name: "\(name)-\(UUID().uuidString.prefix(6))", commonName: hosts[0],
        usage: .server(ipAddresses: [], dnsNames: hosts), days: 2)
      return try CertificateBundle.validate(
        name: try CertificateName(validating: name),
        chainPEM: try String(contentsOfFile: pair.certificate, encoding: .utf8),
        keyPEM: try String(contentsOfFile: pair.key, encoding: .utf8), hosts: nil, now: Date())
    }

    /// Writes `bundle` to etcd, sealed, as `switchyard cert add` does.
    func put(_ bundle: CertificateBundle, _ etcd: EtcdClient) async throws {
      let record = bundle.record(sealedWith: clusterKey, source: .manual)
      try await etcd.put(CertificateRecord.path(for: bundle.name), value: record.jsonValue())
    }
  }

  /// The certificate the node presents for `serverName`, once it is the one with `fingerprint`.
  func waitServed(
    port: Int, serverName: String?, fingerprint: String, timeout: Duration = .seconds(10)
  ) async throws {
    try await retrying(timeout: timeout) {
      let peer = try await TLSClient.handshake(port: port, serverName: serverName, trustRootsPEMFile: nil)
      guard peer.sha256Fingerprint.lowercased() == fingerprint.lowercased() else {
        throw TestSupportError("\(serverName ?? "no SNI"): served \(peer), not \(fingerprint.prefix(16))")
      }
    }
  }

  @Test("SNI picks the certificate, the default serves the rest; renewal under load: 0 failed handshakes, 0 reloads")
  func servedRenewedRemoved() async throws {
    let material = try Material()
    defer { material.directory.remove() }
    let httpsPort = try FreePort.allocate(1)[0]
    let arguments = ["--listen-https", "127.0.0.1:\(httpsPort)", "--cluster-key", material.clusterKeyFile]
    try await withNodes(extraArguments: arguments) { cluster, nodes, etcd in
      let node = nodes[0]
      let backend = try await HTTPTestServer.start(name: "web")
      defer { Task { await backend.stop() } }
      try await etcd.register("web-1", port: backend.port)
      let shop = try material.bundle("shop", hosts: ["shop.example.test"])
      let api = try material.bundle("api", hosts: ["api.example.test", "*.api.example.test"])
      try await material.put(shop, etcd)
      try await material.put(api, etcd)
      try await waitServed(port: httpsPort, serverName: "shop.example.test", fingerprint: shop.sha256Fingerprint)
      try await waitServed(port: httpsPort, serverName: "v2.api.example.test", fingerprint: api.sha256Fingerprint)
      // No SNI, or a name nothing serves: the self-signed default.
      for name in [nil, "other.example.test"] {
        let peer = try await TLSClient.handshake(port: httpsPort, serverName: name, trustRootsPEMFile: nil)
        #expect(peer.dnsNames == [CertificateBundle.selfSignedHost], "\(name ?? "no SNI") got \(peer)")
      }
      // A request over HTTPS reaches the backend, verified by the CA.
      try await retrying(timeout: .seconds(10)) {
        let response = try await TLSClient.get(
          port: httpsPort, path: "/", hostHeader: "shop.example.test", serverName: "shop.example.test",
          trustRootsPEMFile: material.authority.certificate)
        guard response.status == 200 else { throw TestSupportError("HTTPS GET answered \(response.status)") }
      }

      // Renewal under load: a new certificate for shop, every handshake gets the old or the new one.
      let before = try await node.state()
      let pid = node.haproxyPID
      let load = TLSHandshakeLoad(
        port: httpsPort, serverName: "shop.example.test", trustRootsPEMFile: material.authority.certificate,
        concurrency: 4)
      async let counted = load.run(for: .seconds(4))
      var renewed: [CertificateBundle] = []
      for _ in 0..<3 {
        try await Task.sleep(for: .milliseconds(800))
        let next = try material.bundle("shop", hosts: ["shop.example.test"])
        try await material.put(next, etcd)
        renewed.append(next)
      }
      let result = try await counted
      print("edge-tls renewal under load: \(result)")
      #expect(result.failed == 0, "failed handshakes: \(result.failures)")
      #expect(result.succeeded > 0)
      let allowed = Set(([shop] + renewed).map { $0.sha1Fingerprint.lowercased() })
      #expect(Set(result.fingerprints.keys.map { $0.lowercased() }).isSubset(of: allowed))
      try await waitServed(
        port: httpsPort, serverName: "shop.example.test", fingerprint: renewed.last!.sha256Fingerprint)
      let after = try await node.state()
      #expect(after.reloads == before.reloads, "a certificate change reloaded HAProxy")
      #expect(node.haproxyPID == pid)

      // A record that does not validate (key of another certificate): refused, the last good one stays.
      let stranger = try material.bundle("shop", hosts: ["shop.example.test"])
      var mismatched =
        try JSONSerialization.jsonObject(
          with: Data(stranger.record(sealedWith: material.clusterKey, source: .manual).jsonValue())) as! [String: Any]
      let good =
        try JSONSerialization.jsonObject(
          with: Data(renewed.last!.record(sealedWith: material.clusterKey, source: .manual).jsonValue()))
        as! [String: Any]
      mismatched["sealed_key"] = good["sealed_key"]
      try await etcd.put(
        CertificateRecord.path(for: stranger.name), value: Array(try JSONSerialization.data(withJSONObject: mismatched))
      )
      try await retrying(timeout: .seconds(10)) {
        let state = try await node.state()
        guard let entry = state.certificates?.first(where: { $0.name == "shop" }), entry.state == "invalid" else {
          throw TestSupportError("shop not reported invalid: \(String(describing: state.certificates))")
        }
        #expect(entry.problem?.contains("does not match") == true, "\(entry.problem ?? "-")")
      }
      try await waitServed(
        port: httpsPort, serverName: "shop.example.test", fingerprint: renewed.last!.sha256Fingerprint,
        timeout: .seconds(2))
      #expect(node.log().contains("Refused the certificate record in etcd"))
      // `switchyard status` shows the node's refusal.
      let status = try await ManagedProcess.run(
        switchyardBinary, arguments: ["status", "--etcd-endpoints", cluster.endpoints.joined(separator: ",")])
      #expect(status.contains("lb1: certificate shop: invalid"), "\(status)")
      #expect(!status.contains("PRIVATE KEY"))

      // Removed: api's names fall back to the default certificate, and its file goes.
      try await etcd.delete(.key(CertificateRecord.path(for: api.name)))
      try await retrying(timeout: .seconds(10)) {
        let peer = try await TLSClient.handshake(
          port: httpsPort, serverName: "api.example.test", trustRootsPEMFile: nil)
        guard peer.dnsNames == [CertificateBundle.selfSignedHost] else { throw TestSupportError("still \(peer)") }
      }
      let apiFile = "\(node.stateDirectory)/tls/certs/api.pem"
      try await retrying(timeout: .seconds(5)) {
        guard !FileManager.default.fileExists(atPath: apiFile) else { throw TestSupportError("\(apiFile) is left") }
      }
      // No key in /state, in any form.
      let (_, stateText) = try await HTTPLoadClient.get("\(node.adminURL)/state")
      #expect(!stateText.contains("PRIVATE KEY"))
      #expect(!stateText.contains(shop.keyPEMForTests.split(separator: "\n")[1]))
      // The metrics: shop's expiry, one certificate refused (shop's newest record), no key.
      let metrics = try await node.metrics()
      #expect(metrics.contains(#"switchyard_certificate_not_after_seconds{name="shop"}"#))
      #expect(metrics.contains(#"switchyard_certificates{state="invalid"} 1"#))
      #expect(!metrics.contains(#"name="api""#))
      #expect(!metrics.contains("PRIVATE KEY"))
      #expect(!node.log().contains("PRIVATE KEY"))
      #expect((try await node.state()).reloads == before.reloads)
    }
  }

  @Test("--default-certificate serves a certificate from etcd to clients without SNI; files survive a restart")
  func namedDefault() async throws {
    let material = try Material()
    defer { material.directory.remove() }
    let httpsPort = try FreePort.allocate(1)[0]
    let arguments = [
      "--listen-https", "127.0.0.1:\(httpsPort)", "--cluster-key", material.clusterKeyFile,
      "--default-certificate", "fallback",
    ]
    try await withNodes(extraArguments: arguments) { cluster, nodes, etcd in
      let node = nodes[0]
      let fallback = try material.bundle("fallback", hosts: ["localhost"])
      try await material.put(fallback, etcd)
      try await waitServed(port: httpsPort, serverName: nil, fingerprint: fallback.sha256Fingerprint)
      try await waitServed(port: httpsPort, serverName: "localhost", fingerprint: fallback.sha256Fingerprint)
      // Restarted while etcd is away: HAProxy loads the files, the same certificate is served.
      await node.stop()
      try await cluster.stop(member: 0)
      try node.start()
      try await retrying(timeout: .seconds(20)) {
        let peer = try await TLSClient.handshake(port: httpsPort, serverName: nil, trustRootsPEMFile: nil)
        guard peer.sha256Fingerprint.lowercased() == fallback.sha256Fingerprint.lowercased() else {
          throw TestSupportError("served \(peer)")
        }
      }
    }
  }
}

extension CertificateBundle {
  /// The key's PEM block, from the file HAProxy would load (tests look for it where it must not be).
  var keyPEMForTests: String {
    let pem = haproxyPEM
    guard let end = pem.range(of: "-----END CERTIFICATE-----\n", options: .backwards) else { return "" }
    return String(pem[end.upperBound...])
  }
}
