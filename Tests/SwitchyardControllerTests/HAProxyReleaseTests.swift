import EtcdClient
import Foundation
import SwitchyardTestSupport
import Testing

/// The controller finds out which HAProxy it runs, shows it, and refuses one too old for it.
@Suite(.serialized) struct HAProxyReleaseTests {
  @Test("/state names the running HAProxy's release, the one `haproxy -v` prints; the log names it at start")
  func versionIsShown() async throws {
    let printed = try await ManagedProcess.run("haproxy", arguments: ["-v"])
    let expected = try #require(
      printed.split(separator: "\n").first?.split(separator: " ").dropFirst(2).first.map(String.init))
    try await withNodes { _, nodes, _ in
      let state = try await nodes[0].state()
      #expect(state.haproxyVersion == expected)
      #expect(nodes[0].log().contains("HAProxy version"))
      print("controller runs HAProxy \(state.haproxyVersion ?? "?")")
    }
  }

  @Test("an HAProxy older than 2.6 is refused at start with an error that names it; nothing is started")
  func oldHAProxyIsRefused() async throws {
    let directory = try TemporaryDirectory(prefix: "old-haproxy")
    defer { directory.remove() }
    let wrapper = directory.path("haproxy")
    let haproxy = try await ManagedProcess.run("sh", arguments: ["-c", "command -v haproxy"])
      .trimmingCharacters(in: .whitespacesAndNewlines)
    // Answers -v as Ubuntu 22.04's HAProxy 2.4 does; anything else would run the real one.
    try """
    #!/bin/sh
    if [ "$1" = "-v" ]; then echo 'HAProxy version 2.4.22-0ubuntu0.22.04.3 2023/08/14 - https://haproxy.org/'; exit 0; fi
    exec '\(haproxy)' "$@"
    """.write(toFile: wrapper, atomically: true, encoding: .utf8)
    try FileManager.default.setAttributes([.posixPermissions: 0o755], ofItemAtPath: wrapper)

    let cluster = try await EtcdCluster.start(members: 1)
    let node = try LBNode(name: "old", endpoints: cluster.endpoints, extraArguments: ["--haproxy", wrapper])
    do {
      try node.start()
      let controller = try #require(node.controller)
      let status = await controller.waitForExit(timeout: .seconds(20))
      #expect(status != nil && status != 0, "the controller went on with HAProxy 2.4")
      let log = node.log()
      #expect(log.contains("2.4.22"), "\(log)")
      #expect(log.contains("2.6 or newer"), "\(log)")
      #expect(node.haproxyPID == nil, "an HAProxy was started")
    } catch {
      Issue.record("log:\n\(node.log())")
      await node.cleanup()
      await cluster.shutdown()
      throw error
    }
    await node.cleanup()
    await cluster.shutdown()
  }
}
