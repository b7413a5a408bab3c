import EtcdClient
import Foundation
import Logging
import SwitchyardTestSupport
import Testing

/// The `switchyard` executable built next to this test bundle.
let switchyardBinary: String = {
  let directory = URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent().path
  return "\(directory)/switchyard"
}()

/// Starts `switchyard` with arguments; output goes to a log file in `directory`.
func startSwitchyard(_ arguments: [String], directory: TemporaryDirectory, name: String) throws -> ManagedProcess {
  try ManagedProcess(switchyardBinary, arguments: arguments, logPath: "\(directory.path)/\(name).log")
}

/// Runs `switchyard` to completion; returns exit status and output.
func runSwitchyard(_ arguments: [String]) async throws -> (status: Int32, output: String) {
  let directory = try TemporaryDirectory(prefix: "cli")
  defer { directory.remove() }
  let process = try ManagedProcess(switchyardBinary, arguments: arguments, logPath: "\(directory.path)/out.log")
  guard let status = await process.waitForExit(timeout: .seconds(20)) else {
    process.kill()
    throw TestSupportError("switchyard \(arguments) did not exit")
  }
  return (status, process.logTail(bytes: 100_000))
}

/// A client for checking what is in etcd.
func withClient<T: Sendable>(_ cluster: EtcdCluster, _ body: (EtcdClient) async throws -> T) async throws -> T {
  var configuration = try EtcdConfiguration(endpoints: cluster.endpoints.joined(separator: ","))
  configuration.requestTimeout = .seconds(5)
  configuration.dialTimeout = .seconds(1)
  var logger = Logger(label: "agent-test")
  logger.logLevel = .critical
  return try await withEtcdClient(configuration: configuration, logger: logger, body)
}

/// Decodes the JSON registration stored at `key`, or nil when absent.
func registration(at key: String, _ etcd: EtcdClient) async throws -> [String: Any]? {
  guard let kv = try await etcd.value(of: key) else { return nil }
  return try JSONSerialization.jsonObject(with: Data(kv.value)) as? [String: Any]
}
