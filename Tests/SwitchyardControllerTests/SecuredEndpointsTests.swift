import Foundation
import NIOCore
import NIOPosix
import NIOSSL
import SwitchyardTestSupport
import Testing

/// The stats page behind a password, and the admin endpoints over TLS, with a real controller and HAProxy.
@Suite("Secured stats page and admin endpoints", .serialized)
struct SecuredEndpointsTests {
  @Test("--stats-auth: the stats page answers 401 without the password or with a wrong one, 200 with it")
  func statsAuthentication() async throws {
    let secrets = try TemporaryDirectory(prefix: "stats-secret")
    defer { secrets.remove() }
    let password = "Stats-\(UUID().uuidString)"
    try "\(password)\n".write(toFile: secrets.path("stats-password"), atomically: true, encoding: .utf8)
    let cluster = try await EtcdCluster.start(members: 1)
    let node = try LBNode(
      name: "lb1",
      endpoints: cluster.endpoints,
      extraArguments: ["--stats-auth", "ops:\(secrets.path("stats-password"))"]
    )
    do {
      try node.start()
      try await node.waitReady()
      func stats(_ authorization: String?) async throws -> RawHTTP.Response {
        try await RawHTTP.get(port: node.statsPort, headers: authorization.map { ["Authorization": $0] } ?? [:])
      }
      let anonymous = try await stats(nil)
      #expect(anonymous.status == 401)
      #expect(anonymous.head.lowercased().contains("www-authenticate: basic realm=\"switchyard\""))
      #expect(!anonymous.body.contains("Statistics Report"))
      #expect(try await stats(RawHTTP.basic(user: "ops", password: "wrong-\(password)")).status == 401)
      #expect(try await stats(RawHTTP.basic(user: "other", password: password)).status == 401)
      let authorized = try await stats(RawHTTP.basic(user: "ops", password: password))
      #expect(authorized.status == 200)
      #expect(authorized.body.contains("Statistics Report"))

      let configPath = "\(node.stateDirectory)/haproxy.cfg"
      let config = try String(contentsOfFile: configPath, encoding: .utf8)
      #expect(!config.contains(password), "haproxy.cfg holds the password in clear")
      let userLine = try #require(config.split(separator: "\n").first { $0.hasPrefix("  user ops password $6$") })
      #expect(config.contains("http_auth(switchyard_stats)"))
      let controllerLog = node.log()
      #expect(!controllerLog.contains(password), "the controller logged the password")

      // A restarted controller keeps the hash that matches the password: the same file, no reload for a salt.
      await node.stop()
      try node.start()
      try await node.waitReady()
      let again = try String(contentsOfFile: configPath, encoding: .utf8)
      #expect(again.split(separator: "\n").first { $0.hasPrefix("  user ops password ") } == userLine)
      #expect(try await stats(RawHTTP.basic(user: "ops", password: password)).status == 200)
      #expect(try await stats(nil).status == 401)
    } catch {
      Issue.record("lb1 log:\n\(node.log())")
      await node.cleanup()
      await cluster.shutdown()
      throw error
    }
    await node.cleanup()
    await cluster.shutdown()
  }

  @Test("--admin-tls-cert: the admin endpoints answer over HTTPS with the certificate, and not in clear")
  func adminOverTLS() async throws {
    let certificates = try TemporaryDirectory(prefix: "admin-tls")
    defer { certificates.remove() }
    let files = try TLSFiles.generate(in: certificates.path)
    let cluster = try await EtcdCluster.start(members: 1)
    let node = try LBNode(
      name: "lb1",
      endpoints: cluster.endpoints,
      extraArguments: ["--admin-tls-cert", files.serverCertificate, "--admin-tls-key", files.serverKey]
    )
    do {
      try node.start()
      var trusting = TLSConfiguration.makeClientConfiguration()
      trusting.trustRoots = .file(files.caCertificate)
      try await retrying(timeout: .seconds(20)) {
        guard let controller = node.controller, controller.isRunning else {
          throw TestSupportError("controller exited: \(node.log())")
        }
        let ready = try await RawHTTP.get(
          port: node.adminPort, path: "/readyz", tls: trusting, serverHostname: "localhost")
        guard ready.status == 200 else { throw TestSupportError("not ready: \(ready.status) \(ready.body)") }
      }
      let health = try await RawHTTP.get(
        port: node.adminPort, path: "/healthz", tls: trusting, serverHostname: "localhost")
      #expect(health.status == 200 && health.body == "ok\n")
      let state = try await RawHTTP.get(
        port: node.adminPort, path: "/state", tls: trusting, serverHostname: "localhost")
      #expect(state.status == 200 && state.body.contains("\"node\""))

      // A client that does not trust the test CA refuses the certificate.
      var untrusting = TLSConfiguration.makeClientConfiguration()
      untrusting.trustRoots = .certificates([])
      await #expect(throws: (any Error).self) {
        _ = try await RawHTTP.get(port: node.adminPort, path: "/healthz", tls: untrusting, serverHostname: "localhost")
      }
      // Plain HTTP gets no answer from a TLS port.
      let plain = try? await RawHTTP.get(port: node.adminPort, path: "/healthz")
      #expect(plain?.status != 200)
    } catch {
      Issue.record("lb1 log:\n\(node.log())")
      await node.cleanup()
      await cluster.shutdown()
      throw error
    }
    await node.cleanup()
    await cluster.shutdown()
  }
}

extension SecuredEndpointsTests {
  @Test("etcd credentials from the environment: the password reaches neither HAProxy, the log nor /state")
  func credentialsFromEnvironment() async throws {
    let password = "Etcd-\(UUID().uuidString)"
    let wrongPassword = "Wrong-\(UUID().uuidString)"
    let cluster = try await EtcdCluster.start(members: 1)
    try await cluster.enableAuth(rootPassword: password)
    var environment = ProcessInfo.processInfo.environment
    environment["SWITCHYARD_ETCD_USER"] = "root"
    environment["SWITCHYARD_ETCD_PASSWORD"] = password
    let node = try LBNode(name: "lb1", endpoints: cluster.endpoints, environment: environment)
    environment["SWITCHYARD_ETCD_PASSWORD"] = wrongPassword
    let refused = try LBNode(name: "lb2", endpoints: cluster.endpoints, environment: environment)
    do {
      try node.start()
      try await node.waitReady()
      let haproxyPID = try #require(node.haproxyPID)
      let haproxyEnvironment = try String(contentsOfFile: "/proc/\(haproxyPID)/environ", encoding: .isoLatin1)
      // Booleans, so that a failure does not print the environment.
      let inheritedUser = haproxyEnvironment.contains("SWITCHYARD_ETCD_USER=root")
      let inheritedPassword = haproxyEnvironment.contains(password)
      #expect(inheritedUser, "not the environment the controller was given")
      #expect(!inheritedPassword, "HAProxy inherited the etcd password")
      let state = try await HTTPLoadClient.get("\(node.adminURL)/state").body
      #expect(!state.contains(password))
      #expect(!node.log().contains(password))

      // A controller whose password etcd refuses says so, without the password.
      try refused.start()
      let saidSo = await eventually(timeout: .seconds(15)) { refused.log().contains("could not log in") }
      #expect(saidSo, "\(refused.log())")
      #expect(!refused.log().contains(wrongPassword), "the log shows the refused password")
      if let refusedState = try? await HTTPLoadClient.get("\(refused.adminURL)/state").body {
        #expect(!refusedState.contains(wrongPassword))
      }
    } catch {
      Issue.record("lb1 log:\n\(node.log())\nlb2 log:\n\(refused.log())")
      await node.cleanup()
      await refused.cleanup()
      await cluster.shutdown()
      throw error
    }
    await node.cleanup()
    await refused.cleanup()
    await cluster.shutdown()
  }
}

/// A one-request HTTP/1.1 client over TCP to 127.0.0.1, optionally with TLS, that sends any header: enough to
/// test authentication and certificates without a proxy from the environment getting in the way.
enum RawHTTP {
  struct Response: Sendable {
    var status: Int
    var head: String
    var body: String
  }

  /// `Basic <base64(user:password)>`.
  static func basic(user: String, password: String) -> String {
    "Basic " + Data("\(user):\(password)".utf8).base64EncodedString()
  }

  static func get(
    port: Int,
    path: String = "/",
    headers: [String: String] = [:],
    tls: TLSConfiguration? = nil,
    serverHostname: String? = nil
  ) async throws -> Response {
    let context = try tls.map { try NIOSSLContext(configuration: $0) }
    let channel = try await ClientBootstrap(group: MultiThreadedEventLoopGroup.singleton)
      .connectTimeout(.seconds(5))
      .connect(host: "127.0.0.1", port: port) { channel in
        channel.eventLoop.makeCompletedFuture {
          if let context {
            try channel.pipeline.syncOperations.addHandler(
              try NIOSSLClientHandler(context: context, serverHostname: serverHostname)
            )
          }
          return try NIOAsyncChannel<ByteBuffer, ByteBuffer>(wrappingChannelSynchronously: channel)
        }
      }
    let headerLines = headers.sorted { $0.key < $1.key }.map { "\($0.key): \($0.value)\r\n" }.joined()
    let request = "GET \(path) HTTP/1.1\r\nHost: 127.0.0.1:\(port)\r\nConnection: close\r\n\(headerLines)\r\n"
    let received = try await withThrowingTaskGroup(of: ByteBuffer.self) { group in
      group.addTask {
        try await channel.executeThenClose { inbound, outbound in
          try await outbound.write(ByteBuffer(string: request))
          var received = ByteBuffer()
          do {
            for try await var chunk in inbound { received.writeBuffer(&chunk) }
          } catch NIOSSLError.uncleanShutdown where received.readableBytes > 0 {
            // A server that closes TCP without TLS's close_notify has still answered.
          }
          return received
        }
      }
      group.addTask {
        try await Task.sleep(for: .seconds(10))
        throw TestSupportError("no answer from 127.0.0.1:\(port)\(path) within 10 s")
      }
      defer { group.cancelAll() }
      return try await group.next()!
    }
    let text = String(buffer: received)
    guard let headEnd = text.range(of: "\r\n\r\n") else {
      throw TestSupportError("no HTTP response from 127.0.0.1:\(port)\(path): \(text.prefix(200))")
    }
    let head = String(text[..<headEnd.lowerBound])
    let statusLine = head.split(separator: "\r\n").first ?? ""
    let parts = statusLine.split(separator: " ")
    guard parts.count >= 2, parts[0].hasPrefix("HTTP/"), let status = Int(parts[1]) else {
      throw TestSupportError("not an HTTP status line: \(statusLine)")
    }
    return Response(status: status, head: head, body: String(text[headEnd.upperBound...]))
  }
}
