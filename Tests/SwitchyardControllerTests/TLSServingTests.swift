import Foundation
import HAProxyKit
import Logging
import SwitchyardLab
import SwitchyardModel
import SwitchyardPKI
import SwitchyardProcess
import SwitchyardReconcile
import Testing

/// HTTPS at the edge on a real HAProxy (2.6 from PATH; 3.0 with Debian 13's binary first in PATH): the
/// configuration ConfigRenderer writes for a node with `httpsListen`, certificates from SwitchyardPKI's CA,
/// and every change made through the Runtime API with no reload.
@Suite(.serialized) struct TLSServingTests {
  static let logger = Logger(label: "tls-serving-tests", factory: { _ in SwiftLogNoOpLogHandler() })

  /// One HAProxy serving a rendered configuration with HTTPS, one backend, and routes with TLS options.
  struct Node {
    let temporary: TemporaryDirectory
    let state: StateDirectory
    let settings: NodeSettings
    let authority: CertificateAuthority
    let backend: HTTPTestServer
    let process: HAProxyProcess
    var api: RuntimeAPI { RuntimeAPI(stateDirectory: state, logger: TLSServingTests.logger) }
    var httpPort: Int { settings.listen.port }
    var httpsPort: Int { settings.httpsListen!.port }
    var ca: String { authority.certificate }

    /// A new certificate (new key and serial) for `host`, certificate and key in one PEM.
    func pem(_ name: String, host: String) throws -> String {
      let pair = try authority.issue(
        name: name, commonName: host, usage: .server(ipAddresses: [], dnsNames: [host]), days: 2)
      return try String(contentsOfFile: pair.certificate, encoding: .utf8)
        + String(contentsOfFile: pair.key, encoding: .utf8)
    }

    func handshake(_ serverName: String?) async throws -> PeerCertificate {
      try await TLSClient.handshake(port: httpsPort, serverName: serverName, trustRootsPEMFile: ca)
    }

    /// The worker's PID and the master's reload count: unchanged when nothing reloaded.
    func processes() async throws -> [Int32] {
      let list = try await process.masterCLI().showProc()
      return [Int32(list.reloads)] + list.workers.map(\.pid)
    }

    static func route(_ name: String, _ json: String) throws -> Route {
      try Route.parse(key: Array("\(Route.root)\(name)".utf8), value: Array(json.utf8))
    }

    static func start() async throws -> Node {
      let temporary = try TemporaryDirectory(prefix: "sy-tls")
      do {
        let state = try StateDirectory(path: temporary.path("state"))
        let settings = try NodeSettings(
          nodeID: "lb1", listen: HostPort(parsing: "127.0.0.1:\(try FreePort.allocate())"),
          httpsListen: HostPort(parsing: "127.0.0.1:\(try FreePort.allocate())"),
          stats: HostPort(parsing: "127.0.0.1:\(try FreePort.allocate())"), defaultService: nil,
          adminSocketPath: state.adminSocketPath)
        let authority = try CertificateAuthority.create(
          in: temporary.path("pki"), commonName: "TLSServingTests CA", days: 2)
        let backend = try await HTTPTestServer.start(name: "web-1")
        let instance = ServiceInstance(
          key: RegistrationKey(service: .backend, instance: try InstanceID(validating: "web-1")),
          registration: try Registration(address: Address(validating: "127.0.0.1"), port: backend.port),
          modRevision: 1)
        let routes = [
          try route(
            "secure",
            #"{"service":"backend","hosts":["secure.test"],"redirect_https":true,"hsts_max_age":600,"hsts_include_subdomains":true}"#
          ),
          try route("hsts", #"{"service":"backend","hosts":["hsts.test"],"hsts_max_age":300}"#),
          try route("plain", #"{"service":"backend","hosts":["plain.test"]}"#),
        ]
        var desired = DesiredState(revision: 1, services: [.backend], instances: [instance])
        desired = desired.with(routes: desired.routeTable(routes))
        let rendered = ConfigRenderer.render(desired, settings: settings)
        try FileManager.default.createDirectory(
          atPath: settings.tlsDirectoryPath + "/certs", withIntermediateDirectories: true)
        let node0 = (authority, settings)
        func write(_ text: String, _ path: String) throws {
          try text.write(toFile: path, atomically: true, encoding: .utf8)
        }
        let pem = { (name: String, host: String) throws -> String in
          let pair = try node0.0.issue(
            name: name, commonName: host, usage: .server(ipAddresses: [], dnsNames: [host]), days: 2)
          return try String(contentsOfFile: pair.certificate, encoding: .utf8)
            + String(contentsOfFile: pair.key, encoding: .utf8)
        }
        try write(pem("default", "default.test"), settings.defaultCertificatePath)
        try write(pem("a", "a.test"), settings.certificatePath(for: "a"))
        try write(pem("b", "b.test"), settings.certificatePath(for: "b"))
        try write(
          "\(settings.certificatePath(for: "a")) a.test\n\(settings.certificatePath(for: "b")) b.test\n",
          settings.crtListPath)
        try write(rendered.routesMap, settings.routesMapPath)
        try write("", settings.acmeMapPath)
        try await ConfigInstaller(stateDirectory: state, logger: logger).install(rendered.text, at: state.configPath)
        let process = try await HAProxyProcess.start(stateDirectory: state, logger: logger)
        return Node(
          temporary: temporary, state: state, settings: settings, authority: authority, backend: backend,
          process: process)
      } catch {
        temporary.remove()
        throw error
      }
    }

    func stop() async {
      try? await process.stop()
      await backend.stop()
      temporary.remove()
    }
  }

  static func withNode(_ body: (Node) async throws -> Void) async throws {
    let node = try await Node.start()
    do {
      try await body(node)
    } catch {
      await node.stop()
      throw error
    }
    await node.stop()
  }

  @Test func sniPicksTheCertificateAndTheDefaultServesTheRest() async throws {
    try await Self.withNode { node in
      #expect(try await node.handshake("a.test").dnsNames == ["a.test"])
      #expect(try await node.handshake("b.test").dnsNames == ["b.test"])
      #expect(try await node.handshake("unknown.test").dnsNames == ["default.test"])
      #expect(try await node.handshake(nil).dnsNames == ["default.test"])
      let answer = try await TLSClient.get(
        port: node.httpsPort, path: "/", hostHeader: "plain.test", serverName: "plain.test", trustRootsPEMFile: node.ca)
      #expect(answer.status == 200 && answer.body == "Hello from web-1\n")
    }
  }

  @Test func certificatesAddedReplacedAndRemovedAtRuntimeAreServedAtOnceWithoutAReload() async throws {
    try await Self.withNode { node in
      let before = try await node.processes()
      let path = node.settings.certificatePath(for: "c")
      #expect(try await node.handshake("c.test").dnsNames == ["default.test"])
      try await node.api.installCertificate(path: path, pem: try node.pem("c1", host: "c.test"))
      try await node.api.addCrtListEntry(list: node.settings.crtListPath, certificatePath: path, sniFilters: ["c.test"])
      let first = try await node.handshake("c.test")
      #expect(first.dnsNames == ["c.test"])
      try await node.api.installCertificate(path: path, pem: try node.pem("c2", host: "c.test"))
      let second = try await node.handshake("c.test")
      #expect(second.dnsNames == ["c.test"] && second.sha1Fingerprint != first.sha1Fingerprint)
      try await node.api.deleteCrtListEntry(list: node.settings.crtListPath, certificatePath: path)
      try await node.api.deleteCertificate(path: path)
      #expect(try await node.handshake("c.test").dnsNames == ["default.test"])
      #expect(try await node.processes() == before, "HAProxy reloaded")
    }
  }

  @Test func renewalUnderLoadFailsNoHandshake() async throws {
    try await Self.withNode { node in
      let before = try await node.processes()
      let path = node.settings.certificatePath(for: "a")
      let old = try await node.handshake("a.test").sha1Fingerprint
      // Made before the load starts, so that key generation does not compete with it.
      let renewals = try (1...10).map { try node.pem("a-renewed-\($0)", host: "a.test") }
      var expected: Set<String> = [old]
      let load = TLSHandshakeLoad(
        port: node.httpsPort, serverName: "a.test", trustRootsPEMFile: node.ca, concurrency: 8)
      async let result = load.run(for: .seconds(5))
      for pem in renewals {
        try await Task.sleep(for: .milliseconds(400))
        try await node.api.installCertificate(path: path, pem: pem)
        expected.insert(try #require(try await node.api.certificateInfo(path: path)).sha1Fingerprint)
      }
      let seen = try await result
      print("TLS renewal under load: \(seen); certificates served: \(seen.fingerprints.values.sorted(by: >))")
      #expect(seen.failed == 0, "\(seen.failures)")
      #expect(seen.succeeded > 100)
      #expect(Set(seen.fingerprints.keys).isSubset(of: expected), "a handshake served an unexpected certificate")
      #expect(seen.fingerprints.count >= 5, "the renewals were not served under load")
      #expect(try await node.processes() == before, "HAProxy reloaded")
    }
  }

  @Test func redirectAndHSTSFollowTheRoutesOptions() async throws {
    try await Self.withNode { node in
      let redirected = try await TLSClient.get(
        port: node.httpPort, path: "/a/b?x=1&y=2", hostHeader: "Secure.test:\(node.httpPort)", tls: false)
      #expect(redirected.status == 308)
      #expect(redirected.header("location") == "https://secure.test:\(node.httpsPort)/a/b?x=1&y=2")
      #expect(redirected.header("strict-transport-security") == nil)
      let plain = try await TLSClient.get(port: node.httpPort, path: "/a?x=1", hostHeader: "plain.test", tls: false)
      #expect(plain.status == 200 && plain.body == "Hello from web-1\n" && plain.header("location") == nil)
      #expect(plain.header("strict-transport-security") == nil)
      let secure = try await TLSClient.get(
        port: node.httpsPort, path: "/a", hostHeader: "secure.test", serverName: "secure.test",
        trustRootsPEMFile: node.ca)
      #expect(secure.status == 200 && secure.header("strict-transport-security") == "max-age=600; includeSubDomains")
      let hstsPlain = try await TLSClient.get(port: node.httpPort, path: "/", hostHeader: "hsts.test", tls: false)
      #expect(hstsPlain.status == 200 && hstsPlain.header("strict-transport-security") == nil)
      let hsts = try await TLSClient.get(
        port: node.httpsPort, path: "/", hostHeader: "hsts.test", serverName: "hsts.test", trustRootsPEMFile: node.ca)
      #expect(hsts.status == 200 && hsts.header("strict-transport-security") == "max-age=300")
      let plainTLS = try await TLSClient.get(
        port: node.httpsPort, path: "/", hostHeader: "plain.test", serverName: "plain.test", trustRootsPEMFile: node.ca)
      #expect(plainTLS.status == 200 && plainTLS.header("strict-transport-security") == nil)
    }
  }

  @Test func acmeChallengesAreAnsweredFromTheMap() async throws {
    try await Self.withNode { node in
      let token = "Tok_en-123"
      let authorization = "\(token).\(String(repeating: "k", count: 42))Z"
      let line = try ACMEChallengeMap.line(token: token, keyAuthorization: authorization)
      let before = try await TLSClient.get(
        port: node.httpPort, path: "/.well-known/acme-challenge/\(token)", hostHeader: "secure.test", tls: false)
      #expect(before.status != 200)
      _ = try await node.api.send("add map \(node.settings.acmeMapPath) \(line)")
      // Before any redirect: a route that sends plain HTTP to HTTPS still answers the challenge.
      for host in ["secure.test", "any.test"] {
        let answer = try await TLSClient.get(
          port: node.httpPort, path: "/.well-known/acme-challenge/\(token)", hostHeader: host, tls: false)
        #expect(answer.status == 200 && answer.body == authorization, "\(host)")
      }
      for path in ["/.well-known/acme-challenge/unknown", "/.well-known/acme-challenge/\(token)/x"] {
        let answer = try await TLSClient.get(port: node.httpPort, path: path, hostHeader: "any.test", tls: false)
        #expect(answer.status != 200, "\(path)")
      }
    }
  }
}
