import Foundation
import HAProxyKit

#if canImport(Glibc)
  import Glibc
#endif

/// The commands that stop and start parts: `stop`, `start` and `down`.
extension LocalCluster {
  /// Stops one part gracefully (SIGTERM; SIGKILL after 30 s).
  public func stop(_ name: String) async throws {
    let lock = try ClusterLock(home: home)
    defer { withExtendedLifetime(lock) {} }
    var state = try requireState()
    guard let index = state.parts.firstIndex(where: { $0.spec.name == name }) else {
      throw LocalClusterError("no part called \(name); parts: \(state.parts.map(\.spec.name).joined(separator: ", "))")
    }
    let record = state.parts[index]
    guard record.isRunning || OrphanedHAProxies.runningPID(of: record.spec) != nil else {
      say("\(name) is not running.")
      return
    }
    await launcher.terminate(record)
    // An LB node's HAProxy goes with it, also when its controller crashed and left HAProxy serving.
    if let problem = await orphans.stop(of: record.spec) {
      throw LocalClusterError(problem)
    }
    state.parts[index].pid = nil
    try state.save(home: home)
    say("\(name) stopped.")
  }

  /// Starts stopped parts again, with the arguments they were first started with, and waits until they are
  /// healthy.
  ///
  /// An etcd member cannot become healthy while fewer than a quorum of its cluster's members run: for members
  /// started into such a cluster, waiting ends once they listen, and the output says how many more etcd needs
  /// (start them one by one, or several at once: `start etcd1 etcd2`). An LB node whose controller crashed
  /// and left its HAProxy serving gets a controller that adopts that HAProxy.
  public func start(_ names: [String]) async throws {
    let lock = try ClusterLock(home: home)
    defer { withExtendedLifetime(lock) {} }
    var state = try requireState()
    let unknown = names.filter { state.part($0) == nil }
    guard unknown.isEmpty else {
      throw LocalClusterError(
        "no part called \(unknown.joined(separator: ", ")); parts: "
          + state.parts.map(\.spec.name).joined(separator: ", "))
    }
    var starting: [(spec: PartSpec, haproxy: Int32?)] = []
    for name in names where !starting.contains(where: { $0.spec.name == name }) {
      guard let record = state.part(name) else { continue }
      if record.isRunning {
        say("\(name) is already running (pid \(record.pid ?? 0)).")
        continue
      }
      starting.append((record.spec, try checkPortsFree(for: record.spec)))
    }
    guard !starting.isEmpty else { return }
    for (spec, haproxy) in starting {
      if let haproxy { say("\(spec.name)'s HAProxy (pid \(haproxy)) still runs; its controller adopts it.") }
      try launcher.launch(spec, into: &state)
    }
    let started = starting.compactMap { state.part($0.spec.name) }

    let members = state.parts(.etcd)
    let running = members.filter(\.isRunning)
    let quorum = members.count / 2 + 1
    let lacksQuorum = running.count < quorum
    let startedMembers = started.filter { $0.spec.kind == .etcd }
    if lacksQuorum && !startedMembers.isEmpty {
      try await readiness.waitListening(startedMembers)
      try await readiness.waitHealthy(started.filter { $0.spec.kind != .etcd })
    } else {
      try await readiness.waitHealthy(started)
    }
    for (spec, haproxy) in starting {
      guard let haproxy else { continue }
      let adopted = await probe.controllerSnapshot(spec).map { $0.haproxyAdopted && $0.haproxyPID == haproxy }
      guard adopted != false else {
        throw LocalClusterError("\(spec.name) started, but its controller did not adopt HAProxy \(haproxy)")
      }
      say("\(spec.name) adopted HAProxy (pid \(haproxy)).")
    }
    say("\(started.map(\.spec.name).joined(separator: ", ")) started.")
    if lacksQuorum && !startedMembers.isEmpty {
      let stopped = members.filter { !$0.isRunning }.map(\.spec.name)
      say(
        "etcd has no quorum yet: \(running.count) of \(members.count) members run and \(quorum) are needed. "
          + "Start \(quorum - running.count) more of \(stopped.joined(separator: ", ")) "
          + "(`switchyard start \(stopped.prefix(quorum - running.count).joined(separator: " "))`)."
      )
    }
  }

  /// Throws when a port of `spec` is taken by anything but the part's own HAProxy. Returns that HAProxy's
  /// PID when it runs: an LB node whose controller died leaves it serving, and a new controller adopts it.
  private func checkPortsFree(for spec: PartSpec) throws -> Int32? {
    let directory = OrphanedHAProxies.directory(of: spec)
    let haproxy = OrphanedHAProxies.runningPID(of: spec)
    for port in spec.ports where LoopbackPorts.isInUse(port) {
      let owners = LoopbackPorts.owners(of: port)
      if let directory, haproxy != nil, !owners.isEmpty,
        owners.allSatisfy({ HAProxyProcess.isProcess($0, of: directory) })
      {
        continue
      }
      let owner = owners.first.map { " by \(LoopbackPorts.describe($0))" } ?? ""
      throw LocalClusterError("port \(port) of \(spec.name) is in use\(owner)")
    }
    return haproxy
  }

  /// Stops everything in order (backends and `web`, then LB nodes with their HAProxy, then etcd) and checks
  /// that every port is free. With `purge`, removes the state directory too.
  public func down(purge: Bool) async throws {
    guard FileManager.default.fileExists(atPath: home) else {
      say("Nothing to stop: \(home) does not exist.")
      return
    }
    var leftovers: [String] = []
    do {
      let lock = try ClusterLock(home: home)
      defer { withExtendedLifetime(lock) {} }
      if var state = try ClusterState.load(home: home) {
        leftovers = try await stopAll(&state)
        leftovers += await readiness.portsStillInUse(state)
        if leftovers.isEmpty { try? FileManager.default.removeItem(atPath: ClusterState.path(home: home)) }
      } else {
        say("No cluster is recorded in \(home).")
        leftovers = await orphans.stopAll()
      }
    }
    // Nothing is removed while something of the cluster may still run: its PID files and logs are in `home`.
    if !leftovers.isEmpty {
      throw LocalClusterError(
        "still in use after stopping: \(leftovers.joined(separator: ", "))"
          + (purge ? "; \(home) is kept" : ""))
    }
    if purge {
      try FileManager.default.removeItem(atPath: home)
      say("Removed \(home).")
    }
    say("Everything stopped; every port is free.")
  }

  /// Stops every part, stage by stage (the instances of both sample services together, then the LB nodes,
  /// then etcd), and every LB node's HAProxy with its node (also one whose controller crashed); returns what
  /// could not be stopped.
  @discardableResult
  func stopAll(_ state: inout ClusterState) async throws -> [String] {
    var problems: [String] = []
    let stages: [Set<PartKind>] = [[.backend, .web], [.lb], [.etcd]]
    for kinds in stages {
      let records = state.parts.filter { kinds.contains($0.spec.kind) && $0.isRunning }
      if !records.isEmpty {
        say("Stopping \(records.map(\.spec.name).joined(separator: ", "))…")
        await withTaskGroup(of: Void.self) { group in
          for record in records { group.addTask { await launcher.terminate(record) } }
        }
      }
      if kinds.contains(.lb) { problems += await orphans.stopAll() }
      for index in state.parts.indices where kinds.contains(state.parts[index].spec.kind) {
        state.parts[index].pid = nil
      }
      try state.save(home: home)
    }
    return problems
  }
}
