import HAProxyKit
import Logging
import SwitchyardReconcile
import Synchronization

/// Brings HAProxy to a desired state: observes, plans, and changes servers through the Runtime API in
/// rounds; reloads for structural changes, for the `reload` update strategy, and as the fallback when
/// HAProxy refuses a command. Tracks the servers that are leaving.
final class Applier: Sendable {
  let runtime: RuntimeClient
  private let writer: ConfigWriter
  private let supervisor: HAProxySupervisor
  let publisher: StatusPublisher
  private let queue: PassQueue
  private let settings: NodeSettings
  private let removalPolicy: Planner.RemovalPolicy
  private let updateStrategy: UpdateStrategy
  private let status: ControllerStatus
  private let metrics: ControllerMetrics
  let logger: Logger
  let removals = Mutex(RemovalTracker())
  /// What the controller believes HAProxy runs, backend by backend: what passes for a few instances of a
  /// large backend plan against instead of observing all of it (``targeted(_:in:)``).
  let belief = Mutex(RuntimeBelief())
  private let reloadGate: Mutex<ReloadGate<ContinuousClock.Instant>>
  /// The structure whose reload HAProxy last refused, and when: it is not tried again for a while, since
  /// each try pauses the old worker's listeners while the new one fails to start.
  private let refusedReload = Mutex<(structure: String, at: ContinuousClock.Instant)?>(nil)
  /// How long a structure whose reload failed waits before it is tried again.
  static let refusedReloadBackoff = Duration.seconds(30)

  init(
    configuration: ControllerConfiguration, runtime: RuntimeClient, writer: ConfigWriter,
    supervisor: HAProxySupervisor, publisher: StatusPublisher, queue: PassQueue, status: ControllerStatus,
    metrics: ControllerMetrics, logger: Logger
  ) {
    self.runtime = runtime
    self.writer = writer
    self.supervisor = supervisor
    self.publisher = publisher
    self.queue = queue
    settings = configuration.node
    removalPolicy = configuration.removal
    updateStrategy = configuration.updateStrategy
    self.status = status
    self.metrics = metrics
    self.logger = logger
    reloadGate = Mutex(
      ReloadGate(
        delay: configuration.timings.reloadDelay, minimumInterval: configuration.timings.minimumReloadInterval))
  }

  /// Whether a structural change waits for its reload (``ReloadGate``): the pass it is due at must
  /// look, even with nothing else to do.
  var reloadPending: Bool {
    reloadGate.withLock { $0.isPending } || refusedReload.withLock { $0 != nil }
  }

  /// The backends with servers leaving (draining, or deletes deferred).
  var leavingBackends: Set<String> { removals.withLock { $0.leavingBackends } }

  /// Brings HAProxy to `desired` (for the backends in `scope`, or all): Runtime API commands, or a
  /// reload when they cannot. Returns whether removed servers still drain.
  ///
  /// `targets` names, for backends in `scope` whose other servers did not change since the last pass, the
  /// servers that did: where the controller's belief about such a backend is current, only those servers
  /// are planned, against the belief, and the backend is not observed. A failure forgets every belief.
  func apply(
    desired: DesiredState, structure: String, scope: Set<String>?, targets: [String: Set<String>] = [:]
  ) async throws -> Bool {
    do {
      return try await applyRounds(desired: desired, structure: structure, scope: scope, targets: targets)
    } catch {
      // Commands may or may not have been applied: observe before believing anything again.
      belief.withLock { $0.forgetAll() }
      throw error
    }
  }

  private func applyRounds(
    desired: DesiredState, structure: String, scope: Set<String>?, targets: [String: Set<String>]
  ) async throws -> Bool {
    var desired = desired
    var structure = structure
    for round in 0..<4 {
      if round > 0, desired.backends.contains(where: \.isLingering) {
        // A reload let the lingering backends go: the rounds after it compare without them.
        let trimmed = desired.withoutLingering()
        if supervisor.runningStructure == ConfigRenderer.structure(trimmed, settings: settings) {
          desired = trimmed
          structure = ConfigRenderer.structure(trimmed, settings: settings)
        }
      }
      // One Runtime API connection per round; a reload ends the round, since the connection belongs
      // to the worker that the reload retires.
      let finished = try await runtime.withRuntimeSession {
        try await applyRound(desired: desired, structure: structure, scope: scope, targets: targets)
      }
      if let followUp = finished { return followUp }
    }
    throw ControllerError("HAProxy did not reach the desired state after four rounds of changes")
  }

  /// One round of ``apply(desired:structure:scope:targets:)``: observe, plan, and change. Returns whether a
  /// follow-up pass is needed once HAProxy has what `desired` says, or `nil` when another round must
  /// look again.
  private func applyRound(
    desired: DesiredState, structure: String, scope: Set<String>?, targets: [String: Set<String>]
  ) async throws -> Bool? {
    // A backend that only a reload creates cannot be asked about yet.
    let running = supervisor.runningStructure ?? ""
    let inScope = desired.backends.map(\.name).filter { name in
      scope.map { $0.contains(name) && running.contains("\nbackend \(name)\n") } ?? true
    }
    // Backends whose changed servers alone are planned, against the belief; the others are observed whole.
    let targeted = targeted(targets, in: inScope)
    let backends = targeted.isEmpty ? inScope : inScope.filter { targeted[$0] == nil }
    var observed = try await observe(backends, each: scope != nil, targeted: targeted, full: scope == nil)
    let planned = desired.only(targeted)
    let now = ContinuousClock.now
    let (drainingFor, leaving) = removals.withLock { removals in
      removals.update(desired: planned, observed: observed, now: now, scope: scope)
      return (removals.elapsed(now: now), removals.leavingBackends)
    }
    // Connections matter only to servers that leave: ask for them where there are any, and only where
    // `del server` does not close idle connections itself (before HAProxy 3.0).
    let features = supervisor.features
    if !features.deleteClosesIdleConnections {
      try await runtime.addConnections(to: &observed, backends: backends.filter(leaving.contains))
      try await addConnections(to: &observed, leaving: planned, targeted: targeted)
    }
    var plan = Planner.plan(
      desired: planned,
      structure: structure,
      runningStructure: supervisor.runningStructure,
      observed: observed,
      drainingFor: drainingFor,
      settings: settings,
      policy: removalPolicy,
      scope: scope,
      features: features
    )
    if !targeted.isEmpty { plan.newServerIDs = newServerIDs(plan, targeted: targeted) }
    if updateStrategy == .reload && !plan.isEmpty {
      let rendered = writer.render(desired.withoutLingering())
      if await rendered.text != writer.loadedText {
        // The original demo's way, kept for comparisons: every change rewrites the file and reloads.
        try await installAndReload(desired, rendered: rendered, cause: .strategy, reason: Self.strategyReloadReason)
        return nil
      }
    }
    let refusedWait = refusedReload.withLock { refused -> Duration? in
      guard let refused else { return nil }
      // A reload installs the state without its lingering backends: compare with what it would install.
      let reloaded =
        desired.backends.contains(where: \.isLingering)
        ? ConfigRenderer.structure(desired.withoutLingering(), settings: settings) : structure
      guard refused.structure == reloaded else { return nil }
      let left = Self.refusedReloadBackoff - refused.at.duration(to: .now)
      return left > .zero ? left : nil
    }
    if plan.needsReload, let wait = refusedWait ?? reloadGate.withLock({ $0.wait(now: .now) }) {
      // Changes that need a reload wait a little for others to share it; the rest goes on meanwhile.
      // Routes wait too: they may name a backend that only the reload creates.
      if !plan.commands.isEmpty {
        try await execute(plan.commands, newServerIDs: plan.newServerIDs, drainingFor: drainingFor)
      }
      queue.requeue(after: wait)
      logger.debug("A structural change waits for its reload", metadata: ["wait": "\(wait)"])
      return !plan.draining.isEmpty
    }
    if !plan.needsReload {
      reloadGate.withLock { $0.settled() }
      refusedReload.withLock { $0 = nil }
    }
    if plan.needsReload {
      // Backends the reload does not change take their changes now: a reload can be slow, and a
      // configuration HAProxy rejects must not hold them back. A refused command is put right by
      // the reload that follows.
      if !plan.commands.isEmpty {
        try await execute(plan.commands, newServerIDs: plan.newServerIDs, drainingFor: drainingFor)
      }
      let reason = plan.reloadReasons.joined(separator: "; ")
      try await installAndReload(desired, cause: .structure, reason: reason) {
        logger.notice("Reloading HAProxy", metadata: ["reason": "\(reason)", "revision": "\(desired.revision)"])
      }
      return nil
    }
    if plan.commands.isEmpty {
      if try await !applyRoutes(desired) { return nil }
      publish(desired: desired, observed: observed, scope: scope, targeted: targeted)
      return !plan.draining.isEmpty
    }
    let (outcome, refused) = try await execute(
      plan.commands, newServerIDs: plan.newServerIDs, drainingFor: drainingFor)
    switch outcome {
    case .done: return nil
    case .deletesDeferred:
      // Everything else is applied; the next pass deletes what still holds connections.
      let again = backends.isEmpty ? observed : try await runtime.observe(backends: backends, each: scope != nil)
      publish(desired: desired, observed: again, scope: scope, targeted: targeted)
      return true
    case .failed where refused.isSubset(of: targeted.keys):
      // Planned from a belief that HAProxy contradicts: the next round observes those backends (the belief
      // about them is forgotten) and plans again; a command refused then falls back to a reload.
      logger.warning(
        "HAProxy refused a command planned from what the controller believed it runs; looking again",
        metadata: ["backends": "\(refused.sorted().joined(separator: ","))"])
      return nil
    case .failed:
      try await installAndReload(desired, cause: .fallback, reason: "a Runtime API command was refused")
    }
    return nil
  }

  /// Brings HAProxy's routes map to `desired`'s, when it differs from what HAProxy holds: one atomic
  /// replacement through the Runtime API. Returns `false` when HAProxy refused it and a reload (which
  /// reads the map file) was made instead. A pass that changed only routes calls it alone: no server to
  /// observe, no structure to compare.
  @discardableResult
  func applyRoutes(_ desired: DesiredState) async throws -> Bool {
    let text = desired.routes.mapText
    guard writer.routesInHAProxy != text else { return true }
    let clock = ContinuousClock()
    let started = clock.now
    do {
      try await runtime.replaceRoutes(desired.routes, mapPath: settings.routesMapPath)
    } catch {
      metrics.runtimeCommandFailures.increment()
      logger.warning(
        "HAProxy refused the new routes map; falling back to a reload", metadata: ["error": "\(error)"])
      try await installAndReload(desired, cause: .fallback, reason: "the routes map was refused")
      return false
    }
    writer.routesApplied(text)
    metrics.routeUpdates.increment()
    logger.info(
      "Routes applied through the Runtime API",
      metadata: [
        "entries": "\(desired.routes.entries.count)", "revision": "\(desired.revision)",
        "took_s": "\(ControllerStatus.seconds(started.duration(to: clock.now)))",
      ])
    return true
  }

  /// Sends commands in order, in batches of one write each (HAProxy answers them in order), and logs
  /// and counts each reply. The belief follows the replies: a confirmed command changes it, a refused one
  /// makes it forget its backend. Returns the outcome and the backends with a refused command.
  @discardableResult
  private func execute(
    _ commands: [RuntimeCommand], newServerIDs: [ServerRef: Int], drainingFor: [ServerRef: Duration]
  ) async throws -> (CommandOutcome, refused: Set<String>) {
    metrics.runtimeCommands.increment(by: Int64(commands.count))
    let results: [HAProxyError?]
    do {
      results = try await runtime.execute(commands, newServerIDs: newServerIDs)
    } catch {
      metrics.runtimeCommandFailures.increment()
      throw error
    }
    var outcome = CommandOutcome.done
    var refused: Set<String> = []
    belief.withLock { belief in
      for (command, error) in zip(commands, results) {
        switch CommandOutcome.Reply(command, error) {
        case .confirmed: belief.confirmed(command, id: newServerIDs[command.server])
        case .deleteDeferred: break
        case .refused: belief.forget(command.server.backend)
        }
      }
    }
    for (command, error) in zip(commands, results) {
      let reply = CommandOutcome.Reply(command, error)
      outcome.add(reply)
      switch reply {
      case .confirmed:
        var metadata: Logger.Metadata = ["command": "\(command)"]
        if case .addServer = command, let id = newServerIDs[command.server] { metadata["server_id"] = "\(id)" }
        logger.info("Runtime API", metadata: metadata)
      case .deleteDeferred:
        metrics.deletesDeferred.increment()
        // Connections not yet released: the next pass tries again (with its sessions shut down once
        // the drain timeout passed). A reload would cost every keep-alive client; a retry costs nothing.
        let late = drainingFor[command.server, default: .zero] >= removalPolicy.drainTimeout
        logger.log(
          level: late ? .warning : .debug,
          "Server not deletable yet; trying again on the next pass",
          metadata: ["server": "\(command.server)", "reply": "\(error?.reply ?? "")"]
        )
      case .refused:
        refused.insert(command.server.backend)
        metrics.runtimeCommandFailures.increment()
        logger.warning(
          "HAProxy refused a Runtime API command; falling back to a reload",
          metadata: ["command": "\(command)", "error": "\(error.map { "\($0)" } ?? "")"]
        )
      }
    }
    return (outcome, refused)
  }

  /// Installs the configuration of `desired` (HAProxy reads the file on reload), then reloads;
  /// `beforeReload` runs once the file is in place. A reload is the moment lingering backends go: the file
  /// is rendered without them (`rendered`, when the caller has it already). The next pass reads
  /// everything: the new worker read the file, and the runtime states of backends a scoped pass did not
  /// look at (drains in progress) are checked by a full pass.
  private func installAndReload(
    _ desired: DesiredState,
    rendered: RenderedConfig? = nil,
    cause: ReloadCause,
    reason: String,
    beforeReload: () -> Void = {}
  ) async throws {
    let rendered = rendered ?? writer.render(desired.withoutLingering())
    try await writer.install(rendered, revision: desired.revision)
    beforeReload()
    // The new worker reads the file: what was believed of the old one's runtime state does not hold.
    belief.withLock { $0.forgetAll() }
    let clock = ContinuousClock()
    let started = clock.now
    do {
      try await supervisor.reload(structure: rendered.structure)
    } catch {
      refusedReload.withLock { $0 = (rendered.structure, .now) }
      logger.error(
        "HAProxy refused the reload; this configuration is tried again in \(Self.refusedReloadBackoff) at the earliest",
        metadata: ["error": "\(error)"])
      throw error
    }
    refusedReload.withLock { $0 = nil }
    belief.withLock { $0.installed(desired) }
    reloadGate.withLock { $0.reloaded(now: .now) }
    let took = started.duration(to: clock.now)
    if let metadata = Self.slowReloadReport(took: took, reason: reason, desired: desired) {
      logger.warning("HAProxy took long to reload", metadata: metadata)
    }
    await writer.markLoaded()
    // At once: the pass that reloaded looked only at its own backends, and /state must show the new ones.
    queue.requestFullPass()
    switch cause {
    case .structure: metrics.reloadsStructural.increment()
    case .fallback: metrics.reloadsFallback.increment()
    case .strategy: metrics.reloadsStrategy.increment()
    }
    status.update {
      $0.reloads += 1
      $0.lastReloadReason = String(reason.prefix(500))
      $0.lastReloadAt = RecentChanges.now
    }
  }
}
