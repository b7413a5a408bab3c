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

  @Test func installerRefusesInvalidConfigAndKeepsTheOldFile() async throws {
    let fixture = try HAProxyFixture()
    defer { fixture.temporary.remove() }
    let good = fixture.config()
    try await fixture.installer.install(good, at: fixture.state.configPath)
    #expect(try mode(of: fixture.state.configPath) == 0o600)

    let bad = good + "  bogus-keyword 1\n"
    let error = await #expect(throws: HAProxyError.self) {
      try await fixture.installer.install(bad, at: fixture.state.configPath)
    }
    #expect(error?.code == .invalidConfiguration)
    #expect(error?.details.contains { $0.contains("[ALERT]") && $0.contains("bogus-keyword") } == true)
    let installed = try String(contentsOfFile: fixture.state.configPath, encoding: .utf8)
    #expect(installed == good)
    // No temporary files are left behind, whatever the outcome.
    let names = try FileManager.default.contentsOfDirectory(atPath: fixture.state.path)
    #expect(names == ["haproxy.cfg"])
  }

  @Test func installerReplacesTheFile() async throws {
    let fixture = try HAProxyFixture()
    defer { fixture.temporary.remove() }
    try await fixture.installer.install(fixture.config(), at: fixture.state.configPath)
    let second = fixture.config(servers: ["server s1 127.0.0.1:9 weight 10"])
    try await fixture.installer.install(second, at: fixture.state.configPath)
    #expect(try String(contentsOfFile: fixture.state.configPath, encoding: .utf8) == second)
    #expect(try mode(of: fixture.state.configPath) == 0o600)
  }

  @Test func validateReportsMissingExecutable() async throws {
    let fixture = try HAProxyFixture()
    defer { fixture.temporary.remove() }
    let installer = ConfigInstaller(
      stateDirectory: fixture.state, executable: "/nonexistent/haproxy", logger: quietLogger)
    await #expect(throws: HAProxyError.self) { try await installer.validate(fixture.config()) }
  }

  @Test func aCheckThatHangsIsKilledAndInstallsNothing() async throws {
    let fixture = try HAProxyFixture()
    defer { fixture.temporary.remove() }
    try await fixture.installer.install(fixture.config(), at: fixture.state.configPath)
    let before = try String(contentsOfFile: fixture.state.configPath, encoding: .utf8)
    // Stands in for `haproxy -c` stuck on a resolver that does not answer.
    let hanging = fixture.temporary.path("hanging-haproxy")
    try "#!/bin/sh\nexec sleep 60\n".write(toFile: hanging, atomically: true, encoding: .utf8)
    chmod(hanging, 0o755)
    let installer = ConfigInstaller(stateDirectory: fixture.state, executable: hanging, logger: quietLogger)
    let clock = ContinuousClock()
    let started = clock.now
    let error = await #expect(throws: HAProxyError.self) {
      try await installer.install(
        fixture.config(servers: ["server s1 127.0.0.1:9"]), at: fixture.state.configPath, timeout: .milliseconds(500))
    }
    #expect(error?.code == .timedOut)
    #expect(started.duration(to: clock.now) < .seconds(10))
    #expect(try String(contentsOfFile: fixture.state.configPath, encoding: .utf8) == before)
  }
}
