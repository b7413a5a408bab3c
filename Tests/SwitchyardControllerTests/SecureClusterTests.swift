import EtcdClient
import Foundation
import SwitchyardLocal
import SwitchyardTestSupport
import Testing

/// `switchyard up --secure` end to end, as a user runs it: TLS and authentication in the whole local cluster,
/// scaling with no failed request, status and `switchyard etcd` with the state directory's credentials,
/// certificate renewal picked up by a running etcd, and no password in any log or state file. The routes of
/// the second sample service, `web`, are written as the user `operator` and served by both nodes.
@Suite(.serialized) struct SecureClusterTests {
  @Test func upScaleRenewStatusDown() async throws {
    let directory = try TemporaryDirectory(prefix: "secure-local")
    let home = "\(directory.path)/home"
    let (ports, portFlags, lbURLs) = try clusterPorts()
    defer { directory.remove() }
    var outputs: [String] = []
    do {
      // Certificates valid for 3 days: within the 7-day margin, so the second `up --secure` renews them.
      let up = try await switchyard(
        ["up", "--secure", "--certificate-days", "3", "--backends", "3", "--home", home] + portFlags,
        timeout: .seconds(180))
      outputs.append(up)
      #expect(up.contains("Authentication on"), "\(up)")
      #expect(up.contains("Wrote the routes web-host and web to web"), "\(up)")
      #expect(up.contains("as user operator"), "\(up)")
      for url in lbURLs {
        try await expectServing(url, ["backend-1", "backend-2", "backend-3"])
        try await expectWebRoutes(url)
      }

      // Every part connects as its own user, with TLS.
      let cluster = try #require(try ClusterState.load(home: home))
      #expect(cluster.isSecure)
      for record in cluster.parts where record.spec.kind != .etcd {
        let arguments = record.spec.arguments
        #expect(arguments.contains("--user") && arguments.contains(record.spec.name), "\(record.spec.name)")
        #expect(arguments.contains { $0.hasPrefix("https://") }, "\(record.spec.name)")
        #expect(!arguments.contains(AccessPolicy.root))
      }

      // The stats pages ask for the password in secrets/stats-page.password.
      let statsPassword = try String(contentsOfFile: "\(home)/secrets/stats-page.password", encoding: .utf8)
        .trimmingCharacters(in: .newlines)
      for port in ports[8..<10] {
        let url = "http://127.0.0.1:\(port)/"
        #expect(try await httpStatus(url) == "401", "\(url) without a password")
        #expect(try await httpStatus(url, user: "admin:wrong") == "401", "\(url) with a wrong password")
        #expect(try await httpStatus(url, user: "admin:\(statsPassword)") == "200", "\(url) with the password")
      }

      let clients = try lbURLs.map { try HTTPLoadClient.start(url: $0, connections: 2) }
      outputs.append(try await switchyard(["scale", "backend=5", "--home", home], timeout: .seconds(120)))
      for url in lbURLs {
        try await expectServing(url, ["backend-1", "backend-2", "backend-3", "backend-4", "backend-5"])
      }
      outputs.append(try await switchyard(["scale", "backend=1", "--home", home], timeout: .seconds(120)))
      for url in lbURLs { try await expectServing(url, ["backend-1"]) }
      for client in clients {
        let report = await client.stop()
        #expect(report.failures == 0, "a client polling through the scaling saw failures: \(report)")
        #expect(report.successes > 100)
      }

      // status reads the registrations (as the read-only user `status`).
      let report = try await clusterStatus(home: home)
      #expect(report.registrations.map(\.key) == ["/services/backend/backend-1", "/services/web/web-1"])
      #expect(report.parts.allSatisfy { $0.health == "healthy" }, "\(report.parts.map { "\($0.name) \($0.health)" })")
      let status = try await switchyard(["status", "--home", home])
      outputs.append(status)
      #expect(status.contains("TLS and etcd authentication on: certificates valid until"), "\(status)")
      #expect(status.contains("expire within 7 days: renew with `switchyard up --secure`"), "\(status)")
      // `switchyard etcd` finds root's credentials in the state directory.
      var environment = ProcessInfo.processInfo.environment
      environment["SWITCHYARD_HOME"] = home
      environment["ETCD_ENDPOINTS"] = nil
      let keys = try await switchyard(
        ["etcd", "get", "/services/", "--prefix", "--keys-only"], environment: environment)
      #expect(keys.contains("/services/backend/backend-1"), "\(keys)")
      let routes = try await switchyard(
        ["etcd", "get", "/switchyard/routes/", "--prefix", "--keys-only"], environment: environment)
      #expect(routes.contains("/switchyard/routes/web") && routes.contains("/switchyard/routes/web-host"), "\(routes)")
      // Without credentials etcd serves nothing: a plain client cannot even connect.
      var plain = try EtcdConfiguration(endpoints: "https://127.0.0.1:\(ports[0])")
      plain.tls = .init(caCertificatePath: "\(home)/pki/ca.pem")
      plain.requestTimeout = .seconds(3)
      await #expect(throws: EtcdError.self) {
        try await withEtcdClient(configuration: plain) { etcd in _ = try await etcd.get(.prefix("/services/")) }
      }

      // Renewal: the member serves its new certificate to new connections without a restart.
      let before = try await servedExpiry(port: ports[0], home: home)
      let pids = try await clusterStatus(home: home).parts.compactMap(\.pid)
      let again = try await switchyard(["up", "--secure", "--home", home] + portFlags)
      outputs.append(again)
      #expect(again.contains("Renewed the certificates of"), "\(again)")
      #expect(again.contains("etcd-member"), "\(again)")
      let after = try await servedExpiry(port: ports[0], home: home)
      #expect(before != after, "etcd still serves the certificate expiring \(before)")
      let renewedReport = try await clusterStatus(home: home)
      #expect(renewedReport.parts.compactMap(\.pid) == pids, "a part was restarted")
      #expect(renewedReport.certificates?.contains("expire within") == false, "\(renewedReport.certificates ?? "")")
      // New connections with the renewed certificates work: a new backend registers and is routed to.
      outputs.append(try await switchyard(["scale", "backend=2", "--home", home], timeout: .seconds(120)))
      for url in lbURLs {
        try await expectServing(url, ["backend-1", "backend-2"])
        try await expectWebRoutes(url)
      }

      // No password in any log or state file of ours (etcd's own data directories excepted: etcd 3.4 keeps
      // the requests that created users in its write-ahead log; docs/security.md says so).
      let passwords = try FileManager.default.contentsOfDirectory(atPath: "\(home)/secrets").map {
        try String(contentsOfFile: "\(home)/secrets/\($0)", encoding: .utf8).trimmingCharacters(in: .newlines)
      }
      #expect(passwords.count >= 8)
      let enumerator = try #require(FileManager.default.enumerator(atPath: home))
      var checked = 0
      while let path = enumerator.nextObject() as? String {
        let first = path.split(separator: "/").first.map(String.init) ?? path
        if ["secrets", "etcd1", "etcd2", "etcd3"].contains(first) { continue }
        guard let data = FileManager.default.contents(atPath: "\(home)/\(path)") else { continue }
        let text = String(decoding: data, as: UTF8.self)
        checked += 1
        for password in passwords { #expect(!text.contains(password), "a password is in \(path)") }
      }
      #expect(checked > 10)
      for output in outputs { for password in passwords { #expect(!output.contains(password)) } }
    } catch {
      _ = try? await switchyard(["down", "--home", home], timeout: .seconds(120))
      throw error
    }
    let down = try await switchyard(["down", "--purge", "--home", home], timeout: .seconds(120))
    #expect(down.contains("every port is free"), "\(down)")
    for port in ports { #expect(isFree(port), "port \(port) is still in use") }
  }
}

/// The HTTP status `curl` gets from `url`, with basic authentication when `user` is `name:password`.
private func httpStatus(_ url: String, user: String? = nil) async throws -> String {
  let authentication = user.map { ["-u", $0] } ?? []
  return try await ManagedProcess.run(
    "curl", arguments: ["-s", "-o", "/dev/null", "-w", "%{http_code}", "--max-time", "5"] + authentication + [url])
}

/// The `notAfter` of the certificate that the etcd member on `port` serves to a new connection.
private func servedExpiry(port: Int, home: String) async throws -> String {
  let pki = "\(home)/pki"
  let script =
    "openssl s_client -connect 127.0.0.1:\(port) -CAfile \(pki)/ca.pem -cert \(pki)/status.pem "
    + "-key \(pki)/status-key.pem </dev/null 2>/dev/null | openssl x509 -noout -enddate"
  let output = try await ManagedProcess.run("sh", arguments: ["-c", script], timeout: .seconds(20))
  guard output.hasPrefix("notAfter=") else { throw TestSupportError("no certificate served on \(port): \(output)") }
  return output.trimmingCharacters(in: .whitespacesAndNewlines)
}
