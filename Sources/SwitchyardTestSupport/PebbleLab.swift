import AsyncHTTPClient
import Foundation
import NIOCore
import NIOSSL
import SwitchyardLab
import SwitchyardPKI
import SwitchyardProcess

/// Pebble, Let's Encrypt's ACME test server, with a dnsmasq of its own, on free loopback ports.
///
/// Pebble's HTTPS certificate comes from a fresh ``CertificateAuthority`` (``caCertificate`` is what an ACME
/// client trusts); it validates HTTP-01 challenges on `127.0.0.1:<httpPort>` (the test's responder) and
/// resolves names through dnsmasq, which answers 127.0.0.1 for `example.test` and every name under it and
/// nothing else (no upstream, no hosts file). Pebble runs with `PEBBLE_VA_NOSLEEP=1` (validation at once),
/// `PEBBLE_WFE_NONCEREJECT=0` (no random `badNonce`) and `PEBBLE_AUTHZREUSE=0` (every order gets fresh
/// authorizations), so tests are quick and repeatable. Both processes are stopped by ``shutdown()``, and
/// killed by their ``ManagedProcess`` if the lab is dropped.
public final class PebbleLab: Sendable {
  /// The ACME directory URL.
  public let directoryURL: String
  /// The PEM file of the CA that signed Pebble's HTTPS certificate.
  public let caCertificate: String
  /// Where Pebble validates HTTP-01 challenges.
  public let httpPort: Int
  /// Pebble's management interface (`/roots/0`, …).
  public let managementURL: String
  /// The lab's files: config, certificates, logs.
  public let directory: TemporaryDirectory

  private let pebble: ManagedProcess
  private let dnsmasq: ManagedProcess

  private init(
    directoryURL: String, caCertificate: String, httpPort: Int, managementURL: String, directory: TemporaryDirectory,
    pebble: ManagedProcess, dnsmasq: ManagedProcess
  ) {
    self.directoryURL = directoryURL
    self.caCertificate = caCertificate
    self.httpPort = httpPort
    self.managementURL = managementURL
    self.directory = directory
    self.pebble = pebble
    self.dnsmasq = dnsmasq
  }

  /// Starts dnsmasq and Pebble; returns once Pebble accepts connections.
  ///
  /// - Parameter httpPort: Where Pebble sends HTTP-01 validation requests (a responder the test runs).
  public static func start(httpPort: Int, environment extra: [String: String] = [:]) async throws -> PebbleLab {
    let directory = try TemporaryDirectory(prefix: "pebble")
    do {
      let authority = try CertificateAuthority.create(in: directory.path, commonName: "Pebble lab CA", days: 2)
      let server = try authority.issue(
        name: "pebble", commonName: "localhost",
        usage: .server(ipAddresses: ["127.0.0.1"], dnsNames: ["localhost"]), days: 2)
      let ports = try FreePort.allocate(3)
      let (acmePort, managementPort, dnsPort) = (ports[0], ports[1], ports[2])
      let config: [String: Any] = [
        "pebble": [
          "listenAddress": "127.0.0.1:\(acmePort)",
          "managementListenAddress": "127.0.0.1:\(managementPort)",
          "certificate": server.certificate,
          "privateKey": server.key,
          "httpPort": httpPort,
          "tlsPort": try FreePort.allocate(),
          "ocspResponderURL": "",
          "externalAccountBindingRequired": false,
        ]
      ]
      let configPath = directory.path("pebble-config.json")
      try JSONSerialization.data(withJSONObject: config, options: [.prettyPrinted, .sortedKeys])
        .write(to: URL(fileURLWithPath: configPath))
      let dnsmasq = try ManagedProcess(
        "/usr/sbin/dnsmasq",
        arguments: [
          "--no-daemon", "--keep-in-foreground", "--port=\(dnsPort)", "--listen-address=127.0.0.1",
          "--bind-interfaces", "--no-resolv", "--no-hosts", "--address=/example.test/127.0.0.1", "--user=root",
          "--pid-file=", "--log-queries",
        ],
        logPath: directory.path("dnsmasq.log"))
      var environment = ProcessInfo.processInfo.environment
      environment["PEBBLE_VA_NOSLEEP"] = "1"
      environment["PEBBLE_WFE_NONCEREJECT"] = "0"
      environment["PEBBLE_AUTHZREUSE"] = "0"
      environment.merge(extra) { _, new in new }
      let pebble = try ManagedProcess(
        "pebble", arguments: ["-config", configPath, "-dnsserver", "127.0.0.1:\(dnsPort)"],
        environment: environment, logPath: directory.path("pebble.log"))
      let lab = PebbleLab(
        directoryURL: "https://127.0.0.1:\(acmePort)/dir", caCertificate: authority.certificate, httpPort: httpPort,
        managementURL: "https://127.0.0.1:\(managementPort)", directory: directory, pebble: pebble, dnsmasq: dnsmasq)
      let started = await eventually(timeout: .seconds(10), every: .milliseconds(50)) {
        guard pebble.isRunning, dnsmasq.isRunning else { return true }
        return Loopback.isPortInUse(acmePort) && Loopback.isPortInUse(managementPort)
      }
      guard started, pebble.isRunning, dnsmasq.isRunning else {
        await lab.shutdown()
        throw TestSupportError(
          .notHealthy,
          "Pebble or dnsmasq did not start:\npebble: \(pebble.logTail())\ndnsmasq: \(dnsmasq.logTail())")
      }
      return lab
    } catch {
      directory.remove()
      throw error
    }
  }

  /// Starts a lab, runs `body`, and stops the lab however `body` ends.
  public nonisolated(nonsending) static func with<Result>(
    httpPort: Int, _ body: (PebbleLab) async throws -> Result
  ) async throws -> Result {
    let lab = try await start(httpPort: httpPort)
    do {
      let result = try await body(lab)
      await lab.shutdown()
      return result
    } catch {
      await lab.shutdown()
      throw error
    }
  }

  /// The PEM of the root that signs the certificates Pebble issues (`/roots/0` on the management port; a
  /// new one every time Pebble starts).
  public func issuingRoot() async throws -> String {
    let roots = try NIOSSLCertificate.fromPEMFile(caCertificate)
    var tls = TLSConfiguration.makeClientConfiguration()
    tls.trustRoots = .certificates(roots)
    let client = HTTPClient(
      eventLoopGroup: HTTPClient.defaultEventLoopGroup, configuration: .init(tlsConfiguration: tls))
    do {
      let response = try await client.execute(
        HTTPClientRequest(url: "\(managementURL)/roots/0"), timeout: .seconds(5))
      let body = try await response.body.collect(upTo: 1 << 20)
      try await client.shutdown()
      guard response.status == .ok else {
        throw TestSupportError(.other, "Pebble's /roots/0 answered \(response.status.code)")
      }
      return String(buffer: body)
    } catch {
      try? await client.shutdown()
      throw error
    }
  }

  /// Pebble's log, for failure messages.
  public func pebbleLog(bytes: Int = 4_000) -> String { pebble.logTail(bytes: bytes) }

  /// Stops Pebble and dnsmasq and deletes the lab's files; safe to call more than once.
  public func shutdown() async {
    await pebble.terminate(timeout: .seconds(3))
    await dnsmasq.terminate(timeout: .seconds(3))
    directory.remove()
  }
}
