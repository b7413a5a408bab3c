import EtcdClient
import Foundation
import HAProxyKit
import Logging
import ServiceLifecycle
import SwitchyardModel
import SwitchyardReconcile
import Synchronization

/// Keeps one node's HAProxy in step with the registrations in etcd.
///
/// Start: adopt the HAProxy a previous controller left running, if any; read the whole prefix at one
/// revision, render, validate, install, start HAProxy if needed; then watch from that revision + 1.
/// Watch events only mean "something changed": they are coalesced, and every pass reads the full
/// desired state at one revision and plans against what HAProxy reports. Server changes go through the
/// Runtime API; structural changes, and any Runtime API command HAProxy does not confirm, fall back to one
/// seamless reload through the master. The config file on disk always describes the desired state.
///
/// On graceful shutdown the controller stops HAProxy gracefully, unless told to leave it running.
public final class Controller: Service, Sendable {
  struct Memory {
    var lastDesired: DesiredState?
    var installedText: String?
    /// The structure of `installedText`, checked with `haproxy -c` when it was first installed.
    var installedStructure: String?
    var runningStructure: String?
    /// The file HAProxy last read (start or reload), for the `reload` update strategy.
    var loadedText: String?
    var removals = RemovalTracker()
    var loggedInvalid: Set<String> = []
    var loggedConflicts: Set<String> = []
    var firstRevision: Int64?
    var eventsSinceLastPass = false
    /// The config rendered from `lastDesired`.
    var lastRendered: RenderedConfig?
    /// The next pass only follows up on draining servers: nothing changed in etcd, so it asks HAProxy
    /// alone, against `lastDesired`.
    var followUpOnly = false
  }

  private let configuration: ControllerConfiguration
  private let client: EtcdClient
  private let dataPlane: DataPlane
  private let trigger: ReconcileTrigger<ContinuousClock>
  private let memory = Mutex(Memory())
  private let logger: Logger
  /// Shared with the admin server.
  public let status: ControllerStatus
  /// Shared with the admin server.
  public let metrics: ControllerMetrics

  /// Creates a controller. Nothing happens until `run()`.
  public init(
    configuration: ControllerConfiguration,
    client: EtcdClient,
    status: ControllerStatus,
    metrics: ControllerMetrics,
    logger: Logger
  ) throws {
    self.configuration = configuration
    self.client = client
    self.status = status
    self.metrics = metrics
    self.logger = logger
    dataPlane = try DataPlane(configuration: configuration, logger: logger)
    trigger = ReconcileTrigger(clock: ContinuousClock(), policy: configuration.coalescing)
  }

  /// Runs until cancelled or gracefully shut down; then stops HAProxy unless told to leave it running.
  public func run() async throws {
    if let pid = try await dataPlane.adopt() {
      logger.notice("Adopted the HAProxy that is already running", metadata: ["haproxy.pid": "\(pid)"])
      memory.withLock { $0.runningStructure = dataPlane.readRunningStructure() }
      status.update {
        $0.haproxyAdopted = true
        $0.haproxyPID = pid
        $0.haproxyRunning = true
      }
      metrics.haproxyRunning.set(to: 1)
    }
    trigger.notify()
    await cancelWhenGracefulShutdown {
      await withDiscardingTaskGroup { group in
        group.addTask { await self.reconcileLoop() }
        group.addTask { await self.watchLoop() }
        group.addTask { await self.progressLoop() }
        group.addTask { await self.superviseLoop() }
        group.addTask { await self.refreshLoop() }
      }
    }
    if configuration.leaveHAProxyRunning {
      logger.notice("Leaving HAProxy running", metadata: ["haproxy.pid": "\(dataPlane.pid.map(String.init) ?? "-")"])
    } else {
      // Not cancelled with the task: the stop must finish.
      await Task { await self.dataPlane.stop(timeout: self.configuration.haproxyStopTimeout) }.value
      status.update { $0.haproxyRunning = false }
      metrics.haproxyRunning.set(to: 0)
      logger.notice("HAProxy stopped")
    }
  }

  // MARK: - Reconcile

  private func reconcileLoop() async {
    var failures = 0
    while let firstChange = await trigger.nextPass() {
      let (hadEvents, followUpOnly) = memory.withLock { memory in
        defer {
          memory.eventsSinceLastPass = false
          memory.followUpOnly = false
        }
        return (memory.eventsSinceLastPass, memory.followUpOnly)
      }
      do {
        let followUp = try await (followUpOnly && !hadEvents ? followUpPass() : pass())
        failures = 0
        metrics.reconcilesOK.increment()
        if hadEvents { metrics.eventToApplied.record(firstChange.duration(to: .now)) }
        status.update { $0.lastError = nil }
        if followUp {
          memory.withLock { $0.followUpOnly = true }
          scheduleRetry(after: .milliseconds(500))
        }
      } catch is CancellationError {
        return
      } catch {
        failures += 1
        metrics.reconcilesFailed.increment()
        status.update { $0.lastError = "\(error)" }
        let delay = Backoff(initial: .milliseconds(200), maximum: .seconds(1)).baseDelay(attempt: failures - 1)
        logger.error(
          "Reconcile pass failed; HAProxy keeps serving what it has",
          metadata: ["error": "\(error)", "retry_in": "\(delay)"]
        )
        // The last good file may be older than what HAProxy ran (runtime changes reach the file after
        // HAProxy): start from it only when etcd cannot say what is current.
        if !status.state.withLock({ $0.etcdConnected }) { await startFromLastGoodConfigIfNeeded() }
        scheduleRetry(after: delay)
      }
    }
  }

  private func scheduleRetry(after delay: Duration) {
    Task { [trigger] in
      try? await Task.sleep(for: delay)
      trigger.notify()
    }
  }

  /// One pass: read, render, install, plan, apply. Returns whether another pass must follow (servers drain).
  private func pass() async throws -> Bool {
    let read: RangeResult
    do {
      read = try await client.getPaginated(.prefix(ControllerConfiguration.prefix), pageSize: 500)
      status.update {
        $0.etcdConnected = true
        $0.etcdError = nil
      }
      metrics.etcdConnected.set(to: 1)
    } catch {
      status.update {
        $0.etcdConnected = false
        $0.etcdError = "\(error)"
      }
      metrics.etcdConnected.set(to: 0)
      throw error
    }
    let revision = read.header.revision
    let (valid, invalid) = ServiceInstance.parseAll(read.kvs.map { ($0.key, $0.value, $0.modRevision) })
    report(invalid: invalid)
    let previous = memory.withLock { $0.lastDesired }
    let desired = DesiredState(
      revision: revision,
      services: configuration.node.services,
      instances: valid,
      previous: previous
    )
    report(conflicts: DesiredState.checkPathConflicts(in: desired, instances: valid))
    let rendered = ConfigRenderer.render(desired, settings: configuration.node)
    // A change the Runtime API can make is applied first and written to the file right after, so that
    // HAProxy gets it without waiting for `haproxy -c`, also in a pass that reloads for another
    // backend; anything that makes HAProxy read the file (a start, a reload) installs it first.
    if !dataPlane.isRunning { try await install(rendered, revision: revision) }
    memory.withLock {
      $0.lastDesired = desired
      $0.lastRendered = rendered
    }
    if !dataPlane.isRunning {
      try await startHAProxy(structure: rendered.structure)
    }
    let followUp = try await apply(desired: desired, rendered: rendered)
    try await install(rendered, revision: revision, serversApplied: true)
    memory.withLock { memory in
      if memory.firstRevision == nil { memory.firstRevision = revision }
    }
    status.update {
      $0.appliedRevision = revision
      $0.initialPassDone = true
    }
    metrics.appliedRevision.set(to: Double(revision))
    return followUp
  }

  /// A pass that only follows up on draining servers: etcd has said nothing new since the last pass, so
  /// it works from that pass's desired state and asks HAProxy alone. Falls back to a full pass when there
  /// is no last pass to work from.
  private func followUpPass() async throws -> Bool {
    let last = memory.withLock { memory in
      memory.lastDesired.flatMap { desired in memory.lastRendered.map { (desired, $0) } }
    }
    guard let (desired, rendered) = last, dataPlane.isRunning else { return try await pass() }
    metrics.followUpPasses.increment()
    let followUp = try await apply(desired: desired, rendered: rendered)
    try await install(rendered, revision: desired.revision, serversApplied: true)
    return followUp
  }

  /// Validates and installs `rendered` as the config file, unless it is installed already. An invalid
  /// render is never installed: the last good file stays, and the failure is counted and thrown.
  private func install(_ rendered: RenderedConfig, revision: Int64, serversApplied: Bool = false) async throws {
    let (installedText, installedStructure) = memory.withLock { ($0.installedText, $0.installedStructure) }
    guard rendered.text != installedText else { return }
    // `haproxy -c` (tens of ms of CPU, more with a large file) runs when the structure changed. A text
    // whose structure was checked before and whose only new lines are servers HAProxy has just taken
    // through the Runtime API needs no second opinion; a start or a reload always reads a checked structure.
    let validate = !(serversApplied && rendered.structure == installedStructure)
    do {
      try await dataPlane.install(rendered.text, validate: validate)
      dataPlane.recordInstalledStructure(rendered.structure)
    } catch {
      metrics.configRejected.increment()
      throw ControllerError("the rendered configuration was not installed; the last good one stays: \(error)")
    }
    memory.withLock {
      $0.installedText = rendered.text
      $0.installedStructure = rendered.structure
    }
    logger.debug("Installed a new configuration", metadata: ["revision": "\(revision)"])
  }

  /// Brings HAProxy to `desired`: Runtime API commands, or a reload when they cannot. Returns whether
  /// removed servers still drain.
  private func apply(desired: DesiredState, rendered: RenderedConfig) async throws -> Bool {
    for _ in 0..<4 {
      // One Runtime API connection per round; a reload ends the round, since the connection belongs
      // to the worker that the reload retires.
      let finished = try await dataPlane.withRuntimeSession {
        try await applyRound(desired: desired, rendered: rendered)
      }
      if let followUp = finished { return followUp }
    }
    throw ControllerError("HAProxy did not reach the desired state after four rounds of changes")
  }

  /// One round of ``apply(desired:rendered:)``: observe, plan, and change. Returns whether a follow-up
  /// pass is needed once HAProxy has what `desired` says, or `nil` when another round must look again.
  private func applyRound(desired: DesiredState, rendered: RenderedConfig) async throws -> Bool? {
    let backends = desired.backends.map(\.name)
    let observed = try await dataPlane.observe(backends: backends)
    let now = ContinuousClock.now
    let (runningStructure, drainingFor) = memory.withLock { memory in
      memory.removals.update(desired: desired, observed: observed, now: now)
      return (memory.runningStructure, memory.removals.elapsed(now: now))
    }
    let plan = Planner.plan(
      desired: desired,
      rendered: rendered,
      runningStructure: runningStructure,
      observed: observed,
      drainingFor: drainingFor,
      settings: configuration.node,
      policy: configuration.removal
    )
    if configuration.updateStrategy == .reload && !plan.isEmpty
      && rendered.text != memory.withLock({ $0.loadedText })
    {
      // The original demo's way, kept for comparisons: every change rewrites the file and reloads.
      try await installAndReload(rendered, desired: desired, cause: .strategy, reason: Self.strategyReloadReason)
      return nil
    }
    if plan.needsReload {
      // Backends the reload does not change take their changes now: a reload can be slow, and a
      // configuration HAProxy rejects must not hold them back. A refused command is put right by
      // the reload that follows.
      if !plan.commands.isEmpty { _ = try await execute(plan.commands, drainingFor: drainingFor) }
      let reason = plan.reloadReasons.joined(separator: "; ")
      try await installAndReload(rendered, desired: desired, cause: .structure, reason: reason) {
        logger.notice("Reloading HAProxy", metadata: ["reason": "\(reason)", "revision": "\(desired.revision)"])
      }
      return nil
    }
    if plan.commands.isEmpty {
      publish(desired: desired, observed: observed)
      return !plan.draining.isEmpty
    }
    switch try await execute(plan.commands, drainingFor: drainingFor) {
    case .done: return nil
    case .deletesDeferred:
      // Everything else is applied; the next pass deletes what still holds connections.
      publish(desired: desired, observed: try await dataPlane.observe(backends: backends))
      return true
    case .failed:
      try await installAndReload(
        rendered, desired: desired, cause: .fallback, reason: "a Runtime API command was refused")
    }
    return nil
  }

  /// How a batch of Runtime API commands went.
  private enum Outcome {
    /// Every command was confirmed.
    case done
    /// Every command was confirmed except deletes of servers that still hold connections.
    case deletesDeferred
    /// HAProxy refused a command; a reload must put things right.
    case failed
  }

  /// Sends commands in order.
  private func execute(_ commands: [RuntimeCommand], drainingFor: [ServerRef: Duration]) async throws -> Outcome {
    var deferred = false
    for command in commands {
      metrics.runtimeCommands.increment()
      do {
        try await dataPlane.execute(command)
        logger.info("Runtime API", metadata: ["command": "\(command)"])
      } catch let error as HAProxyError where error.code != .connectionFailed && error.code != .timedOut {
        if case .deleteServer(let ref) = command {
          metrics.deletesDeferred.increment()
          // Connections not yet released: the next pass tries again (with its sessions shut down once
          // the drain timeout passed). A reload would cost every keep-alive client; a retry costs nothing.
          let late = drainingFor[ref, default: .zero] >= configuration.removal.drainTimeout
          logger.log(
            level: late ? .warning : .debug,
            "Server not deletable yet; trying again on the next pass",
            metadata: ["server": "\(ref)", "reply": "\(error.reply ?? "")"]
          )
          deferred = true
          continue
        }
        metrics.runtimeCommandFailures.increment()
        logger.warning(
          "HAProxy refused a Runtime API command; falling back to a reload",
          metadata: ["command": "\(command)", "error": "\(error)"]
        )
        return .failed
      } catch {
        metrics.runtimeCommandFailures.increment()
        throw error
      }
    }
    return deferred ? .deletesDeferred : .done
  }

  /// Why the `reload` update strategy reloads.
  static let strategyReloadReason = "update strategy reload: the configuration changed"

  /// A reload slower than this is logged with its reason and what could have slowed it.
  static let slowReload: Duration = .seconds(3)

  /// The metadata of the warning about a reload that took `took`, or `nil` when it was not slow: how long
  /// it took, why it happened, and the host names HAProxy resolved while it loaded the file (libc; an
  /// unreachable resolver or a name that does not resolve is the usual cause of a slow reload).
  static func slowReloadReport(took: Duration, reason: String, desired: DesiredState) -> Logger.Metadata? {
    guard took > slowReload else { return nil }
    let hostNames = desired.backends.flatMap(\.servers).filter { !$0.isDynamic }.map(\.address.text)
    return [
      "duration": "\(took)", "reason": "\(reason)",
      "host_names_resolved_at_load": "\(hostNames.isEmpty ? "none" : hostNames.joined(separator: ","))",
    ]
  }

  /// Why HAProxy reloads, as counted in `switchyard_haproxy_reloads_total`.
  private enum ReloadCause {
    case structure, fallback, strategy
  }

  /// Installs `rendered` (HAProxy reads the file on reload), then reloads; `beforeReload` runs once the
  /// file is in place.
  private func installAndReload(
    _ rendered: RenderedConfig,
    desired: DesiredState,
    cause: ReloadCause,
    reason: String,
    beforeReload: () -> Void = {}
  ) async throws {
    try await install(rendered, revision: desired.revision)
    beforeReload()
    try await reload(structure: rendered.structure, cause: cause, reason: reason, desired: desired)
  }

  private func reload(structure: String, cause: ReloadCause, reason: String, desired: DesiredState) async throws {
    let clock = ContinuousClock()
    let started = clock.now
    try await dataPlane.reload()
    let took = started.duration(to: clock.now)
    if let metadata = Self.slowReloadReport(took: took, reason: reason, desired: desired) {
      logger.warning("HAProxy took long to reload", metadata: metadata)
    }
    memory.withLock {
      $0.runningStructure = structure
      $0.loadedText = $0.installedText
    }
    dataPlane.writeRunningStructure(structure)
    switch cause {
    case .structure: metrics.reloadsStructural.increment()
    case .fallback: metrics.reloadsFallback.increment()
    case .strategy: metrics.reloadsStrategy.increment()
    }
    status.update { $0.reloads += 1 }
  }

  private func startHAProxy(structure: String) async throws {
    let pid = try await dataPlane.start()
    memory.withLock {
      $0.runningStructure = structure
      $0.loadedText = $0.installedText
    }
    dataPlane.writeRunningStructure(structure)
    status.update {
      $0.haproxyPID = pid
      $0.haproxyRunning = true
    }
    metrics.haproxyRunning.set(to: 1)
    logger.notice("HAProxy started", metadata: ["haproxy.pid": "\(pid)"])
  }

  /// With etcd unreachable and no HAProxy running, serve the last good config rather than nothing.
  private func startFromLastGoodConfigIfNeeded() async {
    guard !Task.isCancelled, !dataPlane.isRunning, let structure = dataPlane.lastGoodStructure() else { return }
    do {
      try await startHAProxy(structure: structure)
      logger.notice("Started HAProxy from the last good configuration while etcd is unreachable")
    } catch {
      logger.error("Could not start HAProxy from the last good configuration", metadata: ["error": "\(error)"])
    }
  }

  private func publish(desired: DesiredState, observed: ObservedState) {
    var counts: [String: [String: Int]] = [:]
    let services = desired.backends.map { backend in
      let registered = Set(backend.servers.map(\.name))
      let servers = (observed.backends[backend.name] ?? []).sorted { $0.name < $1.name }.map { server in
        let health = server.isUp ? "up" : "down"
        let state = server.adminState == .ready ? health : server.adminState.rawValue
        counts[backend.service.rawValue, default: [:]][state, default: 0] += 1
        return ControllerStatus.Server(
          name: server.name,
          address: server.address.map { $0.contains(":") ? "[\($0)]:\(server.port ?? 0)" : "\($0):\(server.port ?? 0)" }
            ?? "-",
          weight: server.weight,
          adminState: server.adminState.rawValue,
          health: health,
          registered: registered.contains(server.name)
        )
      }
      return ControllerStatus.Service(
        name: backend.service.rawValue,
        backend: backend.name,
        checkPath: backend.checkPath,
        servers: servers
      )
    }
    status.update { $0.services = services }
    metrics.setServers(counts, services: configuration.node.services.map(\.rawValue))
  }

  private func report(invalid: [RegistrationError]) {
    metrics.invalidEntries.set(to: Double(invalid.count))
    let entries = invalid.map { ControllerStatus.InvalidEntry(key: $0.escapedKey ?? "?", reason: $0.description) }
    let fresh = memory.withLock { memory in
      let descriptions = Set(invalid.map(\.description))
      let fresh = invalid.filter { !memory.loggedInvalid.contains($0.description) }
      memory.loggedInvalid = descriptions
      return fresh
    }
    for error in fresh {
      logger.warning(
        "Skipping an invalid registration", metadata: ["key": "\(error.escapedKey ?? "?")", "error": "\(error)"])
    }
    status.update { $0.invalidEntries = entries }
  }

  private func report(conflicts: [(backend: String, server: String, path: String)]) {
    let lines = conflicts.map { "\($0.backend)/\($0.server) registered check path \($0.path)" }
    let fresh = memory.withLock { memory in
      let fresh = lines.filter { !memory.loggedConflicts.contains($0) }
      memory.loggedConflicts = Set(lines)
      return fresh
    }
    for line in fresh {
      logger.warning("A backend checks all its servers on one path; this server's own path is not used: \(line)")
    }
  }

  // MARK: - Watch

  private func watchLoop() async {
    guard var next = await firstRevision().map({ $0 + 1 }) else { return }
    var failures = 0
    while !Task.isCancelled {
      do {
        let watch = client.watch(.prefix(ControllerConfiguration.prefix), options: WatchOptions(startRevision: next))
        for try await response in watch {
          failures = 0
          status.update {
            $0.lastWatchWord = .now
            $0.etcdConnected = true
          }
          if let last = response.events.last {
            next = max(next, last.kv.modRevision + 1)
            memory.withLock { $0.eventsSinceLastPass = true }
            trigger.notify()
          }
        }
        return
      } catch let error as EtcdError where error.code == .compacted {
        let compactRevision = error.compactRevision ?? 0
        logger.warning(
          "The watch's history was compacted; reading the full state again",
          metadata: ["resume_revision": "\(next)", "compact_revision": "\(compactRevision)"]
        )
        trigger.notify()
        next = max(next, compactRevision)
      } catch is CancellationError {
        return
      } catch {
        failures += 1
        let delay = Backoff(initial: .milliseconds(200), maximum: .seconds(1)).baseDelay(attempt: failures - 1)
        logger.warning("The etcd watch failed; retrying", metadata: ["error": "\(error)", "retry_in": "\(delay)"])
        try? await Task.sleep(for: delay)
      }
    }
  }

  private func firstRevision() async -> Int64? {
    while !Task.isCancelled {
      if let revision = memory.withLock({ $0.firstRevision }) { return revision }
      try? await Task.sleep(for: .milliseconds(50))
    }
    return nil
  }

  /// Asks etcd for progress notifications, so that a silent watch is told apart from a dead one.
  private func progressLoop() async {
    while !Task.isCancelled {
      client.requestWatchProgress()
      let endpoint = client.watchStream.endpoint?.description
      status.update { $0.watchEndpoint = endpoint }
      let reasons = status.notReadyReasons()
      metrics.watchCurrent.set(to: reasons.contains { $0.contains("watch") } ? 0 : 1)
      try? await Task.sleep(for: configuration.watchProgressInterval)
    }
  }

  // MARK: - HAProxy supervision

  /// Keeps `/state` and the server metrics current between passes: health checks change servers without
  /// any change in etcd.
  private func refreshLoop() async {
    // A difference seen once may be a pass at work; one seen twice in a row, a second apart, is drift.
    var differedBefore = false
    var interval = Duration.seconds(1)
    while !Task.isCancelled {
      try? await Task.sleep(for: interval)
      guard let desired = memory.withLock({ $0.lastDesired }), dataPlane.isRunning else { continue }
      let backends = desired.backends.map(\.name)
      // Observing costs HAProxy and the controller CPU in proportion to the fleet: once a second up to
      // 1,000 servers, then less often, at most every 10 s.
      let servers = desired.backends.reduce(0) { $0 + $1.servers.count }
      interval = .milliseconds(min(10_000, max(1_000, servers)))
      if let observed = try? await dataPlane.withRuntimeSession({
        try await dataPlane.observe(backends: backends, connections: false)
      }) {
        publish(desired: desired, observed: observed)
        // A server whose health check does not run is repaired by a pass (it plans `enable health`), and
        // so is a server HAProxy lost or gained behind the controller's back (a reload by hand from a
        // file older than the runtime changes, a `del server` or `add server` typed by an operator).
        let wanted = Set(desired.backends.flatMap { backend in backend.servers.map { "\(backend.name)/\($0.name)" } })
        let running = Set(observed.backends.flatMap { backend, servers in servers.map { "\(backend)/\($0.name)" } })
        // Servers on their way out (draining, in maintenance) are the removal's business, not drift.
        let serving = Set(
          observed.backends.flatMap { backend, servers in
            servers.filter { $0.adminState == .ready }.map { "\(backend)/\($0.name)" }
          })
        let unchecked = observed.backends.contains { backend, servers in
          servers.contains { !$0.isCheckEnabled && wanted.contains("\(backend)/\($0.name)") }
        }
        let differs = !wanted.isSubset(of: running) || !serving.isSubset(of: wanted)
        defer { differedBefore = differs }
        if unchecked || (differs && differedBefore) {
          if !wanted.isSubset(of: running) {
            logger.warning(
              "HAProxy lacks servers the controller applied; repairing",
              metadata: ["servers": "\(wanted.subtracting(running).sorted().joined(separator: ","))"]
            )
          }
          trigger.notify()
        }
      }
    }
  }

  /// Notices when HAProxy dies and starts it again from the last good configuration.
  private func superviseLoop() async {
    while !Task.isCancelled {
      try? await Task.sleep(for: .milliseconds(500))
      guard !Task.isCancelled, status.state.withLock({ $0.haproxyRunning }), !dataPlane.isRunning else { continue }
      metrics.haproxyRunning.set(to: 0)
      metrics.haproxyRestarts.increment()
      status.update {
        $0.haproxyRunning = false
        $0.restarts += 1
      }
      logger.error(
        "HAProxy died; starting it again from the last good configuration",
        metadata: ["exit": "\(dataPlane.exitDescription ?? "unknown")", "log": "\(dataPlane.logTail())"]
      )
      trigger.notify()
    }
  }
}

/// A controller failure, described for logs and `/state`.
public struct ControllerError: Error, CustomStringConvertible {
  /// What went wrong.
  public var description: String

  init(_ description: String) {
    self.description = description
  }
}
