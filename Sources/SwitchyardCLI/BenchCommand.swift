import ArgumentParser
import Foundation
import SwitchyardBench
import SwitchyardProcess

/// `switchyard bench`: measures convergence, churn, bursts, scale and the data plane with its own etcd,
/// controllers, HAProxy and backends on loopback, for both update strategies, and writes the tables.
struct BenchCommand: AsyncParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "bench",
    abstract: "Measure how fast changes reach traffic, side by side for the runtime and reload update strategies.",
    discussion: """
      Starts its own etcd member, backends, and a `switchyard controller` with its HAProxy per scenario, all \
      on 127.0.0.1, and stops them all when it ends. Writes OUTPUT/latest.md and OUTPUT/latest.json and prints \
      the table. The numbers are measurements, never checks: the command fails only if a scenario could not \
      run. Build with -c release for real numbers (make bench).
      """
  )

  @Flag(help: "Small sizes: everything in about two and a half minutes (for CI).")
  var quick = false

  @Option(help: "Directory for latest.md and latest.json.", completion: .directory)
  var output = "bench/results"

  @Option(
    name: .customLong("scenario"),
    help: "Run only this scenario (repeatable): \(BenchOptions.allScenarios.joined(separator: ", ")).")
  var scenarios: [String] = []

  @Option(
    help: ArgumentHelp(
      "The HAProxy executable every controller runs: a path, or a name looked up in PATH.",
      discussion: "Debian 13's HAProxy 3.0, as scripts/install-debian13.sh fetches it: "
        + "~/.cache/switchyard/debian13/bin/haproxy. The report names the version."),
    completion: .file())
  var haproxy = "haproxy"

  @Option(
    name: .customLong("strategy"),
    help: "Run only this update strategy (repeatable): \(BenchOptions.allStrategies.joined(separator: ", ")).")
  var strategies: [String] = []

  func validate() throws {
    guard !output.isEmpty else { throw ValidationError("--output must not be empty") }
    let found = haproxy.contains("/") ? haproxy : ExecutablePath.find(haproxy)
    guard let found, FileManager.default.isExecutableFile(atPath: found) else {
      throw ValidationError("--haproxy: \(haproxy) is not an executable file (a path, or a name in PATH)")
    }
    for scenario in scenarios where !BenchOptions.allScenarios.contains(scenario) {
      throw ValidationError(
        "--scenario: unknown scenario \"\(scenario)\"; choose from \(BenchOptions.allScenarios.joined(separator: ", "))"
      )
    }
    for strategy in strategies where !BenchOptions.allStrategies.contains(strategy) {
      throw ValidationError(
        "--strategy: unknown update strategy \"\(strategy)\"; choose from \(BenchOptions.allStrategies.joined(separator: ", "))"
      )
    }
  }

  func run() async throws {
    let executable = currentExecutable()
    let selected = scenarios.isEmpty ? BenchOptions.allScenarios : BenchOptions.allScenarios.filter(scenarios.contains)
    let strategies =
      self.strategies.isEmpty ? BenchOptions.allStrategies : BenchOptions.allStrategies.filter(self.strategies.contains)
    let options = BenchOptions(
      quick: quick, switchyardExecutable: executable,
      haproxyExecutable: haproxy.contains("/") ? URL(fileURLWithPath: haproxy).standardizedFileURL.path : haproxy,
      scenarios: selected,
      strategies: strategies)
    let directory = URL(fileURLWithPath: output)
    do {
      try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
    } catch {
      throw ValidationError("--output: cannot create \(output): \(error.localizedDescription)")
    }
    let report = try await BenchRunner(options: options).run { line in
      // Unbuffered: progress shows as it happens also when stdout is a pipe (CI) or a file.
      FileHandle.standardOutput.write(Data((line + "\n").utf8))
    }
    let markdown = report.markdown()
    try markdown.write(to: directory.appendingPathComponent("latest.md"), atomically: true, encoding: .utf8)
    try report.json().write(to: directory.appendingPathComponent("latest.json"), atomically: true, encoding: .utf8)
    print("")
    print(markdown)
    print("Wrote \(directory.appendingPathComponent("latest.md").path) and latest.json.")
    let failed = report.scenarios.filter { $0.error != nil }
    if !failed.isEmpty {
      throw BenchFailed(scenarios: failed.map { "\($0.name) \($0.strategy) (\($0.variant))" })
    }
  }
}

/// Some scenarios could not run; the report says why.
private struct BenchFailed: Error, CustomStringConvertible {
  var scenarios: [String]
  var description: String { "\(scenarios.count) scenario(s) failed: \(scenarios.joined(separator: ", "))" }
}
