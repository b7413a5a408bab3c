import ArgumentParser
import Foundation
import SwitchyardDashboard
import SwitchyardLocal
import SwitchyardTestSupport
import Testing

@testable import SwitchyardCLI

@Suite("--dashboard-auth and --admin-cacert: the dashboard's login and the CA of the other nodes' admin endpoints")
struct DashboardOptionsTests {
  static func controller(_ extra: [String], state: String) throws -> ControllerCommand {
    try ControllerCommand.parse(["--node-id", "lb1", "--state-dir", state] + extra)
  }

  @Test func theLoginIsReadFromItsFileAndChecked() throws {
    let directory = try TemporaryDirectory(prefix: "dashboard-auth")
    defer { directory.remove() }
    let file = directory.path + "/password"
    try "s3cret\nignored\n".write(toFile: file, atomically: true, encoding: .utf8)
    let login = try #require(
      try Self.controller(["--dashboard-auth", "ops:\(file)"], state: directory.path + "/s")
        .makeDashboardLogin())
    #expect(login.user == "ops")
    #expect(login.admits(authorization: "Basic " + Data("ops:s3cret".utf8).base64EncodedString()))
    #expect(!login.admits(authorization: "Basic " + Data("ops:ignored".utf8).base64EncodedString()))
    #expect(try Self.controller([], state: directory.path + "/s").makeDashboardLogin() == nil)
  }

  @Test(
    "a login that cannot work is refused at start, naming the flag",
    arguments: [
      ("ops", "expected USER:PASSWORDFILE"),
      ("ops:", "the password file is missing"),
      ("o p:/dev/null", "the user name may hold only"),
      ("ops:/nonexistent/password", "cannot read /nonexistent/password"),
    ])
  func badLogins(value: String, message: String) throws {
    let directory = try TemporaryDirectory(prefix: "dashboard-auth")
    defer { directory.remove() }
    // Refused by validate(), when the command line is parsed.
    #expect {
      _ = try Self.controller(["--dashboard-auth", value], state: directory.path + "/s")
    } throws: { error in
      "\(error)".contains("--dashboard-auth: ") && "\(error)".contains(message)
    }
  }

  @Test func theCAIsAdminCACertElseEtcdsCACert() throws {
    let directory = try TemporaryDirectory(prefix: "admin-cacert")
    defer { directory.remove() }
    let files = try TLSFiles.generate(in: directory.path)
    let state = directory.path + "/s"
    #expect(try Self.controller([], state: state).makeAdminCACertificate() == nil)
    #expect(
      try Self.controller(["--cacert", files.caCertificate], state: state).makeAdminCACertificate()
        == files.caCertificate)
    let both = try Self.controller(
      ["--cacert", files.caCertificate, "--admin-cacert", files.serverCertificate], state: state)
    #expect(try both.makeAdminCACertificate() == files.serverCertificate)
    let garbage = directory.path + "/garbage.pem"
    try "not a certificate".write(toFile: garbage, atomically: true, encoding: .utf8)
    #expect {
      _ = try Self.controller(["--admin-cacert", garbage], state: state)
    } throws: { "\($0)".contains("--admin-cacert: cannot load a PEM certificate") }
  }

  @Test func theSecureLocalClusterGivesEveryNodeTheDashboardsLogin() {
    let ports = ClusterPorts.defaults(members: 1, nodes: 2)
    let secure = ClusterLayout(home: "/tmp/home", switchyard: "switchyard", ports: ports, secure: true)
    for node in secure.lbNodes() {
      let flag = try? #require(node.arguments.firstIndex(of: "--dashboard-auth"))
      #expect(flag.map { node.arguments[$0 + 1] } == "admin:/tmp/home/secrets/dashboard.password")
      #expect(node.dashboardURL == node.adminURL.map { $0 + "/" })
      // HTTPS with the node's admin certificate from the local CA; the other nodes' checked by --cacert's CA.
      let cert = try? #require(node.arguments.firstIndex(of: "--admin-tls-cert"))
      let key = try? #require(node.arguments.firstIndex(of: "--admin-tls-key"))
      #expect(cert.map { node.arguments[$0 + 1] } == "/tmp/home/pki/\(node.name)-admin.pem")
      #expect(key.map { node.arguments[$0 + 1] } == "/tmp/home/pki/\(node.name)-admin-key.pem")
      let ca = try? #require(node.arguments.firstIndex(of: "--cacert"))
      #expect(ca.map { node.arguments[$0 + 1] } == "/tmp/home/pki/ca.pem")
      #expect(node.adminURL?.hasPrefix("https://127.0.0.1:") == true)
      #expect(node.healthURL == (node.adminURL ?? "") + "/readyz")
    }
    #expect(secure.lbNodes().map(\.dashboardURL) == ["https://127.0.0.1:9101/", "https://127.0.0.1:9102/"])
    #expect(secure.adminCACertificate == "/tmp/home/pki/ca.pem")
    let plain = ClusterLayout(home: "/tmp/home", switchyard: "switchyard", ports: ports)
    #expect(plain.lbNodes().allSatisfy { !$0.arguments.contains("--dashboard-auth") })
    #expect(plain.lbNodes().map(\.dashboardURL) == ["http://127.0.0.1:9101/", "http://127.0.0.1:9102/"])
    #expect(plain.lbNodes().allSatisfy { !$0.arguments.contains("--admin-tls-cert") })
    #expect(plain.adminCACertificate == nil)
  }
}
