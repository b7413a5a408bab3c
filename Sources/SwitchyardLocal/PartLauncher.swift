import Foundation
import SwitchyardProcess

#if canImport(Glibc)
  import Glibc
#endif

/// Starts a part as a detached process and records it in the cluster state; stops it again.
struct PartLauncher: Sendable {
  /// The state directory of the cluster; logs go to its `logs/`.
  let home: String
  /// Where progress goes.
  let say: @Sendable (String) -> Void

  /// Throws, naming the Debian package, when `name` is neither an executable path nor found in `PATH`.
  static func checkExecutable(_ name: String, package: String) throws {
    guard ExecutablePath.find(name) != nil else {
      throw LocalClusterError("\(name) is not installed; `make up` installs it (apt-get install \(package))")
    }
  }

  /// Starts `spec` with its log in `logs/<name>.log`, and records its PID in `state` (replacing an earlier
  /// record of the same part; a new part goes after the last of its kind, so that the parts stay in the
  /// order of ``PartKind/rank``), which is saved at once.
  func launch(_ spec: PartSpec, into state: inout ClusterState) throws {
    let logPath = "\(home)/logs/\(spec.name).log"
    let pid = try DetachedProcess.spawn(spec.executable, arguments: spec.arguments, logPath: logPath)
    // Reaped while this command runs; once it exits, init adopts what is left.
    DetachedProcess.reapInBackground(pid)
    let record = PartRecord(spec: spec, pid: pid, logPath: logPath)
    if let index = state.parts.firstIndex(where: { $0.spec.name == spec.name }) {
      state.parts[index] = record
    } else {
      let next = state.parts.firstIndex { $0.spec.kind.rank > spec.kind.rank } ?? state.parts.endIndex
      state.parts.insert(record, at: next)
    }
    try state.save(home: home)
    say("  \(spec.name): pid \(pid), \(spec.address)")
  }

  /// SIGTERM, then SIGKILL after 30 s; returns once the process is gone.
  func terminate(_ record: PartRecord) async {
    guard let pid = record.pid, record.isRunning else { return }
    kill(pid, SIGTERM)
    let deadline = ContinuousClock.now.advanced(by: .seconds(30))
    while record.isRunning {
      if ContinuousClock.now >= deadline {
        say("  \(record.spec.name) did not stop within 30 s; killing it")
        kill(pid, SIGKILL)
      }
      try? await Task.sleep(for: .milliseconds(50))
    }
  }
}
