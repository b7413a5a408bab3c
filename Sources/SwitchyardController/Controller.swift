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
/// Watch events are coalesced into passes. Each event updates a mirror of the prefix
/// (``RegistrationMirror``) and marks its service changed; a pass rebuilds, observes and plans only the
/// changed services' backends, at the mirror's revision, so a change costs the same on any fleet. A full
/// pass (read everything at one revision, compare every backend) runs first, after any failure or
/// compaction, when HAProxy drifts, and every ``ControllerConfiguration/resyncInterval`` as a safety net.
/// Server changes go through the Runtime API; structural changes, and any Runtime API command HAProxy
/// does not confirm, fall back to one seamless reload through the master. The config file on disk
/// follows the desired state within a second, and is always current before HAProxy reads it (a start,
/// a reload).
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
    /// The next pass only follows up on draining servers: nothing changed in etcd, so it asks HAProxy
    /// alone, against `lastDesired`.
    var followUpOnly = false
    /// The prefix as of the last full read and the watch events since.
    var mirror: RegistrationMirror?
    /// Watch events that arrive while a full read is in flight.
    var changeLog = ChangeLog()
    /// Services whose instances changed since the last pass took them.
    var dirtyServices: Set<ServiceName> = []
    /// The next pass must read everything and compare every backend.
    var needsResync = true
    var lastResync: ContinuousClock.Instant?
    /// The config file is behind `lastDesired` (passes that touch a few services leave it to a flush).
    var fileStale = false
    /// The next pass, if nothing else is to be done, writes the config file.
    var flushFile = false
    /// The flush writing the config file, while it runs. It runs beside the reconcile loop (rendering and
    /// syncing a large fleet's file takes tens of milliseconds that a change coming in should not wait
    /// for); every other install waits for it first, so that the newest text is the one that stays.
    var flush: Task<Void, Never>?
  }

  /// What one turn of the reconcile loop does.
  private enum PassKind {
    /// Read everything, compare every backend.
    case full
    /// Rebuild, observe and plan the backends of these services only.
    case incremental(Set<ServiceName>)
    /// Ask HAProxy about the backends with servers leaving.
    case followUp
    /// Bring the config file up to `lastDesired`.
    case flush
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
        group.addTask { await self.timerLoop() }
      }
    }
    // The file may be up to a second behind what HAProxy runs; the next start reads it.
    do {
      try await Task {
        await self.finishFlush()
        try await self.flushConfigFile()
      }.value
    } catch {
      logger.warning("Could not bring the config file up to date on shutdown", metadata: ["error": "\(error)"])
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
      let running = dataPlane.isRunning
      let (hadEvents, kind) = memory.withLock { memory in
        defer {
          memory.eventsSinceLastPass = false
          memory.followUpOnly = false
          memory.flushFile = false
        }
        return (memory.eventsSinceLastPass, nextPassKind(&memory, haproxyRunning: running))
      }
      do {
        let passed: Bool
        switch kind {
        case .full: passed = try await pass()
        case .incremental(let services): passed = try await incrementalPass(services: services)
        case .followUp: passed = try await followUpPass()
        case .flush:
          startFlush()
          passed = false
        }
        let followUp = passed || memory.withLock { !$0.removals.leavingBackends.isEmpty }
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
        memory.withLock { $0.needsResync = true }
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

  /// Chooses the next pass: a full one when the mirror cannot be trusted or is due for a check, one for
  /// the changed services when etcd said something, else a follow-up or a file flush.
  private func nextPassKind(_ memory: inout Memory, haproxyRunning: Bool) -> PassKind {
    let resyncDue = memory.lastResync.map { $0.duration(to: .now) >= configuration.resyncInterval } ?? true
    let trusted =
      !memory.needsResync && !resyncDue && memory.mirror != nil && memory.lastDesired != nil && haproxyRunning
    if !trusted { return .full }
    if configuration.updateStrategy == .reload {
      // The original's way reads everything for every change.
      return memory.followUpOnly && !memory.eventsSinceLastPass ? .followUp : .full
    }
    if memory.eventsSinceLastPass {
      defer { memory.dirtyServices = [] }
      return .incremental(memory.dirtyServices)
    }
    if memory.flushFile && !memory.followUpOnly { return .flush }
    return .followUp
  }

  /// A full pass: read everything at one revision, render, install, plan and apply every backend.
  /// Returns whether another pass must follow (servers drain).
  private func pass() async throws -> Bool {
    memory.withLock {
      $0.needsResync = false
      $0.dirtyServices = []
      $0.changeLog.start()
    }
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
      _ = memory.withLock { $0.changeLog.finish() }
      throw error
    }
    // Parsed outside the lock, which the watch needs; the events that came in meanwhile go on top.
    var mirror = RegistrationMirror(
      revision: read.header.revision, entries: read.kvs.map { ($0.key, $0.value, $0.modRevision) })
    let (valid, invalid, revision) = memory.withLock { memory in
      mirror.apply(memory.changeLog.finish())
      memory.mirror = mirror
      memory.lastResync = .now
      return (mirror.instances, mirror.invalid, mirror.revision)
    }
    report(invalid: invalid)
    let previous = memory.withLock { $0.lastDesired }
    let desired = DesiredState(
      revision: revision,
      services: configuration.node.services,
      instances: valid,
      previous: previous
    )
    report(conflicts: DesiredState.checkPathConflicts(in: desired, instances: valid), scope: nil)
    let rendered = render(desired)
    // A change the Runtime API can make is applied first and written to the file right after, so that
    // HAProxy gets it without waiting for `haproxy -c`, also in a pass that reloads for another
    // backend; anything that makes HAProxy read the file (a start, a reload) installs it first.
    if !dataPlane.isRunning { try await install(rendered, revision: revision) }
    memory.withLock { $0.lastDesired = desired }
    if !dataPlane.isRunning {
      try await startHAProxy(structure: rendered.structure)
    }
    let followUp = try await apply(desired: desired, structure: rendered.structure, scope: nil)
    try await install(rendered, revision: revision, serversApplied: true)
    memory.withLock { memory in
      if memory.lastDesired?.revision == revision { memory.fileStale = false }
      if memory.firstRevision == nil { memory.firstRevision = read.header.revision }
    }
    status.update {
      $0.appliedRevision = revision
      $0.initialPassDone = true
    }
    metrics.appliedRevision.set(to: Double(revision))
    return followUp
  }

  /// A pass for the services whose instances changed since the last pass: their backends are built
  /// again from the mirror, observed and planned; the others are left alone. Its cost follows the
  /// services touched, not the fleet; the config file follows in a flush.
  private func incrementalPass(services dirty: Set<ServiceName>) async throws -> Bool {
    let changed = Set(configuration.node.services).intersection(dirty)
    let (instances, invalid, revision, previous) = memory.withLock { memory in
      (
        changed.flatMap { memory.mirror?.instances(of: $0) ?? [] }, memory.mirror?.invalid ?? [],
        memory.mirror?.revision ?? 0, memory.lastDesired
      )
    }
    guard let previous else { return try await pass() }
    metrics.incrementalPasses.increment()
    report(invalid: invalid)
    let desired = previous.updating(services: changed, instances: instances, revision: revision)
    let scope = Set(desired.backends.filter { changed.contains($0.service) }.map(\.name))
    report(conflicts: DesiredState.checkPathConflicts(in: desired, instances: instances), scope: scope)
    let leaving = memory.withLock { memory in
      memory.lastDesired = desired
      memory.fileStale = true
      return memory.removals.leavingBackends
    }
    var followUp = false
    if !scope.isEmpty || !leaving.isEmpty {
      let structure = ConfigRenderer.structure(desired, settings: configuration.node)
      followUp = try await apply(desired: desired, structure: structure, scope: scope.union(leaving))
    }
    status.update { $0.appliedRevision = revision }
    metrics.appliedRevision.set(to: Double(revision))
    return followUp
  }

  /// A pass that only follows up on draining servers: etcd has said nothing new since the last pass, so
  /// it works from that pass's desired state and asks HAProxy alone about the backends with servers
  /// leaving. Falls back to a full pass when there is no last pass to work from.
  private func followUpPass() async throws -> Bool {
    let (last, leaving) = memory.withLock { ($0.lastDesired, $0.removals.leavingBackends) }
    guard let desired = last, dataPlane.isRunning else { return try await pass() }
    guard !leaving.isEmpty else { return false }
    metrics.followUpPasses.increment()
    let structure = ConfigRenderer.structure(desired, settings: configuration.node)
    return try await apply(desired: desired, structure: structure, scope: leaving)
  }

  /// Writes the config file for `lastDesired`, which passes for a few services leave behind. The
  /// servers are in HAProxy already, so an unchanged structure needs no `haproxy -c`.
  private func flushConfigFile() async throws {
    guard let desired = memory.withLock({ $0.fileStale ? $0.lastDesired : nil }) else { return }
    let rendered = render(desired)
    try await performInstall(rendered, revision: desired.revision, serversApplied: true)
    memory.withLock { memory in
      if memory.lastDesired?.revision == desired.revision { memory.fileStale = false }
    }
  }

  /// The node's configuration for `desired`.
  private func render(_ desired: DesiredState) -> RenderedConfig {
    ConfigRenderer.render(desired, settings: configuration.node)
  }

  /// Starts a flush of the config file beside the reconcile loop, unless one runs; the timer asks again
  /// while the file is behind.
  private func startFlush() {
    memory.withLock { memory in
      guard memory.flush == nil else { return }
      memory.flush = Task {
        do {
          try await self.flushConfigFile()
        } catch {
          self.logger.warning(
            "Could not bring the config file up to date; trying again in a second", metadata: ["error": "\(error)"])
        }
        self.memory.withLock { $0.flush = nil }
      }
    }
  }

  /// Waits for the flush that runs, if any.
  private func finishFlush() async {
    await memory.withLock { $0.flush }?.value
  }

  /// Validates and installs `rendered` as the config file, unless it is installed already, once a flush
  /// that runs has finished. An invalid render is never installed: the last good file stays, and the
  /// failure is counted and thrown.
  private func install(_ rendered: RenderedConfig, revision: Int64, serversApplied: Bool = false) async throws {
    await finishFlush()
    try await performInstall(rendered, revision: revision, serversApplied: serversApplied)
  }

  private func performInstall(_ rendered: RenderedConfig, revision: Int64, serversApplied: Bool) async throws {
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

  /// Brings HAProxy to `desired` (for the backends in `scope`, or all): Runtime API commands, or a
  /// reload when they cannot. Returns whether removed servers still drain.
  private func apply(desired: DesiredState, structure: String, scope: Set<String>?) async throws -> Bool {
    for _ in 0..<4 {
      // One Runtime API connection per round; a reload ends the round, since the connection belongs
      // to the worker that the reload retires.
      let finished = try await dataPlane.withRuntimeSession {
        try await applyRound(desired: desired, structure: structure, scope: scope)
      }
      if let followUp = finished { return followUp }
    }
    throw ControllerError("HAProxy did not reach the desired state after four rounds of changes")
  }

  /// One round of ``apply(desired:structure:scope:)``: observe, plan, and change. Returns whether a
  /// follow-up pass is needed once HAProxy has what `desired` says, or `nil` when another round must
  /// look again.
  private func applyRound(desired: DesiredState, structure: String, scope: Set<String>?) async throws -> Bool? {
    let backends = desired.backends.map(\.name).filter { scope?.contains($0) ?? true }
    var observed = try await dataPlane.observe(backends: backends, each: scope != nil)
    let now = ContinuousClock.now
    let (runningStructure, drainingFor, leaving) = memory.withLock { memory in
      memory.removals.update(desired: desired, observed: observed, now: now, scope: scope)
      return (memory.runningStructure, memory.removals.elapsed(now: now), memory.removals.leavingBackends)
    }
    // Connections matter only to servers that leave: ask for them where there are any.
    try await dataPlane.addConnections(to: &observed, backends: backends.filter(leaving.contains))
    let plan = Planner.plan(
      desired: desired,
      structure: structure,
      runningStructure: runningStructure,
      observed: observed,
      drainingFor: drainingFor,
      settings: configuration.node,
      policy: configuration.removal,
      scope: scope
    )
    if configuration.updateStrategy == .reload && !plan.isEmpty {
      let rendered = render(desired)
      if rendered.text != memory.withLock({ $0.loadedText }) {
        // The original demo's way, kept for comparisons: every change rewrites the file and reloads.
        try await installAndReload(rendered, desired: desired, cause: .strategy, reason: Self.strategyReloadReason)
        return nil
      }
    }
    if plan.needsReload {
      // Backends the reload does not change take their changes now: a reload can be slow, and a
      // configuration HAProxy rejects must not hold them back. A refused command is put right by
      // the reload that follows.
      if !plan.commands.isEmpty {
        _ = try await execute(plan.commands, newServerIDs: plan.newServerIDs, drainingFor: drainingFor)
      }
      let reason = plan.reloadReasons.joined(separator: "; ")
      let rendered = render(desired)
      try await installAndReload(rendered, desired: desired, cause: .structure, reason: reason) {
        logger.notice("Reloading HAProxy", metadata: ["reason": "\(reason)", "revision": "\(desired.revision)"])
      }
      return nil
    }
    if plan.commands.isEmpty {
      publish(desired: desired, observed: observed, scope: scope)
      return !plan.draining.isEmpty
    }
    switch try await execute(plan.commands, newServerIDs: plan.newServerIDs, drainingFor: drainingFor) {
    case .done: return nil
    case .deletesDeferred:
      // Everything else is applied; the next pass deletes what still holds connections.
      publish(
        desired: desired,
        observed: try await dataPlane.observe(backends: backends, each: scope != nil),
        scope: scope)
      return true
    case .failed:
      try await installAndReload(
        render(desired), desired: desired, cause: .fallback,
        reason: "a Runtime API command was refused")
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

  /// Sends commands in order, in batches of one write each (HAProxy answers them in order).
  private func execute(
    _ commands: [RuntimeCommand], newServerIDs: [ServerRef: Int], drainingFor: [ServerRef: Duration]
  ) async throws -> Outcome {
    metrics.runtimeCommands.increment(by: Int64(commands.count))
    let results: [HAProxyError?]
    do {
      results = try await dataPlane.execute(commands, newServerIDs: newServerIDs)
    } catch {
      metrics.runtimeCommandFailures.increment()
      throw error
    }
    var deferred = false
    var failed = false
    for (command, error) in zip(commands, results) {
      guard let error else {
        var metadata: Logger.Metadata = ["command": "\(command)"]
        if case .addServer = command, let id = newServerIDs[command.server] { metadata["server_id"] = "\(id)" }
        logger.info("Runtime API", metadata: metadata)
        continue
      }
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
      failed = true
    }
    return failed ? .failed : deferred ? .deletesDeferred : .done
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
      // The new worker read the file: runtime states of backends a scoped pass did not look at (drains
      // in progress) are checked by a full pass.
      $0.needsResync = true
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

  /// Publishes what HAProxy runs in `/state` and the server metrics, for the backends in `scope` (or all).
  private func publish(desired: DesiredState, observed: ObservedState, scope: Set<String>? = nil) {
    var counts: [String: [String: Int]] = [:]
    let published = desired.backends.filter { scope?.contains($0.name) ?? true }
    let services = published.map { backend in
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
    status.update { state in
      guard scope != nil else {
        state.services = services
        return
      }
      var byBackend = Dictionary(state.services.map { ($0.backend, $0) }, uniquingKeysWith: { first, _ in first })
      for service in services { byBackend[service.backend] = service }
      state.services = desired.backends.compactMap { byBackend[$0.name] }
    }
    metrics.setServers(counts, services: published.map(\.service.rawValue))
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

  /// Logs check-path conflicts not logged before; with a `scope`, `conflicts` covers those backends only.
  private func report(conflicts: [(backend: String, server: String, path: String)], scope: Set<String>?) {
    let lines = conflicts.map { "\($0.backend)/\($0.server) registered check path \($0.path)" }
    let fresh = memory.withLock { memory in
      let fresh = lines.filter { !memory.loggedConflicts.contains($0) }
      let kept = memory.loggedConflicts.filter { line in
        guard let scope else { return false }
        return !scope.contains(String(line.prefix { $0 != "/" }))
      }
      memory.loggedConflicts = kept.union(lines)
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
        // The created response is the watch's first word: without it, readiness waited for the first
        // progress notification, up to a progress interval after the watch was in place.
        let watch = client.watch(
          .prefix(ControllerConfiguration.prefix), options: WatchOptions(startRevision: next, notifyCreated: true))
        for try await response in watch {
          failures = 0
          status.update {
            $0.lastWatchWord = .now
            $0.etcdConnected = true
          }
          if let last = response.events.last {
            next = max(next, last.kv.modRevision + 1)
            let changes = response.events.map { event in
              RegistrationMirror.Change(
                key: event.kv.key, value: event.kind == .put ? event.kv.value : nil, modRevision: event.kv.modRevision)
            }
            memory.withLock { memory in
              memory.changeLog.record(changes)
              if let touched = memory.mirror?.apply(changes) { memory.dirtyServices.formUnion(touched) }
              memory.eventsSinceLastPass = true
            }
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
        memory.withLock { $0.needsResync = true }
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
        try await dataPlane.observe(backends: backends)
      }) {
        publish(desired: desired, observed: observed)
        // A server whose health check does not run is repaired by a pass (it plans `enable health`), and
        // so is a server HAProxy lost or gained behind the controller's back (a reload by hand from a
        // file older than the runtime changes, a `del server` or `add server` typed by an operator).
        // Compared backend by backend, by name: no string per server of the fleet on every refresh.
        var missing: [String] = []
        var unwanted = false
        var unchecked = false
        for backend in desired.backends {
          let servers = observed.backends[backend.name] ?? []
          let wanted = Set(backend.servers.map(\.name))
          let running = Set(servers.map(\.name))
          missing += wanted.subtracting(running).map { "\(backend.name)/\($0)" }
          // Servers on their way out (draining, in maintenance) are the removal's business, not drift.
          unwanted = unwanted || servers.contains { $0.adminState == .ready && !wanted.contains($0.name) }
          unchecked = unchecked || servers.contains { !$0.isCheckEnabled && wanted.contains($0.name) }
        }
        let differs = !missing.isEmpty || unwanted
        defer { differedBefore = differs }
        if unchecked || (differs && differedBefore) {
          if !missing.isEmpty {
            logger.warning(
              "HAProxy lacks servers the controller applied; repairing",
              metadata: ["servers": "\(missing.sorted().joined(separator: ","))"]
            )
          }
          memory.withLock { $0.needsResync = true }
          trigger.notify()
        }
      }
    }
  }

  /// Once a second: brings the config file up to the desired state when passes for a few services left
  /// it behind (writing it costs in proportion to the fleet, so changes do not wait for it), and starts
  /// the full pass that is due every ``ControllerConfiguration/resyncInterval``, also when nothing changes.
  private func timerLoop() async {
    while !Task.isCancelled {
      try? await Task.sleep(for: .seconds(1))
      let due = memory.withLock { memory in
        if memory.fileStale { memory.flushFile = true }
        let resyncDue = memory.lastResync.map { $0.duration(to: .now) >= configuration.resyncInterval } ?? false
        if resyncDue { memory.needsResync = true }
        return memory.fileStale || resyncDue
      }
      if due { trigger.notify() }
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
      memory.withLock { $0.needsResync = true }
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
