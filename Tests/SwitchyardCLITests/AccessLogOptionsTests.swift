import ArgumentParser
import SwitchyardController
import SwitchyardReconcile
import Testing

@testable import SwitchyardCLI

@Suite("Controller access log options")
struct AccessLogOptionsTests {
  static func controller(_ extra: [String]) throws -> ControllerCommand {
    try ControllerCommand.parse(["--node-id", "lb1", "--state-dir", "/var/lib/switchyard/lb1"] + extra)
  }

  @Test("off by default: no socket in the settings, so no log line in the configuration")
  func offByDefault() throws {
    let command = try Self.controller([])
    #expect(try command.makeAccessLog() == nil)
    #expect(try command.makeConfiguration().node.accessLogSocketPath == nil)
  }

  @Test("stdout or a file, as text or JSON; the socket is access.sock in the state directory")
  func destinations() throws {
    let stdout = try Self.controller(["--access-log", "stdout", "--access-log-format", "json"])
    #expect(try stdout.makeAccessLog()?.destination == .standardOutput)
    #expect(try stdout.makeAccessLog()?.style == .json)
    #expect(try stdout.makeConfiguration().node.accessLogSocketPath == "/var/lib/switchyard/lb1/access.sock")
    let file = try Self.controller(["--access-log", "/var/log/switchyard/../switchyard/lb1.log"])
    #expect(try file.makeAccessLog()?.destination == .file("/var/log/switchyard/lb1.log"))
    #expect(try file.makeAccessLog()?.style == .text)
  }

  @Test("a format other than text or json is refused, naming the flag")
  func badFormat() throws {
    #expect(throws: (any Error).self) { try Self.controller(["--access-log", "stdout", "--access-log-format", "xml"]) }
    #expect(throws: (any Error).self) { try Self.controller(["--access-log", ""]) }
  }
}
