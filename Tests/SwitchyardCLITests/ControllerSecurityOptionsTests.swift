import ArgumentParser
import Foundation
import SwitchyardModel
import SwitchyardReconcile
import SwitchyardTestSupport
import Testing

@testable import SwitchyardCLI

@Suite("Controller security options")
struct ControllerSecurityOptionsTests {
  /// `openssl passwd -6 -salt kDA4.uOJSqxWwMVI secret`.
  static let knownHash =
    "$6$kDA4.uOJSqxWwMVI$V4FsChS7bratuKRrkzv6LfKZ2lFyyG4jGHJK1eP8OHhai7js0nWb9hSme1PNf66mPSS6jpbG2ip850ux77sWj1"

  static func controller(_ extra: [String], stateDirectory: String) throws -> ControllerCommand {
    try ControllerCommand.parse(["--node-id", "lb1", "--state-dir", stateDirectory] + extra)
  }

  @Test("crypt(3) gives the SHA-512 hash openssl gives, and checks a password against a hash")
  func hashing() throws {
    #expect(try PasswordHash.sha512("secret", salt: "kDA4.uOJSqxWwMVI") == Self.knownHash)
    #expect(PasswordHash.matches("secret", hash: Self.knownHash))
    #expect(!PasswordHash.matches("Secret", hash: Self.knownHash))
    #expect(!PasswordHash.matches("secret", hash: "secret"))
    let first = try PasswordHash.sha512("secret")
    let second = try PasswordHash.sha512("secret")
    #expect(first != second, "two hashes share a salt")
    #expect(PasswordHash.matches("secret", hash: first) && PasswordHash.matches("secret", hash: second))
    #expect(NodeSettings.StatsAuth.hashProblem(first) == nil)
  }

  @Test("--stats-auth USER:FILE puts the user and a hash of the file's first line into the settings")
  func statsAuth() throws {
    let file = try TemporaryFile(contents: "Pw-of-the-stats-page\nignored\n")
    let command = try Self.controller(["--stats-auth", "ops:\(file.path)"], stateDirectory: file.directory + "/state")
    let auth = try #require(try command.makeConfiguration().node.statsAuth)
    #expect(auth.user == "ops")
    #expect(auth.passwordHash.hasPrefix("$6$"))
    #expect(PasswordHash.matches("Pw-of-the-stats-page", hash: auth.passwordHash))
    #expect(!PasswordHash.matches("ignored", hash: auth.passwordHash))
    let settings = try command.makeConfiguration().node
    let rendered = ConfigRenderer.render(
      DesiredState(revision: 1, services: [.backend], instances: []), settings: settings)
    #expect(!rendered.text.contains("Pw-of-the-stats-page"))
    #expect(rendered.text.contains("  user ops password $6$"))
  }

  @Test("a restarted controller keeps the hash in its last haproxy.cfg when it matches the password")
  func keepsMatchingHash() throws {
    let file = try TemporaryFile(contents: "secret")
    let state = file.directory + "/state"
    try FileManager.default.createDirectory(atPath: state, withIntermediateDirectories: true)
    try "frontend stats\n  user ops password \(Self.knownHash)\n".write(
      toFile: state + "/haproxy.cfg", atomically: true, encoding: .utf8)
    let kept = try Self.controller(["--stats-auth", "ops:\(file.path)"], stateDirectory: state)
    #expect(try kept.makeConfiguration().node.statsAuth?.passwordHash == Self.knownHash)
    // Another user, or another password, gets a new hash.
    let otherUser = try Self.controller(["--stats-auth", "admin:\(file.path)"], stateDirectory: state)
    #expect(try otherUser.makeConfiguration().node.statsAuth?.passwordHash != Self.knownHash)
    try "changed".write(toFile: file.path, atomically: true, encoding: .utf8)
    let changed = try Self.controller(["--stats-auth", "ops:\(file.path)"], stateDirectory: state)
    let hash = try #require(try changed.makeConfiguration().node.statsAuth?.passwordHash)
    #expect(hash != Self.knownHash && PasswordHash.matches("changed", hash: hash))
  }

  @Test(
    "--stats-auth refuses bad values with an error that names it",
    arguments: [
      ("ops", "USER:PASSWORDFILE"), ("a b:FILE", "a space"), ("a\tb:FILE", "control character"), (":FILE", "empty"),
      ("ops:", "password file"), ("ops:MISSING", "cannot read"), ("ops:EMPTY", "empty"),
    ]
  )
  func refusesStatsAuth(value: String, mentions: String) throws {
    let file = try TemporaryFile(contents: "secret")
    let empty = file.directory + "/empty"
    try "".write(toFile: empty, atomically: true, encoding: .utf8)
    let resolved = value.replacingOccurrences(of: "MISSING", with: file.directory + "/missing")
      .replacingOccurrences(of: "EMPTY", with: empty).replacingOccurrences(of: "FILE", with: file.path)
    do {
      _ = try Self.controller(["--stats-auth", resolved], stateDirectory: file.directory + "/state")
      Issue.record("accepted --stats-auth \(resolved)")
    } catch {
      let message = ControllerCommand.message(for: error)
      #expect(message.contains("--stats-auth"), "\(message)")
      #expect(message.contains(mentions), "\(message)")
      #expect(!message.contains("secret"))
    }
  }

  @Test("--admin-tls-cert and --admin-tls-key go together, and a key must belong to its certificate")
  func adminTLSFlags() throws {
    let directory = try TemporaryDirectory(prefix: "cli-tls")
    defer { directory.remove() }
    let files = try TLSFiles.generate(in: directory.path)
    let state = directory.path("state")
    let good = try Self.controller(
      ["--admin-tls-cert", files.serverCertificate, "--admin-tls-key", files.serverKey], stateDirectory: state)
    #expect(try good.makeAdminTLS()?.certificatePath == files.serverCertificate)
    #expect(try Self.controller([], stateDirectory: state).makeAdminTLS() == nil)
    let refused: [([String], String)] = [
      (["--admin-tls-cert", files.serverCertificate], "--admin-tls-cert needs --admin-tls-key"),
      (["--admin-tls-key", files.serverKey], "--admin-tls-key needs --admin-tls-cert"),
      (["--admin-tls-cert", files.serverCertificate, "--admin-tls-key", files.clientKey], "--admin-tls-key"),
      (["--admin-tls-cert", files.serverKey, "--admin-tls-key", files.serverKey], "--admin-tls-cert"),
      (["--admin-tls-cert", directory.path("missing.pem"), "--admin-tls-key", files.serverKey], "--admin-tls-cert"),
    ]
    for (arguments, mentions) in refused {
      do {
        _ = try Self.controller(arguments, stateDirectory: state)
        Issue.record("accepted \(arguments)")
      } catch {
        let message = ControllerCommand.message(for: error)
        #expect(message.contains(mentions), "\(message)")
      }
    }
  }

  @Test(
    "warns about admin endpoints without TLS and a stats page without a password off loopback",
    arguments: [
      ("127.0.0.1:9101", false, "127.0.0.1:8401", false, [String]()),
      ("[::1]:9101", false, "localhost:8401", false, []),
      ("127.0.0.2:9101", false, "[::ffff:127.0.0.1]:8401", false, []),
      ("0.0.0.0:9101", false, "127.0.0.1:8401", false, ["admin"]),
      ("0.0.0.0:9101", true, "127.0.0.1:8401", false, []),
      ("[::]:9101", false, "[::]:8401", false, ["admin", "stats"]),
      ("10.0.0.5:9101", false, "10.0.0.5:8401", true, ["admin"]),
      ("127.0.0.1:9101", false, "192.168.1.5:8401", false, ["stats"]),
      ("lb1.internal:9101", true, "lb1.internal:8401", false, ["stats"]),
    ]
  )
  func exposure(admin: String, adminTLS: Bool, stats: String, statsAuth: Bool, expected: [String]) throws {
    let adminAddress = try HostPort(parsing: admin)
    let statsAddress = try HostPort(parsing: stats)
    let warnings = ExposureCheck.warnings(
      admin: adminAddress, adminTLS: adminTLS, stats: statsAddress, statsAuth: statsAuth)
    #expect(warnings.map { "\($0.metadata["listen.kind"] ?? "")" } == expected)
    for warning in warnings {
      let kind = "\(warning.metadata["listen.kind"] ?? "")"
      let address = kind == "admin" ? adminAddress : statsAddress
      #expect(warning.message.contains("--\(kind) \(address)"), "\(warning.message)")
      #expect(warning.message.contains(kind == "admin" ? "--admin-tls-cert" : "--stats-auth"))
      #expect("\(warning.metadata["listen.address"] ?? "")" == "\(address)")
    }
  }
}
