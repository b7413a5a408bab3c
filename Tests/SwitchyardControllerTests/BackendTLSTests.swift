import EtcdClient
import Foundation
import HAProxyKit
import SwitchyardController
import SwitchyardLab
import SwitchyardModel
import SwitchyardPKI
import SwitchyardProcess
import SwitchyardTestSupport
import Testing

/// Backends registered with `"tls": true`, with real etcd, controllers and HAProxy: verified against the
/// node's `--backend-ca`, refused when the certificate or its name is wrong, reported by a node without a CA,
/// and a plain instance turned into a TLS one at run time.
///
/// The TLS backends are `openssl s_server -WWW`, each serving a file `hello` with its own greeting.
@Suite(.serialized) struct BackendTLSTests {
  /// One `openssl s_server` on a free loopback port.
  final class TLSBackend: Sendable {
    let name: String
    let port: Int
    let process: ManagedProcess

    init(name: String, pair: KeyPair, directory: String) throws {
      self.name = name
      port = try FreePort.allocate(1)[0]
      let root = "\(directory)/www-\(name)"
      try FileManager.default.createDirectory(atPath: root, withIntermediateDirectories: true)
      try "Hello from \(name)\n".write(toFile: "\(root)/hello", atomically: true, encoding: .utf8)
      // `-WWW` serves files from the working directory; `exec` keeps the process the one that is stopped.
      process = try ManagedProcess(
        "/bin/sh",
        arguments: [
          "-c",
          "cd \(root) && exec openssl s_server -quiet -WWW -accept 127.0.0.1:\(port) -cert \(pair.certificate) -key \(pair.key)",
        ],
        logPath: "\(directory)/s_server-\(name).log")
    }

    /// Waits until the server accepts connections.
    func waitListening() async throws {
      try await retrying(timeout: .seconds(10)) {
        guard process.isRunning, Loopback.isPortInUse(port) else {
          throw TestSupportError("openssl s_server \(name) does not listen on \(port)")
        }
      }
    }

    func stop() async { await process.terminate(timeout: .seconds(5)) }
  }

  static let path = "/hello"

  /// The greetings of `count` requests through `node` (failed requests as `status N`).
  static func answers(_ node: LBNode, count: Int = 12) async -> [String] {
    var seen: [String] = []
    for _ in 0..<count {
      do {
        let (status, body) = try await HTTPLoadClient.get(node.url.dropLast() + path)
        seen.append(
          status == 200
            ? body.replacingOccurrences(of: "Hello from ", with: "").trimmingCharacters(in: .whitespacesAndNewlines)
            : "status \(status)")
      } catch {
        seen.append("error")
      }
    }
    return seen
  }

  static func register(
    _ etcd: EtcdClient, _ id: String, port: Int, tls: Bool, name: String? = nil
  ) async throws {
    let key = RegistrationKey(service: .backend, instance: try InstanceID(validating: id))
    let value = try Registration(
      address: Address(validating: "127.0.0.1"), port: port, checkPath: path, tls: tls, tlsServerName: name)
    try await etcd.put(key.path, value: value.encoded())
  }

  /// Whether HAProxy's health check has `server` up.
  static func isUp(_ node: LBNode, _ server: String) async throws -> Bool {
    let api = RuntimeAPI(socketPath: "\(node.stateDirectory)/admin.sock", logger: quietLogger)
    return try await api.serversState(backend: "svc_backend").first { $0.server == server }?.operationalState
      == .running
  }

  @Test func tlsBackendsAreVerifiedAndKindChangesApplyWithoutReload() async throws {
    let directory = try TemporaryDirectory(prefix: "backend-tls")
    defer { directory.remove() }
    let trusted = try CertificateAuthority.create(in: "\(directory.path)/ca", commonName: "backend CA", days: 2)
    let other = try CertificateAuthority.create(in: "\(directory.path)/other", commonName: "other CA", days: 2)
    let usage = CertificateAuthority.Usage.server(ipAddresses: ["127.0.0.1"], dnsNames: ["good.test"])
    let goodPair = try trusted.issue(name: "good", commonName: "good.test", usage: usage, days: 1)
    let strangerPair = try other.issue(name: "stranger", commonName: "good.test", usage: usage, days: 1)

    var backends: [TLSBackend] = []
    let cluster = try await EtcdCluster.start(members: 1)
    let withCA = try LBNode(
      name: "lb1", endpoints: cluster.endpoints, extraArguments: ["--backend-ca", trusted.certificate])
    let withoutCA = try LBNode(name: "lb2", endpoints: cluster.endpoints)
    let plain = try await HTTPTestServer.start(name: "plain")
    do {
      let good = try TLSBackend(name: "good", pair: goodPair, directory: directory.path)
      let stranger = try TLSBackend(name: "stranger", pair: strangerPair, directory: directory.path)
      let flip = try TLSBackend(name: "flip", pair: goodPair, directory: directory.path)
      backends = [good, stranger, flip]
      for backend in backends { try await backend.waitListening() }
      for node in [withCA, withoutCA] { try node.start() }
      for node in [withCA, withoutCA] { try await node.waitReady() }
      try await withRegistry(cluster) { etcd in
        try await Self.register(etcd, "plain", port: plain.port, tls: false)
        try await Self.register(etcd, "good", port: good.port, tls: true, name: "good.test")
        // A certificate from a CA the node does not trust.
        try await Self.register(etcd, "stranger", port: stranger.port, tls: true)
        // The right CA, but the name asked for is not the certificate's.
        try await Self.register(etcd, "misnamed", port: good.port, tls: true, name: "elsewhere.test")
        // Registered as plain HTTP at a TLS port: its check fails until it says tls.
        try await Self.register(etcd, "flip", port: flip.port, tls: false)

        // Right after the registrations, before the checks took the refused servers out: a request sent to
        // one fails its TLS handshake and is retried on another server (retry-on conn-failure, redispatch).
        try await retrying(timeout: .seconds(10)) {
          let count = try await withCA.servers().count
          guard count == 5 else { throw TestSupportError("lb1 runs \(count) servers") }
        }
        let early = await Self.answers(withCA, count: 24)
        print("backend TLS: first 24 answers on lb1: \(Dictionary(grouping: early, by: { $0 }).mapValues(\.count))")
        #expect(early.allSatisfy { ["good", "plain", "status 503"].contains($0) })
        // lb1 verifies: only `good` and `plain` answer; the others are taken out by their health checks.
        try await retrying(timeout: .seconds(15)) {
          let seen = await Self.answers(withCA)
          guard Set(seen) == ["good", "plain"] else { throw TestSupportError("lb1 answered \(seen)") }
        }
        // Their health checks fail (HAProxy: "Server presented an SSL certificate different from the …").
        for server in ["stranger", "misnamed", "flip"] {
          try await retrying(timeout: .seconds(10)) {
            guard try await !Self.isUp(withCA, server) else { throw TestSupportError("\(server) is up on lb1") }
          }
        }
        #expect(try await Self.isUp(withCA, "good"))

        // lb2 has no CA: the TLS instances are reported, not served; the plain one is.
        try await retrying(timeout: .seconds(10)) {
          let state = try await withoutCA.state()
          let reported = state.invalidEntries.filter { $0.reason.contains("asks for TLS") }.map(\.key).sorted()
          guard reported == ["/services/backend/good", "/services/backend/misnamed", "/services/backend/stranger"]
          else { throw TestSupportError("lb2 reports \(state.invalidEntries)") }
          #expect(
            state.invalidEntries.contains {
              $0.reason.contains("instance good asks for TLS but this node has no --backend-ca")
            })
        }
        let servers = try await withoutCA.servers()
        #expect(Set(servers.keys) == ["plain", "flip"])
        #expect(Set(await Self.answers(withoutCA)) == ["plain"])

        // Plain to TLS at run time, then a server name fixed: applied through the Runtime API.
        let reloadsBefore = try await withCA.state().reloads
        try await Self.register(etcd, "flip", port: flip.port, tls: true)
        try await retrying(timeout: .seconds(15)) {
          let seen = await Self.answers(withCA)
          guard Set(seen) == ["good", "plain", "flip"] else { throw TestSupportError("lb1 answered \(seen)") }
        }
        try await Self.register(etcd, "misnamed", port: good.port, tls: true, name: "good.test")
        try await retrying(timeout: .seconds(15)) {
          guard try await Self.isUp(withCA, "misnamed") else { throw TestSupportError("misnamed is still down") }
        }
        // And back: TLS to plain, at a TLS port, so its check fails again.
        try await Self.register(etcd, "flip", port: flip.port, tls: false)
        try await retrying(timeout: .seconds(15)) {
          guard try await !Self.isUp(withCA, "flip") else { throw TestSupportError("flip is still up") }
        }
        let reloadsAfter = try await withCA.state().reloads
        #expect(reloadsAfter == reloadsBefore, "reloads went from \(reloadsBefore) to \(reloadsAfter)")
        // lb2 now serves flip as a plain server (and still no TLS instance).
        #expect(try await withoutCA.state().invalidEntries.count == 3)
        print(
          "backend TLS: HAProxy \(try await withCA.state().haproxyVersion ?? "?"), reloads on lb1 before the"
            + " changes \(reloadsBefore), after \(reloadsAfter)")
        let log = withCA.log() + withoutCA.log()
        #expect(!log.contains("PRIVATE KEY"))
      }
    } catch {
      Issue.record("lb1 log:\n\(withCA.log())\nlb2 log:\n\(withoutCA.log())")
      for backend in backends { await backend.stop() }
      await plain.close()
      await withCA.cleanup()
      await withoutCA.cleanup()
      await cluster.shutdown()
      throw error
    }
    for backend in backends { await backend.stop() }
    await plain.close()
    await withCA.cleanup()
    await withoutCA.cleanup()
    await cluster.shutdown()
  }

  @Test func backendCAMustHoldCertificates() async throws {
    let directory = try TemporaryDirectory(prefix: "backend-ca-flag")
    defer { directory.remove() }
    let empty = "\(directory.path)/empty.pem"
    try "not a certificate\n".write(toFile: empty, atomically: true, encoding: .utf8)
    for (path, expected) in [
      ("\(directory.path)/missing.pem", "does not exist"), (empty, "holds no PEM certificate"),
      (directory.path, "is a directory"),
    ] {
      let output = "\(directory.path)/out-\(expected.count).log"
      let process = try ManagedProcess(
        switchyardBinary,
        arguments: ["controller", "--node-id", "lb1", "--state-dir", "\(directory.path)/state", "--backend-ca", path],
        logPath: output)
      _ = await process.waitForExit(timeout: .seconds(10))
      let text = (try? String(contentsOfFile: output, encoding: .utf8)) ?? ""
      #expect(text.contains("--backend-ca") && text.contains(expected), "\(text)")
    }
  }
}
