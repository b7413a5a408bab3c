import Logging
import SwitchyardModel
import SwitchyardProcess
import SwitchyardReconcile
import Synchronization

/// The passes of the reconcile loop: each builds the desired state from the registrations, has HAProxy
/// brought to it, and says whether a follow-up pass must come (servers still leaving).
///
/// A full pass reads everything at one revision, renders, installs, starts HAProxy if it does not run,
/// and compares every backend. An incremental pass works only on the services that changed, at the
/// mirror's revision, so that a change costs the same on any fleet: where only some instances of a
/// service changed, their servers are patched into its backend and planned alone against what the
/// controller believes HAProxy runs, so that it costs the same beside any number of servers too; other
/// changed services are rebuilt, observed and planned whole. The config file follows in a flush. A
/// follow-up pass asks HAProxy alone about the backends with servers leaving.
final class Reconciler: Sendable {
  private let settings: NodeSettings
  private let source: RegistrationSource
  private let queue: PassQueue
  private let writer: ConfigWriter
  private let supervisor: HAProxySupervisor
  private let applier: Applier
  private let publisher: StatusPublisher
  private let metrics: ControllerMetrics
  /// The desired state of the last pass.
  private let last = Mutex<DesiredState?>(nil)
  /// The routes in force as of the last view that carried them.
  private let routes = Mutex<[Route]>([])
  /// The structure of the last pass's desired state, to reuse while backends keep theirs.
  private let lastStructure = Mutex<String?>(nil)

  init(
    configuration: ControllerConfiguration, source: RegistrationSource, queue: PassQueue, writer: ConfigWriter,
    supervisor: HAProxySupervisor, applier: Applier, publisher: StatusPublisher, metrics: ControllerMetrics
  ) {
    settings = configuration.node
    self.source = source
    self.queue = queue
    self.writer = writer
    self.supervisor = supervisor
    self.applier = applier
    self.publisher = publisher
    self.metrics = metrics
  }

  /// The desired state of the last pass, once there was one.
  var lastDesired: DesiredState? { last.withLock { $0 } }

  /// Moves whenever the controller's belief about what HAProxy runs changes (``RuntimeBelief/generation``).
  var beliefGeneration: Int { applier.belief.withLock { $0.generation } }

  /// The servers where `observed` (every backend) differs from what the controller believes HAProxy runs.
  func beliefDifferences(from observed: ObservedState) -> [String] {
    applier.belief.withLock { $0.differences(from: observed) }
  }

  /// Whether an incremental or follow-up pass has what it builds on: a mirror of etcd, a last desired
  /// state, and a running HAProxy.
  var baselineReady: Bool { source.hasMirror && lastDesired != nil && supervisor.isRunning }

  /// Runs the pass `decision` chose. Returns whether another pass must follow (servers drain).
  func run(_ decision: PassQueue.Decision) async throws -> Bool {
    switch decision.kind {
    case .full: return try await fullPass()
    case .incremental: return try await incrementalPass(services: decision.services)
    case .followUp: return try await followUpPass()
    case .flush:
      writer.startFlush()
      // A structural change that waits for its reload is due now.
      return applier.reloadPending ? try await followUpPass() : false
    }
  }

  /// With etcd unreachable and no HAProxy running, serves the last good config rather than nothing.
  func startFromLastGoodIfStopped() async {
    guard !supervisor.isRunning else { return }
    if await supervisor.startFromLastGoodIfStopped(structure: writer.lastGoodStructure()) {
      await writer.markLoaded()
    }
  }

  /// A full pass in place of one that lacks what it builds on (no mirror, no last pass, no HAProxy).
  private func fallBackToFullPass() async throws -> Bool {
    queue.fullPassStarts()
    return try await fullPass()
  }

  /// A full pass: read everything at one revision, render, install, plan and apply every backend.
  private func fullPass() async throws -> Bool {
    let (view, readRevision) = try await source.readAll()
    publisher.report(invalid: view.invalid ?? [])
    publisher.report(overrides: view.overrides)
    let previous = lastDesired
    let (served, lingering) = DesiredState.servedServices(
      registered: view.registered, previous: previous?.backends.map(\.service) ?? [], running: runsBackend,
      node: settings)
    var desired = DesiredState(
      revision: view.revision, services: served, instances: view.instances, previous: previous,
      settings: view.settings, lingering: lingering)
    desired = desired.with(unavailablePorts: unbindablePorts(desired))
    let routeList = view.routes ?? []
    routes.withLock { $0 = routeList }
    desired = desired.with(routes: desired.routeTable(routeList))
    publisher.report(
      routes: routeList, table: desired.routes, listenerConflicts: desired.tcpListeners(node: settings).conflicts)
    publisher.report(conflicts: DesiredState.checkPathConflicts(in: desired, instances: view.instances), scope: nil)
    let rendered = writer.render(desired)
    // A change the Runtime API can make is applied first and written to the file right after, so that
    // HAProxy gets it without waiting for `haproxy -c`, also in a pass that reloads for another
    // backend; anything that makes HAProxy read the file (a start, a reload) installs it first.
    if !supervisor.isRunning { try await writer.install(rendered, revision: desired.revision) }
    last.withLock { $0 = desired }
    if !supervisor.isRunning {
      if try await supervisor.start(structure: rendered.structure) {
        await writer.markLoaded()
      } else {
        writer.routesUnknown()
      }
    }
    lastStructure.withLock { $0 = rendered.structure }
    let followUp = try await applier.apply(desired: desired, structure: rendered.structure, scope: nil)
    try await writer.install(rendered, revision: desired.revision, serversApplied: true)
    writer.caughtUp()
    source.startWatching(after: readRevision)
    publisher.applied(revision: desired.revision, newestChange: view.newestChange, initialPass: true)
    return followUp
  }

  /// A pass for the services whose instances changed since the last pass; the others are left alone. A
  /// service where only some instances changed has their servers patched into its backend and planned
  /// alone, against what the controller believes HAProxy runs (``Applier``), when the backend keeps
  /// everything else (check path, algorithm, settings, structure): one change costs the same beside 10 or
  /// 10,000 servers. Any other changed service has its backend built again from the mirror, observed and
  /// planned whole. The config file follows in a flush.
  private func incrementalPass(services dirty: Set<ServiceName>) async throws -> Bool {
    let changed = dirty.filter(settings.serves)
    guard let previous = lastDesired,
      let view = source.view(
        of: changed, forgetting: dirty.subtracting(changed),
        patch: { service, update in previous.backend(for: service)?.patching(update) })
    else { return try await fallBackToFullPass() }
    metrics.incrementalPasses.increment()
    if let invalid = view.invalid { publisher.report(invalid: invalid) }
    publisher.report(overrides: view.overrides)
    let before = previous.backends.map(\.service)
    let (served, lingering) = DesiredState.servedServices(
      registered: view.registered, previous: before, running: runsBackend, node: settings)
    // A patched service has instances, so it is served and does not linger.
    let patched = view.patched.filter { !lingering.contains($0.key) }
    let rebuilt = changed.subtracting(patched.keys)
    var desired = previous.updating(
      services: rebuilt, instances: view.instances, revision: view.revision, serving: served == before ? nil : served,
      settings: view.settings, lingering: lingering
    ).replacing(patched.values.map(\.backend), revision: view.revision)
    if served != before || changed.contains(where: { desired.backend(for: $0)?.mode == .tcp }) {
      desired = desired.with(unavailablePorts: unbindablePorts(desired))
    }
    if let routeList = view.routes { routes.withLock { $0 = routeList } }
    // The table follows the routes and which backends exist in which mode. Only the changed services'
    // backends can differ from the last pass's: the others were carried over.
    let targetsChanged =
      served != before || desired.unavailablePorts != previous.unavailablePorts
      || changed.contains { Self.routeTarget(desired.backend(for: $0)) != Self.routeTarget(previous.backend(for: $0)) }
    if view.routes != nil || targetsChanged {
      let routeList = routes.withLock { $0 }
      desired = desired.with(routes: desired.routeTable(routeList))
      publisher.report(
        routes: routeList, table: desired.routes, listenerConflicts: desired.tcpListeners(node: settings).conflicts)
    }
    let scope = Set(changed.compactMap { desired.backend(for: $0)?.name })
    publisher.report(
      conflicts: DesiredState.checkPathConflicts(in: desired, instances: view.instances),
      scope: Set(rebuilt.compactMap { desired.backend(for: $0)?.name }))
    for patch in patched.values {
      publisher.report(
        conflicts: DesiredState.checkPathConflicts(in: desired, instances: patch.instances),
        servers: Set(patch.servers.map { "\(patch.backend.name)/\($0)" }))
    }
    last.withLock { $0 = desired }
    let leaving = applier.leavingBackends
    let routesOnly = scope.isEmpty && leaving.isEmpty && served == before && !applier.reloadPending
    writer.fileIsBehind(desired, routesOnly: routesOnly)
    var followUp = false
    if routesOnly {
      // Only routes changed (or nothing HAProxy runs): no backend to observe, no structure to compare.
      if desired.routes != previous.routes { try await applier.applyRoutes(desired) }
    } else {
      // A patched backend keeps its structure by construction.
      let structure = structure(of: desired, previous: previous, changed: rebuilt, sameServices: served == before)
      followUp = try await applier.apply(
        desired: desired, structure: structure, scope: scope.union(leaving),
        targets: Dictionary(patched.values.map { ($0.backend.name, $0.servers) }, uniquingKeysWith: { $0.union($1) }))
    }
    // A change that waits for its reload is not applied yet: the full pass after the reload says so.
    if !applier.reloadPending { publisher.applied(revision: view.revision, newestChange: view.newestChange) }
    return followUp
  }

  /// The structure of `desired`: the last pass's when the services are the same and every changed one kept
  /// its structure (a server change on a fleet of many services renders nothing), else rendered again.
  private func structure(
    of desired: DesiredState, previous: DesiredState, changed: Set<ServiceName>, sameServices: Bool
  ) -> String {
    let kept =
      sameServices
      && changed.allSatisfy { service in
        guard let new = desired.backend(for: service), let old = previous.backend(for: service) else {
          return desired.backend(for: service) == nil && previous.backend(for: service) == nil
        }
        return new.hasSameStructure(as: old)
      }
    if kept, let cached = lastStructure.withLock({ $0 }) { return cached }
    let structure = ConfigRenderer.structure(desired, settings: settings)
    lastStructure.withLock { $0 = structure }
    return structure
  }

  /// The ports `tcp` services ask for that HAProxy does not listen on yet and that cannot be bound now
  /// (another process has them): a reload whose new worker cannot bind fails, and HAProxy pauses the old
  /// worker's listeners while it tries. Ports HAProxy listens on already are its own.
  private func unbindablePorts(_ desired: DesiredState) -> [Int: String] {
    let running = supervisor.runningStructure ?? ""
    var problems: [Int: String] = [:]
    for backend in desired.backends where backend.mode == .tcp {
      guard let port = backend.settings?.port else { continue }
      let bind = settings.listen.address.hostPort(port)
      if running.contains("  bind \(bind)\n") { continue }
      if let problem = PortProbe.bindProblem(host: settings.listen.address.text, port: port) {
        problems[port] = problem
      }
    }
    return problems
  }

  /// Whether HAProxy runs a backend for `service`: a service that lost its last instance keeps it until
  /// a reload happens anyway.
  private func runsBackend(_ service: ServiceName) -> Bool {
    supervisor.runningStructure?.contains("\nbackend \(service.haproxyBackendName)\n") ?? false
  }

  /// What the route table and the route problems depend on in a backend besides the routes: its mode and
  /// its tcp port.
  private static func routeTarget(_ backend: DesiredBackend?) -> [String?] {
    [backend?.mode.rawValue, backend?.settings?.port.map(String.init)]
  }

  /// A pass that only follows up on draining servers: etcd has said nothing new since the last pass, so
  /// it works from that pass's desired state and asks HAProxy alone about the backends with servers
  /// leaving. Falls back to a full pass when there is no last pass to work from.
  private func followUpPass() async throws -> Bool {
    guard let desired = lastDesired, supervisor.isRunning else { return try await fallBackToFullPass() }
    let leaving = applier.leavingBackends
    guard !leaving.isEmpty || applier.reloadPending else { return false }
    metrics.followUpPasses.increment()
    let structure = lastStructure.withLock { $0 } ?? ConfigRenderer.structure(desired, settings: settings)
    return try await applier.apply(desired: desired, structure: structure, scope: leaving)
  }
}
