import Foundation
import HAProxyKit
import Logging
import SwitchyardProcess
import Testing

@Suite struct HAProxyVersionTests {
  @Test("versions are read from haproxy -v, show info, and the version alone")
  func parsing() throws {
    let debian12 = try #require(
      HAProxyVersion(parsing: "HAProxy version 2.6.12-1+deb12u2 2025/04/05 - https://haproxy.org/\nStatus: long-term"))
    #expect(debian12 == HAProxyVersion(major: 2, minor: 6, patch: 12))
    #expect(debian12.text == "2.6.12-1+deb12u2")
    #expect(debian12.series == "2.6")
    let info = try #require(
      HAProxyVersion(parsing: "Name: HAProxy\nVersion: 3.0.11-1+deb13u4\nRelease_date: 2026/10/15"))
    #expect(info == HAProxyVersion(major: 3, minor: 0, patch: 11))
    #expect(HAProxyVersion(parsing: "3.1-dev5") == HAProxyVersion(major: 3, minor: 1, patch: 0))
    #expect(HAProxyVersion(parsing: "2.8.5") == HAProxyVersion(major: 2, minor: 8, patch: 5))
    for garbage in ["", "HAProxy", "Version: x.y", "nginx version: nginx/1.22.1", "HAProxy version 3", "1.2.3.4"] {
      #expect(HAProxyVersion(parsing: garbage) == nil, "\(garbage)")
    }
  }

  @Test("releases compare by number; 2.6 is the oldest supported")
  func ordering() {
    #expect(HAProxyVersion(major: 2, minor: 6, patch: 12) < HAProxyVersion(major: 3, minor: 0, patch: 0))
    #expect(HAProxyVersion(major: 2, minor: 10) > HAProxyVersion(major: 2, minor: 9, patch: 30))
    #expect(HAProxyVersion(major: 2, minor: 6).isSupported)
    #expect(HAProxyVersion(major: 3, minor: 0, patch: 11).isSupported)
    #expect(!HAProxyVersion(major: 2, minor: 4, patch: 22).isSupported)
    #expect(throws: HAProxyError.self) { try HAProxyVersion(major: 2, minor: 5, patch: 14).checkSupported(what: "x") }
  }

  @Test("an executable older than supported is refused with a message that names both versions")
  func oldExecutableIsRefused() async throws {
    let directory = try TemporaryDirectory(prefix: "haproxy-version")
    defer { directory.remove() }
    let state = try StateDirectory(path: directory.path("state"))
    let old = directory.path("haproxy-2.4")
    try "#!/bin/sh\necho 'HAProxy version 2.4.22-0ubuntu0.22.04.3 2023/08/14 - https://haproxy.org/'\n"
      .write(toFile: old, atomically: true, encoding: .utf8)
    try FileManager.default.setAttributes([.posixPermissions: 0o755], ofItemAtPath: old)
    do {
      _ = try await HAProxyVersion.of(executable: old, stateDirectory: state)
      Issue.record("HAProxy 2.4 was accepted")
    } catch let error as HAProxyError {
      #expect(error.code == .unsupportedVersion)
      #expect(error.message.contains("2.4.22"))
      #expect(error.message.contains("2.6 or newer"))
    }
    let silent = directory.path("not-haproxy")
    try "#!/bin/sh\necho hello\n".write(toFile: silent, atomically: true, encoding: .utf8)
    try FileManager.default.setAttributes([.posixPermissions: 0o755], ofItemAtPath: silent)
    await #expect(throws: HAProxyError.self) {
      _ = try await HAProxyVersion.of(executable: silent, stateDirectory: state)
    }
  }

  @Test("the executable and its running worker report the same release (printed: the matrix's HAProxy)")
  func executableAndWorkerAgree() async throws {
    try await HAProxyFixture.with { fixture in
      let executable = try await HAProxyVersion.of(executable: "haproxy", stateDirectory: fixture.state)
      let process = try await fixture.start()
      let running = try await fixture.runtime.version()
      print("HAProxy under test: \(running) (executable \(executable))")
      #expect(running == executable)
      #expect(running.text == executable.text)
      try await process.stop()
    }
  }
}
