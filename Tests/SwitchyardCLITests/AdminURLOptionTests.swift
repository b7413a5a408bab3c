import ArgumentParser
import SwitchyardTestSupport
import Testing

@testable import SwitchyardCLI

@Suite("--admin-url: the admin address a node announces in etcd")
struct AdminURLOptionTests {
  static func controller(_ extra: [String], state: String) throws -> ControllerCommand {
    try ControllerCommand.parse(["--node-id", "lb1", "--state-dir", state] + extra)
  }

  @Test("without --admin-url the URL is --admin's, with https when the admin endpoints use TLS")
  func derivedFromAdmin() throws {
    let directory = try TemporaryDirectory(prefix: "admin-url")
    defer { directory.remove() }
    let state = directory.path + "/state"
    #expect(try Self.controller([], state: state).makeAdminURL() == "http://127.0.0.1:9101")
    #expect(try Self.controller(["--admin", "[::1]:9200"], state: state).makeAdminURL() == "http://[::1]:9200")
    #expect(
      try Self.controller(["--admin", "lb1.internal:9101"], state: state).makeAdminURL()
        == "http://lb1.internal:9101")
    let files = try TLSFiles.generate(in: directory.path)
    let tls = try Self.controller(
      ["--admin", "10.0.0.5:9101", "--admin-tls-cert", files.serverCertificate, "--admin-tls-key", files.serverKey],
      state: state)
    #expect(try tls.makeAdminURL() == "https://10.0.0.5:9101")
    let given = try Self.controller(["--admin", "0.0.0.0:9101", "--admin-url", "http://lb1:9101"], state: state)
    #expect(try given.makeAdminURL() == "http://lb1:9101")
  }

  @Test(
    "an admin address on every address needs --admin-url, and a URL that is not http(s)://host:port is refused",
    arguments: [
      (["--admin", "0.0.0.0:9101"], "--admin-url is needed"),
      (["--admin", "[::]:9101"], "--admin-url is needed"),
      (["--admin-url", "lb1:9101"], "--admin-url: must start with http:// or https://"),
      (["--admin-url", "http://lb1:9101/admin"], "--admin-url: must be http(s)://host:port"),
      (["--admin-url", "javascript:alert(1)"], "--admin-url: must start with"),
    ]
  )
  func refused(arguments: [String], message expected: String) throws {
    let directory = try TemporaryDirectory(prefix: "admin-url")
    defer { directory.remove() }
    do {
      _ = try Self.controller(arguments, state: directory.path + "/state")
      Issue.record("accepted \(arguments)")
    } catch {
      let message = ControllerCommand.message(for: error)
      #expect(message.contains(expected), "\(message)")
    }
  }
}
