import EtcdClient
import HAProxyKit
import Logging
import ServiceLifecycle
import SwitchyardReconcile

/// Keeps one node's HAProxy in step with the registrations in etcd.
///
/// The controller wires small parts, each with one job, and runs their loops in one task group:
///
/// - ``RegistrationSource`` reads the prefix at one revision, then watches from that revision + 1 and
///   says which services changed;
/// - ``PassQueue`` holds the ``PassScheduler`` (which pass comes next, and when to requeue) and the
///   coalescing trigger;
/// - ``Reconciler`` runs full, incremental and follow-up passes: desired state, then the ``Applier``;
/// - ``Applier`` observes, plans, and changes servers through the Runtime API (``RuntimeClient``), or
///   reloads;
/// - ``ConfigWriter`` installs the config file and flushes it beside the loop;
/// - ``HAProxySupervisor`` owns the HAProxy process: adopt, start, reload, restart, stop;
/// - ``StatusPublisher`` and ``DriftDetector`` keep `/state` and the metrics current and notice drift;
/// - ``CertificateSync`` keeps HAProxy's certificates and ACME challenge answers in step with etcd.
///
/// On graceful shutdown the controller brings the config file up to date and stops HAProxy gracefully,
/// unless told to leave it running.
public final class Controller: Service, Sendable {
  private let configuration: ControllerConfiguration
  private let logger: Logger
  private let queue: PassQueue
  private let source: RegistrationSource
  private let writer: ConfigWriter
  private let supervisor: HAProxySupervisor
  private let applier: Applier
  private let reconciler: Reconciler
  private let drift: DriftDetector
  private let certificates: CertificateSync
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
    self.status = status
    self.metrics = metrics
    self.logger = logger
    let timings = configuration.timings
    let directory = try StateDirectory(path: configuration.stateDirectory)
    let runtime = RuntimeClient(stateDirectory: directory, logger: logger)
    let publisher = StatusPublisher(status: status, metrics: metrics, logger: logger)
    queue = PassQueue(
      timings: timings, coalescing: configuration.coalescing,
      readsEverything: configuration.updateStrategy == .reload)
    source = RegistrationSource(
      client: client, queue: queue, publisher: publisher, status: status, metrics: metrics, timings: timings,
      logger: logger, servesTLS: configuration.node.backendCAPath != nil)
    writer = ConfigWriter(
      directory: directory, executable: configuration.haproxyExecutable, settings: configuration.node,
      metrics: metrics, logger: logger)
    supervisor = HAProxySupervisor(
      directory: directory, executable: configuration.haproxyExecutable,
      superviseInterval: timings.superviseInterval, status: status, metrics: metrics, logger: logger)
    applier = Applier(
      configuration: configuration, runtime: runtime, writer: writer, supervisor: supervisor,
      publisher: publisher, queue: queue, status: status, metrics: metrics, logger: logger)
    reconciler = Reconciler(
      configuration: configuration, source: source, queue: queue, writer: writer, supervisor: supervisor,
      applier: applier, publisher: publisher, metrics: metrics)
    certificates = CertificateSync(
      client: client, settings: configuration.node, tls: configuration.tls,
      runtime: RuntimeAPI(stateDirectory: directory, logger: logger), status: status, publisher: publisher,
      metrics: metrics, logger: logger)
    drift = DriftDetector(
      reconciler: reconciler, runtime: runtime, supervisor: supervisor, publisher: publisher, queue: queue,
      timings: timings, logger: logger)
  }

  /// Runs until cancelled or gracefully shut down; then stops HAProxy unless told to leave it running.
  public func run() async throws {
    // An HAProxy too old to run the Runtime API path is refused before anything starts.
    try await supervisor.checkExecutable()
    // The files the configuration names (challenge map, default certificate, crt-list) exist before HAProxy
    // starts or a config is checked.
    try certificates.prepareFiles()
    try await supervisor.adopt()
    queue.poke()
    await cancelWhenGracefulShutdown {
      await withDiscardingTaskGroup { group in
        group.addTask { await self.reconcileLoop() }
        for prefix in RegistrationSource.prefixes {
          group.addTask { await self.source.watchLoop(prefix: prefix) }
        }
        group.addTask { await self.source.progressLoop() }
        group.addTask { await self.supervisor.superviseLoop { [queue = self.queue] in queue.requestFullPass() } }
        group.addTask { await self.drift.refreshLoop() }
        group.addTask { await self.fileCheckLoop() }
        group.addTask { await self.certificates.watchLoop() }
        group.addTask { await self.certificates.syncLoop() }
      }
    }
    // The file may be up to a second behind what HAProxy runs; the next start reads it. Not cancelled
    // with the task: the flush and the stop must finish.
    do {
      try await Task {
        await self.writer.finishFlush()
        try await self.writer.flushNow()
      }.value
    } catch {
      logger.warning("Could not bring the config file up to date on shutdown", metadata: ["error": "\(error)"])
    }
    if configuration.leaveHAProxyRunning {
      logger.notice("Leaving HAProxy running", metadata: ["haproxy.pid": "\(supervisor.pid.map(String.init) ?? "-")"])
    } else {
      await Task { await self.supervisor.stop(timeout: self.configuration.haproxyStopTimeout) }.value
    }
  }

  /// Runs the pass the scheduler chooses whenever one is due; the scheduler requeues follow-ups and
  /// retries.
  private func reconcileLoop() async {
    while let (decision, firstChange) = await queue.next(baselineReady: { reconciler.baselineReady }) {
      do {
        let passed = try await reconciler.run(decision)
        queue.passSucceeded(followUp: passed || !applier.leavingBackends.isEmpty)
        metrics.reconcilesOK.increment()
        if decision.hadEvents { metrics.eventToApplied.record(firstChange.duration(to: .now)) }
        status.update { $0.lastError = nil }
      } catch is CancellationError {
        return
      } catch {
        let delay = queue.passFailed()
        metrics.reconcilesFailed.increment()
        status.update { $0.lastError = "\(error)" }
        logger.error(
          "Reconcile pass failed; HAProxy keeps serving what it has",
          metadata: ["error": "\(error)", "retry_in": "\(delay)"]
        )
        // The last good file may be older than what HAProxy ran (runtime changes reach the file after
        // HAProxy): start from it only when etcd cannot say what is current.
        if !status.state.withLock({ $0.etcdConnected }) { await reconciler.startFromLastGoodIfStopped() }
      }
    }
  }

  /// Every ``LoopTimings/fileCheckInterval``: brings the config file up to the desired state when passes
  /// for a few services left it behind (writing it costs in proportion to the fleet, so changes do not
  /// wait for it), and starts the full pass that is due every ``LoopTimings/resyncInterval``.
  private func fileCheckLoop() async {
    while !Task.isCancelled {
      try? await Task.sleep(for: configuration.timings.fileCheckInterval)
      queue.tick(fileBehind: writer.isBehind)
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
