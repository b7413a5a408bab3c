import EtcdClient
import Foundation
import HAProxyKit
import SwitchyardProcess
import SwitchyardTestSupport
import Testing

/// The two HAProxy releases `make test` has: the one in `PATH` (the run's) and the other one — Debian
/// 12's `/usr/sbin/haproxy` or Debian 13's from `scripts/install-debian13.sh`.
enum HAProxyReleases {
  /// The HAProxy in `PATH`, resolved.
  static func underTest() throws -> String {
    guard let path = ExecutablePath.find("haproxy") else { throw TestSupportError("no haproxy in PATH") }
    return URL(fileURLWithPath: path).resolvingSymlinksInPath().path
  }

  /// The release that is not the one under test, and both versions.
  static func other(stateDirectory: StateDirectory) async throws -> (path: String, version: HAProxyVersion) {
    let current = try underTest()
    let version = try await HAProxyVersion.of(executable: current, stateDirectory: stateDirectory)
    let environment = ProcessInfo.processInfo.environment
    let cache =
      environment["SWITCHYARD_CACHE"]
      ?? "\(environment["XDG_CACHE_HOME"] ?? "\(NSHomeDirectory())/.cache")/switchyard"
    for candidate in ["/usr/sbin/haproxy", "\(cache)/debian13/bin/haproxy"]
    where FileManager.default.isExecutableFile(atPath: candidate) {
      let found = try await HAProxyVersion.of(executable: candidate, stateDirectory: stateDirectory)
      if found.series != version.series { return (candidate, found) }
    }
    throw TestSupportError(
      "no second HAProxy release beside \(version) (\(current)): run scripts/install-debian13.sh")
  }
}

extension ScenarioContext {
  /// lb1's HAProxy binary is replaced by the other release (2.6 → 3.0 in the Debian 12 run, 3.0 → 2.6 in
  /// the Debian 13 one) under load, as a package upgrade does; a service-settings change then reloads
  /// both nodes, and lb1's master re-executes the new binary. A new backend is registered on the new
  /// release, then lb1 goes back to the old one the same way.
  ///
  /// Expected: lb1's `/state` names the new release after the reload and the old one after the second;
  /// lb2 keeps its own; the new backend reaches both nodes within the change deadline; 0 failed requests;
  /// both nodes equal etcd at the end.
  func haproxyUpgrade() async throws {
    let directory = try StateDirectory(path: cluster.directory.path("releases"))
    let original = try HAProxyReleases.underTest()
    let (otherPath, otherVersion) = try await HAProxyReleases.other(stateDirectory: directory)
    let before = try await cluster.state("lb1").haproxyVersion ?? "?"
    let settings = "/switchyard/services/backend"

    try cluster.linkHAProxy("lb1", to: otherPath)
    faultBegins()
    // A structural change: both nodes reload, lb1 on the new binary.
    try await etcd.put(settings, value: #"{"balance":"leastconn"}"#)
    try await retrying(timeout: .seconds(10), every: .milliseconds(100)) {
      let running = try await cluster.state("lb1").haproxyVersion
      guard running == otherVersion.text else {
        throw TestSupportError("lb1 runs HAProxy \(running ?? "?"), not \(otherVersion)")
      }
    }
    note("lb1 runs HAProxy \(otherVersion) (was \(before)) \(elapsedSinceFault) after the binary was replaced")
    let lb2 = try await cluster.state("lb2").haproxyVersion
    #expect(lb2 == before, "\(name): lb2 runs \(lb2 ?? "?"), not its own \(before)")
    // Runtime API changes on the new release: a new backend on both nodes.
    try await changeDuringFault()

    try cluster.linkHAProxy("lb1", to: original)
    try await etcd.delete(.key(settings))
    try await retrying(timeout: .seconds(10), every: .milliseconds(100)) {
      let running = try await cluster.state("lb1").haproxyVersion
      guard running == before else { throw TestSupportError("lb1 runs HAProxy \(running ?? "?"), not \(before) again") }
    }
    await healed()
    try await cluster.stopBackend("x1")
  }
}
