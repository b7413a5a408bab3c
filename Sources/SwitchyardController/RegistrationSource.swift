import EtcdClient
import Logging
import SwitchyardModel
import SwitchyardReconcile
import Synchronization

/// The registrations as etcd has them: a full read at one revision, then a watch from that revision + 1
/// that keeps a mirror of the prefix (``RegistrationMirror``) and tells the ``PassQueue`` which services
/// changed. It does not reconcile: a pass asks it for the mirror's view of those services.
///
/// Readiness: the watch's created response and every response after it count as word from etcd; progress
/// requests make a silent watch speak, so that it is told apart from a dead one.
final class RegistrationSource: Sendable {
  /// One consistent view of the registrations.
  struct View: Sendable {
    /// The instances of the services built again whole (all of them, in key order).
    var instances: [ServiceInstance]
    /// The services whose changed instances alone were patched into their backends.
    var patched: [ServiceName: Patched] = [:]
    /// The invalid entries; `nil` when they are the same as in the last view handed out (listing
    /// thousands of them for every change would cost more than the change).
    var invalid: [RegistrationError]?
    var overrides: [InstanceOverride]
    var revision: Int64
    /// The services with at least one valid instance.
    var registered: Set<ServiceName>
    /// The service settings in force.
    var settings: [ServiceName: ServiceSettings]
    /// The routes in force; `nil` when they are the same as in the last view handed out.
    var routes: [Route]?
    /// The newest change to the mirrored keys (``RegistrationMirror/newestChange``).
    var newestChange: Int64 = 0
  }

  /// A backend with the changed instances of its service patched in (``DesiredBackend/patching(_:)``).
  struct Patched: Sendable {
    /// The backend, patched.
    var backend: DesiredBackend
    /// The servers the change touched.
    var servers: Set<String>
    /// The changed instances that are registered.
    var instances: [ServiceInstance]
  }

  private struct State {
    /// The prefix as of the last full read and the watch events since.
    var mirror: RegistrationMirror?
    /// Watch events that arrive while a full read is in flight.
    var changeLog = ChangeLog()
    /// The instances that changed since a pass last took them.
    var pending = InstanceChanges()
    /// The mirror's invalid entries as of the last view handed out.
    var invalidGenerationSeen: Int?
    /// The mirror's routes as of the last view handed out.
    var routesGenerationSeen: Int?
    /// The watch starts after this revision, once the first full pass is applied.
    var watchAfter: Int64?
  }

  private let client: EtcdClient
  private let queue: PassQueue
  private let publisher: StatusPublisher
  private let status: ControllerStatus
  private let metrics: ControllerMetrics
  private let timings: LoopTimings
  private let logger: Logger
  private let state = Mutex(State())
  /// Watch restarts since start, for the summary of an outage.
  private let watchFailures = Mutex(0)
  /// Whether etcd refused the nodes' records (logged once).
  private let nodeRecordsRefusal = Mutex(false)

  /// Whether TLS registrations are served (the node has a backend CA): ``RegistrationMirror/servesTLS``.
  private let servesTLS: Bool

  init(
    client: EtcdClient, queue: PassQueue, publisher: StatusPublisher, status: ControllerStatus,
    metrics: ControllerMetrics, timings: LoopTimings, logger: Logger, servesTLS: Bool = false
  ) {
    self.servesTLS = servesTLS
    self.client = client
    self.queue = queue
    self.publisher = publisher
    self.status = status
    self.metrics = metrics
    self.timings = timings
    self.logger = logger
  }

  /// Whether there is a mirror to build incremental passes on.
  var hasMirror: Bool { state.withLock { $0.mirror != nil } }

  /// Reads the whole prefix at one revision and makes it the mirror; watch events that arrived during the
  /// read go on top. Returns the read's view and the revision etcd answered at.
  func readAll() async throws -> (view: View, readRevision: Int64) {
    state.withLock { state in
      state.changeLog.start()
      // The read covers them.
      state.pending.removeAll()
    }
    var kvs: [KeyValue] = []
    let readRevision: Int64
    do {
      let read = try await client.getPaginated(.prefix(ControllerConfiguration.prefix), pageSize: 500)
      readRevision = read.header.revision
      kvs = read.kvs
      // The other keyspaces at the same revision: one consistent view of all of them.
      for prefix in Self.prefixes.dropFirst() {
        do {
          kvs += try await client.getPaginated(
            .prefix(prefix), pageSize: 500, options: GetOptions(revision: readRevision)
          ).kvs
        } catch let error as EtcdError where error.code == .permissionDenied && prefix == NodeRecord.root {
          nodeRecordsRefused(error)
        }
      }
      publisher.etcdRead(failed: nil)
    } catch {
      publisher.etcdRead(failed: error)
      _ = state.withLock { $0.changeLog.finish() }
      throw error
    }
    // Parsed outside the lock, which the watch needs; the events that came in meanwhile go on top.
    var mirror = RegistrationMirror(
      revision: readRevision, entries: kvs.map { ($0.key, $0.value, $0.modRevision) }, servesTLS: servesTLS)
    return state.withLock { state in
      mirror.apply(state.changeLog.finish())
      if let previous = state.mirror { mirror.keepLastValid(from: previous) }
      state.mirror = mirror
      state.invalidGenerationSeen = mirror.invalidGeneration
      state.routesGenerationSeen = mirror.routesGeneration
      return (
        View(
          instances: mirror.instances, invalid: mirror.invalid, overrides: mirror.overrides,
          revision: mirror.revision, registered: mirror.registeredServices, settings: mirror.settings,
          routes: mirror.routes, newestChange: mirror.newestChange),
        readRevision
      )
    }
  }

  /// The mirror's view of `services`, its invalid entries and its revision; `nil` without a mirror.
  ///
  /// The instances that changed in each service since a pass last took them are taken (those of
  /// `forgetting` too, which no pass needs). A service whose changes are instances alone is handed to
  /// `patch` with them, under the lock so that all is at one revision; the backend it returns is in
  /// ``View/patched``. The others (settings changed, or `patch` declined) have all their instances in
  /// ``View/instances``.
  func view(
    of services: Set<ServiceName>, forgetting: Set<ServiceName> = [],
    patch: (ServiceName, InstanceUpdate) -> DesiredBackend? = { _, _ in nil }
  ) -> View? {
    state.withLock { state in
      guard let mirror = state.mirror else { return nil }
      let invalidChanged = state.invalidGenerationSeen != mirror.invalidGeneration
      state.invalidGenerationSeen = mirror.invalidGeneration
      let routesChanged = state.routesGenerationSeen != mirror.routesGeneration
      state.routesGenerationSeen = mirror.routesGeneration
      let changes = state.pending.take(services.union(forgetting))
      let settings = mirror.settings
      var instances: [ServiceInstance] = []
      var patched: [ServiceName: Patched] = [:]
      for service in services.sorted() {
        // A service the watch named whose changes an earlier pass took has none left: nothing to patch in.
        if case .instances(let ids) = changes[service] ?? .instances([]) {
          let keys = ids.map { RegistrationKey(service: service, instance: $0) }
          let present = keys.compactMap { mirror.instance($0) }
          let update = InstanceUpdate(
            instances: present, removed: Set(keys.filter { mirror.instance($0) == nil }.map(\.instance)),
            aggregate: mirror.aggregate(of: service), settings: settings[service])
          if let backend = patch(service, update) {
            patched[service] = Patched(backend: backend, servers: update.serverNames, instances: present)
            continue
          }
        }
        instances += mirror.instances(of: service)
      }
      return View(
        instances: instances, patched: patched, invalid: invalidChanged ? mirror.invalid : nil,
        overrides: mirror.overrides, revision: mirror.revision, registered: mirror.registeredServices,
        settings: settings, routes: routesChanged ? mirror.routes : nil, newestChange: mirror.newestChange)
    }
  }

  /// The first full pass is applied: the watch may start after `revision`.
  func startWatching(after revision: Int64) {
    state.withLock { if $0.watchAfter == nil { $0.watchAfter = revision } }
  }

  /// The keyspaces the source reads and watches: the registrations, the operators' overrides, the routes
  /// and the service settings; and the load-balancer nodes' records, which change nothing HAProxy runs but
  /// move etcd's revision: with them the applied revision reaches etcd's when a node has applied everything.
  static let prefixes = [
    ControllerConfiguration.prefix, InstanceOverride.root, Route.root, ServiceSettings.root, NodeRecord.root,
  ]

  /// Logs, once, that etcd refuses this node the nodes' records (a secure cluster whose controller role
  /// predates them): everything works, but the applied revision does not follow the records' writes.
  private func nodeRecordsRefused(_ error: EtcdError) {
    let first = nodeRecordsRefusal.withLock { refused in
      defer { refused = true }
      return !refused
    }
    guard first else { return }
    logger.warning(
      "etcd refuses this node read access to \(NodeRecord.root); the applied revision does not follow the nodes' records (grant the controller role read on that prefix)",
      metadata: ["error": "\(error)"])
  }

  /// Watches `prefix` (one of ``prefixes``) from after the first full read until cancelled; retries
  /// failures, and asks for a full pass when the history it needs was compacted.
  func watchLoop(prefix: String) async {
    guard var next = await watchStart() else { return }
    var failures = 0
    while !Task.isCancelled {
      do {
        // The created response is the watch's first word: without it, readiness waited for the first
        // progress notification, up to a progress interval after the watch was in place.
        let watch = client.watch(.prefix(prefix), options: WatchOptions(startRevision: next, notifyCreated: true))
        for try await response in watch {
          failures = 0
          status.update {
            $0.lastWatchWord = .now
            $0.etcdConnected = true
          }
          guard let last = response.events.last else { continue }
          status.recentChanges.record(response.events)
          next = max(next, last.kv.modRevision + 1)
          let changes = response.events.map { event in
            RegistrationMirror.Change(
              key: event.kv.key, value: event.kind == .put ? event.kv.value : nil, modRevision: event.kv.modRevision)
          }
          let nodeRecords = prefix == NodeRecord.root
          let (touched, recorded) = state.withLock { state -> (Set<ServiceName>, Bool) in
            state.changeLog.record(changes)
            let before = state.mirror?.revision
            guard let changed = state.mirror?.applyTracking(changes) else { return ([], false) }
            state.pending.formUnion(changed)
            // A node's record changes nothing HAProxy runs: when everything before it is applied, so is it,
            // and no pass is needed.
            guard nodeRecords, let before, let after = state.mirror?.revision else { return (changed.services, false) }
            return ([], publisher.appliedWithoutChange(revision: after, whenApplied: before))
          }
          if !recorded { queue.changesArrived(services: touched) }
        }
        return
      } catch let error as EtcdError where error.code == .permissionDenied && prefix == NodeRecord.root {
        nodeRecordsRefused(error)
        return
      } catch let error as EtcdError where error.code == .compacted {
        let compactRevision = error.compactRevision ?? 0
        logger.warning(
          "The watch's history was compacted; reading the full state again",
          metadata: ["prefix": "\(prefix)", "resume_revision": "\(next)", "compact_revision": "\(compactRevision)"]
        )
        queue.requestFullPass()
        next = max(next, compactRevision)
      } catch is CancellationError {
        return
      } catch {
        failures += 1
        watchFailures.withLock { $0 += 1 }
        let delay = timings.watchRetryDelay(failures: failures)
        // One of an outage's restarts: the outage itself is reported once, by the progress loop.
        logger.info("The etcd watch failed; retrying", metadata: ["error": "\(error)", "retry_in": "\(delay)"])
        try? await Task.sleep(for: delay)
      }
    }
  }

  /// Asks etcd for progress notifications, so that a silent watch is told apart from a dead one, and
  /// reports an etcd outage as one episode: a warning when the watch has been silent too long, a notice
  /// when etcd answers again (how long it lasted, how often the watch was restarted meanwhile), and a
  /// notice when the watch moves to another member.
  func progressLoop() async {
    var outage = Episode<ContinuousClock.Instant>()
    var failuresAtStart = 0
    var lastEndpoint: String?
    var lastRequest: ContinuousClock.Instant?
    // Looked at more often than progress is asked for, so that a short outage is not missed.
    let tick = min(timings.watchProgressInterval, .milliseconds(500))
    while !Task.isCancelled {
      if lastRequest.map({ $0.duration(to: .now) >= timings.watchProgressInterval - tick / 2 }) ?? true {
        client.requestWatchProgress()
        lastRequest = .now
      }
      let endpoint = client.watchStream.endpoint?.description
      status.update { $0.watchEndpoint = endpoint }
      let current = status.isWatchCurrent()
      let reachable = current && status.state.withLock { $0.etcdConnected }
      metrics.watchCurrent.set(to: current ? 1 : 0)
      if let endpoint, let previous = lastEndpoint, endpoint != previous {
        logger.notice("The etcd watch moved to another member", metadata: ["from": "\(previous)", "to": "\(endpoint)"])
      }
      lastEndpoint = endpoint ?? lastEndpoint
      // Before the first pass the watch has not started: that is no outage.
      if state.withLock({ $0.watchAfter }) != nil {
        switch outage.observe(count: reachable ? 0 : 1, added: 0, now: .now) {
        case .started:
          failuresAtStart = watchFailures.withLock { $0 }
          metrics.etcdOutages.increment()
          logger.warning(
            "No word from etcd: HAProxy keeps serving the last applied state and /readyz answers 503 until it answers",
            metadata: ["reasons": "\(status.notReadyReasons().joined(separator: "; "))"])
        case .ended(let lasted, _):
          let restarts = watchFailures.withLock { $0 } - failuresAtStart
          logger.notice(
            "etcd answers again after \(ControllerStatus.seconds(lasted)) s without word; changes made meanwhile follow",
            metadata: ["watch_restarts": "\(restarts)", "endpoint": "\(endpoint ?? "-")"])
        case .changed, nil:
          break
        }
      }
      try? await Task.sleep(for: tick)
    }
  }

  /// Waits until the first full pass is applied; returns the revision to watch from.
  private func watchStart() async -> Int64? {
    while !Task.isCancelled {
      if let revision = state.withLock({ $0.watchAfter }) { return revision + 1 }
      try? await Task.sleep(for: .milliseconds(50))
    }
    return nil
  }
}
