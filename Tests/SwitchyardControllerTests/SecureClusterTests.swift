import EtcdClient
import Foundation
import SwitchyardLab
import SwitchyardLocal
import SwitchyardModel
import SwitchyardTestSupport
import Testing

/// `switchyard up --secure` end to end, as a user runs it: TLS and authentication in the whole local cluster,
/// scaling with no failed request, status and `switchyard etcd` with the state directory's credentials,
/// certificate renewal picked up by a running etcd, and no password in any log or state file. The routes of
/// the second sample service, `web`, are written as the user `operator` and served by both nodes. The LB
/// nodes' admin endpoints and dashboards serve HTTPS only, with certificates from the local CA, and a
/// renewed admin certificate is served without a restart.
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

      try await expectNodeKeysConfined(home: home)
      try await expectAdminOverHTTPS(home: home, adminPorts: Array(ports[10..<12]))
      // --secure implies --https: both nodes serve the local CA's certificate from etcd.
      try await expectHTTPS(home: home, ports: ports[12..<14], up: up)

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
      // The nodes' records, read as the user status.
      for name in ["lb1", "lb2"] {
        let row = status.split(separator: "\n").first { $0.hasPrefix("  \(name) ") }
        #expect(row?.split(separator: " ").dropFirst().first == "ready", "\(status)")
      }
      #expect(report.announcedNodes?.map(\.id) == ["lb1", "lb2"], "\(String(describing: report.announcedNodes))")
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
      let lb2AdminBefore = try await servedAdminCertificate(port: ports[11], home: home)
      let edgeBefore = try await servedEdgeCertificates(ports: ports[12..<14], home: home)
      let reloadsBefore = try await clusterStatus(home: home).nodes.map(\.state.reloads)
      let again = try await switchyard(["up", "--secure", "--home", home] + portFlags)
      outputs.append(again)
      #expect(again.contains("Renewed the certificates of"), "\(again)")
      #expect(again.contains("etcd-member"), "\(again)")
      // lb2's admin certificate is still the 3-day one; lb1's was issued anew for a year above.
      #expect(again.contains("lb2-admin") && !again.contains("lb1-admin"), "\(again)")
      let after = try await servedExpiry(port: ports[0], home: home)
      #expect(before != after, "etcd still serves the certificate expiring \(before)")
      let renewedReport = try await clusterStatus(home: home)
      #expect(renewedReport.parts.compactMap(\.pid) == pids, "a part was restarted")
      let lb2PID = try #require(renewedReport.parts.first { $0.name == "lb2" }?.pid)
      try await expectAdminCertificateReloaded(
        home: home, node: "lb2", port: ports[11], pid: lb2PID, before: lb2AdminBefore)
      #expect(renewedReport.certificates?.contains("expire within") == false, "\(renewedReport.certificates ?? "")")
      // The HTTPS certificate too: written to etcd, served by both nodes without a reload or a restart.
      #expect(again.contains("edge"), "\(again)")
      try await retrying(timeout: .seconds(15)) {
        let served = try await servedEdgeCertificates(ports: ports[12..<14], home: home)
        for (old, new) in zip(edgeBefore, served) where old.serialHex == new.serialHex || new.notAfter <= old.notAfter {
          throw TestSupportError("an LB node still serves the HTTPS certificate \(old)")
        }
      }
      #expect(try await clusterStatus(home: home).nodes.map(\.state.reloads) == reloadsBefore)
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
      // Nor the HTTPS certificate's private key, which etcd holds only sealed.
      let edgeKey = try String(contentsOfFile: "\(home)/pki/edge-key.pem", encoding: .utf8)
        .split(separator: "\n").filter { !$0.hasPrefix("-----") }.joined()
      #expect(edgeKey.count > 40)
      let logs = try FileManager.default.contentsOfDirectory(atPath: "\(home)/logs")
      for log in logs {
        let text = try String(contentsOfFile: "\(home)/logs/\(log)", encoding: .utf8)
          .replacingOccurrences(of: "\n", with: "")
        #expect(!text.contains(edgeKey.prefix(40)), "the HTTPS key is in logs/\(log)")
      }
      for output in outputs { #expect(!output.replacingOccurrences(of: "\n", with: "").contains(edgeKey.prefix(40))) }
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

/// Each LB node announces itself under `/switchyard/nodes/<node>`, and its etcd user may write that key alone:
/// lb1's credentials cannot write or delete lb2's record, nor write any registration, route or other key.
private func expectNodeKeysConfined(home: String) async throws {
  let layout = try #require(try ClusterState.load(home: home)).layout(home: home)
  var lb1 = try layout.security.configuration(for: "lb1", endpoints: layout.etcdEndpoints)
  lb1.requestTimeout = .seconds(5)
  try await withEtcdClient(configuration: lb1) { etcd in
    // Its role controller reads every record.
    var records: [KeyValue] = []
    try await retrying(timeout: .seconds(10)) {
      records = try await etcd.get(.prefix(NodeRecord.root)).kvs
      guard records.count == 2 else { throw TestSupportError("\(records.count) node records") }
    }
    for kv in records {
      let record = try NodeRecord.parse(key: kv.key, value: kv.value)
      #expect(["lb1", "lb2"].contains(record.node.rawValue) && kv.lease != 0)
      #expect(record.adminURL.hasPrefix("https://127.0.0.1:"))
    }
    let lb2Before = try #require(try await etcd.value(of: NodeRecord.root + "lb2"))
    let forbidden: [(String, @Sendable (EtcdClient) async throws -> Void)] = [
      ("put lb2's record", { _ = try await $0.put(NodeRecord.root + "lb2", value: "{}") }),
      ("delete lb2's record", { _ = try await $0.delete(.key(NodeRecord.root + "lb2")) }),
      ("delete every record", { _ = try await $0.delete(.prefix(NodeRecord.root)) }),
      ("put a new record", { _ = try await $0.put(NodeRecord.root + "lb3", value: "{}") }),
      ("put a registration", { _ = try await $0.put("/services/backend/evil", value: "{}") }),
      ("put a route", { _ = try await $0.put("/switchyard/routes/evil", value: "{}") }),
    ]
    for (what, write) in forbidden {
      do {
        try await write(etcd)
        Issue.record("lb1 could \(what)")
      } catch let error as EtcdError {
        #expect(error.code == .permissionDenied, "\(what): \(error)")
      }
    }
    let lb2After = try #require(try await etcd.value(of: NodeRecord.root + "lb2"))
    #expect(lb2After.modRevision == lb2Before.modRevision)
  }
}

/// The LB nodes' admin endpoints answer over https, their certificates checked against the local CA, and
/// not over plain http; the dashboard's API needs the login; status reads the nodes over https; and an admin
/// certificate issued anew (as `up --secure` renews one) is served to the next handshakes by the same
/// controller process.
private func expectAdminOverHTTPS(home: String, adminPorts: [Int]) async throws {
  let ca = "\(home)/pki/ca.pem"
  let password = try String(contentsOfFile: "\(home)/secrets/dashboard.password", encoding: .utf8)
    .trimmingCharacters(in: .newlines)
  for port in adminPorts {
    let https = "https://127.0.0.1:\(port)"
    #expect(try await httpStatus("\(https)/readyz", caCertificate: ca) == "200", "\(https)/readyz")
    #expect(try await httpStatus("\(https)/state", caCertificate: ca) == "200", "\(https)/state")
    // Without the local CA the certificate is not trusted; plain http gets no HTTP answer at all.
    #expect(try await httpStatus("\(https)/readyz") == "000", "\(https) trusted without the local CA")
    #expect(try await httpStatus("http://127.0.0.1:\(port)/readyz") == "000", "plain http on \(port) answered")
    // The dashboard and its API ask for the login, over https.
    for path in ["/", "/api/cluster"] {
      #expect(try await httpStatus(https + path, caCertificate: ca) == "401", "\(path) without the login")
      #expect(
        try await httpStatus(https + path, user: "admin:wrong", caCertificate: ca) == "401",
        "\(path) with a wrong password")
      #expect(
        try await httpStatus(https + path, user: "admin:\(password)", caCertificate: ca) == "200",
        "\(path) with the login")
    }
  }
  // A forced renewal of lb1's admin certificate, by the code `up --secure` renews it with.
  let pid = try #require(try await clusterStatus(home: home).parts.first { $0.name == "lb1" }?.pid)
  let before = try await servedAdminCertificate(port: adminPorts[0], home: home)
  try LocalSecurity(home: home).issueAdminCertificate(for: "lb1")
  try await expectAdminCertificateReloaded(home: home, node: "lb1", port: adminPorts[0], pid: pid, before: before)
}

/// After a renewal, a new handshake with `node`'s admin port on `port` sees the certificate now in
/// `pki/<node>-admin.pem` (not `before`, the serial served before the renewal) within seconds, from the
/// same controller process, `pid`.
private func expectAdminCertificateReloaded(
  home: String, node: String, port: Int, pid: Int32, before: String
) async throws {
  let onDisk = try await ManagedProcess.run(
    "openssl", arguments: ["x509", "-noout", "-serial", "-in", "\(home)/pki/\(node)-admin.pem"]
  )
  .trimmingCharacters(in: .whitespacesAndNewlines)
  #expect(onDisk != before, "\(node)-admin.pem was not renewed")
  var served = before
  try await retrying(timeout: .seconds(15), every: .milliseconds(500)) {
    served = try await servedAdminCertificate(port: port, home: home)
    guard served == onDisk else { throw TestSupportError("\(node) still serves \(served), not \(onDisk)") }
  }
  let after = try await clusterStatus(home: home).parts.first { $0.name == node }?.pid
  #expect(after == pid, "\(node)'s controller was restarted")
  #expect(
    try await httpStatus("https://127.0.0.1:\(port)/readyz", caCertificate: "\(home)/pki/ca.pem") == "200")
}

/// The serial of the certificate that the admin endpoint on `port` serves to a new connection, checked
/// against the local CA for 127.0.0.1.
private func servedAdminCertificate(port: Int, home: String) async throws -> String {
  let script =
    "openssl s_client -connect 127.0.0.1:\(port) -CAfile \(home)/pki/ca.pem -verify_ip 127.0.0.1 "
    + "-verify_return_error </dev/null 2>/dev/null | openssl x509 -noout -serial"
  let output = try await ManagedProcess.run("sh", arguments: ["-c", script], timeout: .seconds(20))
  guard output.hasPrefix("serial=") else { throw TestSupportError("no verified certificate on \(port): \(output)") }
  return output.trimmingCharacters(in: .whitespacesAndNewlines)
}

/// The HTTP status `curl` gets from `url`, with basic authentication when `user` is `name:password`, and the
/// server's certificate checked against `caCertificate` when given (`000`: no HTTP answer).
private func httpStatus(_ url: String, user: String? = nil, caCertificate: String? = nil) async throws -> String {
  let authentication = user.map { ["-u", $0] } ?? []
  let trust = caCertificate.map { ["--cacert", $0] } ?? []
  // curl prints `000` and exits non-zero when it gets no HTTP answer; that is an answer here.
  let curl = ["-s", "-o", "/dev/null", "-w", "%{http_code}", "--max-time", "5"] + trust + authentication + [url]
  return try await ManagedProcess.run("sh", arguments: ["-c", "curl \"$@\" || true", "sh"] + curl)
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

/// The certificates the LB nodes serve on their HTTPS `ports`, verified by the local CA of `home`.
private func servedEdgeCertificates(ports: ArraySlice<Int>, home: String) async throws -> [PeerCertificate] {
  var served: [PeerCertificate] = []
  for port in ports {
    served.append(
      try await TLSClient.handshake(port: port, serverName: "localhost", trustRootsPEMFile: "\(home)/pki/ca.pem"))
  }
  return served
}
