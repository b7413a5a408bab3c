import ArgumentParser
import SwitchyardReconcile
import Testing

@testable import SwitchyardCLI

@Suite("Controller server health options")
struct ServerHealthOptionsTests {
  static func controller(_ extra: [String]) throws -> ControllerCommand {
    try ControllerCommand.parse(["--node-id", "lb1", "--state-dir", "/tmp/switchyard-cli-health"] + extra)
  }

  @Test("the defaults are the settings' own, and the flags reach the node's settings")
  func flagsReachTheSettings() throws {
    #expect(try Self.controller([]).makeConfiguration().node.healthCheck == NodeSettings.HealthCheck())
    let node = try Self.controller([
      "--check-interval-ms", "1000", "--check-timeout-ms", "300", "--check-fast-interval-ms", "200",
      "--check-down-interval-ms", "5000", "--check-rise", "3", "--check-fall", "1", "--check-error-limit", "0",
      "--server-timeout", "2.5", "--retries", "1",
    ]).makeConfiguration().node
    #expect(
      node.healthCheck
        == NodeSettings.HealthCheck(
          interval: .seconds(1), rise: 3, fall: 1, timeout: .milliseconds(300), fastInterval: .milliseconds(200),
          downInterval: .seconds(5), errorLimit: 0))
    #expect(node.serverTimeout == .milliseconds(2500) && node.retries == 1)
    let config = ConfigRenderer.render(DesiredState(revision: 1, backends: []), settings: node).text
    #expect(config.contains("timeout connect 300ms") && config.contains("timeout server 2500ms"))
  }

  @Test(
    "a bad value names its flag",
    arguments: [
      (["--check-interval-ms", "50"], "--check-interval-ms"),
      (["--check-timeout-ms", "2000"], "--check-timeout-ms"),
      (["--check-fast-interval-ms", "0"], "--check-fast-interval-ms"),
      (["--check-fall", "0"], "--check-fall"),
      (["--check-error-limit", "-1"], "--check-error-limit"),
      (["--server-timeout", "nan"], "--server-timeout"),
      (["--server-timeout", "0.01"], "--server-timeout"),
      (["--retries", "11"], "--retries"),
    ] as [([String], String)])
  func badValues(arguments: [String], flag: String) {
    do {
      _ = try Self.controller(arguments).makeConfiguration()
      Issue.record("accepted \(arguments)")
    } catch {
      let message = ControllerCommand.message(for: error)
      #expect(message.contains(flag), "\(message)")
    }
  }
}
