import Foundation
import Logging
import SwitchyardTestSupport

@testable import HAProxyKit

#if canImport(Glibc)
  import Glibc
#endif

/// A logger that drops everything: tests do not bootstrap logging.
let quietLogger = Logger(label: "haproxykit-tests", factory: { _ in SwiftLogNoOpLogHandler() })

/// A state directory in a temporary directory, a frontend port, and the HAProxy started for them.
struct HAProxyFixture: Sendable {
  let temporary: TemporaryDirectory
  let state: StateDirectory
  let frontendPort: Int

  var runtime: RuntimeAPI { RuntimeAPI(stateDirectory: state, logger: quietLogger) }
  var master: MasterCLI { MasterCLI(stateDirectory: state, logger: quietLogger) }
  var installer: ConfigInstaller { ConfigInstaller(stateDirectory: state, logger: quietLogger) }
  var frontendURL: String { "http://127.0.0.1:\(frontendPort)/" }

  init() throws {
    temporary = try TemporaryDirectory(prefix: "hk")
    state = try StateDirectory(path: temporary.path("state"))
    frontendPort = try FreePort.allocate()
  }

  /// A configuration with a frontend on ``frontendPort`` and backend `be`, which has `servers` lines.
  func config(servers: [String] = [], extraGlobal: [String] = []) -> String {
    let lines =
      [
        "global",
        "  stats socket \(state.adminSocketPath) mode 600 level admin",
        "  hard-stop-after 10s",
      ] + extraGlobal.map { "  \($0)" } + [
        "defaults",
        "  mode http",
        "  timeout connect 2s",
        "  timeout client 10s",
        "  timeout server 10s",
        "frontend fe",
        "  bind 127.0.0.1:\(frontendPort)",
        "  default_backend be",
        "backend be",
        "  balance roundrobin",
      ] + servers.map { "  \($0)" }
    return lines.joined(separator: "\n") + "\n"
  }

  /// Installs ``config(servers:extraGlobal:)`` and starts HAProxy with it.
  func start(servers: [String] = []) async throws -> HAProxyProcess {
    try await installer.install(config(servers: servers), at: state.configPath)
    return try await HAProxyProcess.start(stateDirectory: state, logger: quietLogger)
  }

  /// Runs `body` with a fixture and, however it ends, kills every HAProxy that still serves the fixture's
  /// state directory (by the PIDs it lists) and removes the directory.
  static func with(_ body: (HAProxyFixture) async throws -> Void) async throws {
    let fixture = try HAProxyFixture()
    do {
      try await body(fixture)
    } catch {
      fixture.killLeftovers()
      throw error
    }
    fixture.killLeftovers()
  }

  /// SIGKILLs the master named in the PID file and any process whose command line names our master
  /// socket (workers), then removes the temporary directory.
  func killLeftovers() {
    for pid in haproxyPIDs() { kill(pid, SIGKILL) }
    temporary.remove()
  }

  /// Every live process whose command line names this fixture's master socket: the master and its workers.
  func haproxyPIDs() -> [Int32] {
    let entries = (try? FileManager.default.contentsOfDirectory(atPath: "/proc")) ?? []
    return entries.compactMap { Int32($0) }.filter {
      ProcessInspection.isHAProxy(pid: $0, masterSocket: state.masterSocketPath)
    }
  }
}

/// Whether `/proc/<pid>` exists at all, zombie or not.
func processExists(_ pid: Int32) -> Bool {
  FileManager.default.fileExists(atPath: "/proc/\(pid)")
}

/// A file's permission bits.
func mode(of path: String) throws -> Int {
  var info = stat()
  guard lstat(path, &info) == 0 else { throw POSIXError(.ENOENT) }
  return Int(info.st_mode & 0o7777)
}
