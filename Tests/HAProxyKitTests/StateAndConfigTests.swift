import Foundation
import SwitchyardTestSupport
import Testing

@testable import HAProxyKit

#if canImport(Glibc)
  import Glibc
#endif

@Suite("State directory and config installer")
struct StateAndConfigTests {
  @Test func stateDirectoryIsPrivate() throws {
    let temporary = try TemporaryDirectory(prefix: "hk")
    defer { temporary.remove() }
    let state = try StateDirectory(path: temporary.path("a/state"))
    #expect(try mode(of: state.path) == 0o700)
    #expect(state.configPath == temporary.path("a/state/haproxy.cfg"))
    #expect(state.masterSocketPath.hasSuffix("/master.sock") && state.adminSocketPath.hasSuffix("/admin.sock"))

    chmod(state.path, 0o755)
    _ = try StateDirectory(path: state.path)
    #expect(try mode(of: state.path) == 0o700)
  }

  @Test func stateDirectoryRefusesSymlinkAndFile() throws {
    let temporary = try TemporaryDirectory(prefix: "hk")
    defer { temporary.remove() }
    let target = try StateDirectory(path: temporary.path("real"))
    symlink(target.path, temporary.path("link"))
    let linkError = #expect(throws: HAProxyError.self) { try StateDirectory(path: temporary.path("link")) }
    #expect(linkError?.code == .fileSystem && linkError?.message.contains("symbolic link") == true)
    FileManager.default.createFile(atPath: temporary.path("file"), contents: Data("x".utf8))
    let fileError = #expect(throws: HAProxyError.self) { try StateDirectory(path: temporary.path("file")) }
    #expect(fileError?.message.contains("not a directory") == true)
  }

  @Test func installerRefusesInvalidConfigAndKeepsTheOldFile() throws {
    let fixture = try HAProxyFixture()
    defer { fixture.temporary.remove() }
    let good = fixture.config()
    try fixture.installer.install(good, at: fixture.state.configPath)
    #expect(try mode(of: fixture.state.configPath) == 0o600)

    let bad = good + "  bogus-keyword 1\n"
    let error = #expect(throws: HAProxyError.self) {
      try fixture.installer.install(bad, at: fixture.state.configPath)
    }
    #expect(error?.code == .invalidConfiguration)
    #expect(error?.details.contains { $0.contains("[ALERT]") && $0.contains("bogus-keyword") } == true)
    let installed = try String(contentsOfFile: fixture.state.configPath, encoding: .utf8)
    #expect(installed == good)
    // No temporary files are left behind, whatever the outcome.
    let names = try FileManager.default.contentsOfDirectory(atPath: fixture.state.path)
    #expect(names == ["haproxy.cfg"])
  }

  @Test func installerReplacesTheFile() throws {
    let fixture = try HAProxyFixture()
    defer { fixture.temporary.remove() }
    try fixture.installer.install(fixture.config(), at: fixture.state.configPath)
    let second = fixture.config(servers: ["server s1 127.0.0.1:9 weight 10"])
    try fixture.installer.install(second, at: fixture.state.configPath)
    #expect(try String(contentsOfFile: fixture.state.configPath, encoding: .utf8) == second)
    #expect(try mode(of: fixture.state.configPath) == 0o600)
  }

  @Test func validateReportsMissingExecutable() throws {
    let fixture = try HAProxyFixture()
    defer { fixture.temporary.remove() }
    let installer = ConfigInstaller(
      stateDirectory: fixture.state, executable: "/nonexistent/haproxy", logger: quietLogger)
    #expect(throws: HAProxyError.self) { try installer.validate(fixture.config()) }
  }
}
