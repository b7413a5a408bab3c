import Foundation
import HAProxyKit
import Logging
import SwitchyardReconcile
import Synchronization

/// The one owner of the node's HAProxy process: adopts the one a previous controller left running, starts
/// it, reloads it through the master, notices when it dies, and stops it. Nothing else decides about the
/// process.
///
/// Restart policy: when HAProxy dies, the supervisor reports it and asks for a full pass, which installs
/// the current configuration and starts HAProxy again at once. While etcd cannot say what is current, the
/// reconcile loop has the supervisor start HAProxy from the last good file instead of serving nothing.
final class HAProxySupervisor: Sendable {
  /// The private state directory: config, sockets, pid file, HAProxy's log.
  let directory: StateDirectory
  private let executable: String
  private let superviseInterval: Duration
  private let status: ControllerStatus
  private let metrics: ControllerMetrics
  private let logger: Logger
  private let process = Mutex<HAProxyProcess?>(nil)
  /// The structure of the configuration HAProxy runs.
  private let running = Mutex<String?>(nil)
  /// The release of the executable (`haproxy -v`), then of the worker that runs (`show info`).
  private let version = Mutex<HAProxyVersion?>(nil)

  /// Where the structure of the config HAProxy runs is kept, for a controller that adopts it.
  private var runningStructurePath: String { directory.path("running.structure") }

  init(
    directory: StateDirectory, executable: String, superviseInterval: Duration, status: ControllerStatus,
    metrics: ControllerMetrics, logger: Logger
  ) {
    self.directory = directory
    self.executable = executable
    self.superviseInterval = superviseInterval
    self.status = status
    self.metrics = metrics
    self.logger = logger
  }

  /// Whether HAProxy runs.
  var isRunning: Bool { process.withLock { $0?.isRunning ?? false } }
  /// The master's PID, once HAProxy was started or adopted.
  var pid: Int32? { process.withLock { $0?.pid } }
  /// The structure of the configuration HAProxy runs, once it was started, adopted or reloaded.
  var runningStructure: String? { running.withLock { $0 } }

  /// The release that runs (or, before it runs, the executable's).
  var haproxyVersion: HAProxyVersion? { version.withLock { $0 } }

  /// What the release that runs does differently, for planning; 2.6's way until it is known.
  var features: RuntimeFeatures {
    version.withLock { $0.map { RuntimeFeatures(major: $0.major, minor: $0.minor) } ?? .haproxy26 }
  }

  /// Reads the executable's release (`haproxy -v`) and logs it; throws
  /// ``HAProxyError/Code/unsupportedVersion`` for one older than ``HAProxyVersion/oldestSupported``, and
  /// ``HAProxyError/Code/processFailed`` when it does not run.
  func checkExecutable() async throws {
    let found = try await HAProxyVersion.of(executable: executable, stateDirectory: directory)
    record(found, source: "executable")
  }

  /// Asks the worker that runs for its release (`show info`), after a start, an adoption or a reload: a
  /// reload re-executes the binary, which a package upgrade may have replaced. A worker older than
  /// supported is logged as an error but kept serving: stopping it would serve nothing at all.
  private func refreshRunningVersion() async {
    do {
      let found = try await RuntimeAPI(stateDirectory: directory, logger: logger).version()
      record(found, source: "running worker")
      if !found.isSupported {
        logger.error(
          "The running HAProxy is older than Switchyard supports",
          metadata: ["haproxy.version": "\(found)", "oldest_supported": "\(HAProxyVersion.oldestSupported.series)"])
      }
    } catch {
      logger.warning("Could not read the running HAProxy's version", metadata: ["error": "\(error)"])
    }
  }

  private func record(_ found: HAProxyVersion, source: String) {
    let previous = version.withLock { version in
      defer { version = found }
      return version
    }
    status.update { $0.haproxyVersion = found.text }
    guard previous?.text != found.text else { return }
    let features = RuntimeFeatures(major: found.major, minor: found.minor)
    logger.notice(
      previous == nil ? "HAProxy version" : "HAProxy version changed",
      metadata: [
        "haproxy.version": "\(found)", "source": "\(source)", "features": "\(features)",
        "previous": "\(previous?.text ?? "-")",
      ])
  }

  /// Adopts an HAProxy a previous controller left running, if there is one.
  func adopt() async throws {
    guard let adopted = try await HAProxyProcess.adopt(stateDirectory: directory, logger: logger) else { return }
    process.withLock { $0 = adopted }
    let structure = try? String(contentsOfFile: runningStructurePath, encoding: .utf8)
    running.withLock { $0 = structure }
    logger.notice("Adopted the HAProxy that is already running", metadata: ["haproxy.pid": "\(adopted.pid)"])
    status.update {
      $0.haproxyAdopted = true
      $0.haproxyPID = adopted.pid
      $0.haproxyRunning = true
    }
    metrics.haproxyRunning.set(to: 1)
    await refreshRunningVersion()
  }

  /// Starts HAProxy from the installed config file, whose structure is `structure`. Returns `false` when
  /// an HAProxy of this state directory turned out to run (one this controller lost sight of) and was
  /// adopted again instead: it runs the configuration it last read, not necessarily the installed one.
  @discardableResult
  func start(structure: String) async throws -> Bool {
    let started: HAProxyProcess
    do {
      started = try await HAProxyProcess.start(stateDirectory: directory, executable: executable, logger: logger)
    } catch let error as HAProxyError where error.code == .invalidState {
      // Starting again would fail forever: take the running one back.
      guard try await HAProxyProcess.adopt(stateDirectory: directory, logger: logger) != nil else { throw error }
      logger.warning("HAProxy still ran though it seemed gone; adopting it again", metadata: ["error": "\(error)"])
      try await adopt()
      return false
    }
    process.withLock { $0 = started }
    await recordRunning(structure)
    status.update {
      $0.haproxyPID = started.pid
      $0.haproxyRunning = true
    }
    metrics.haproxyRunning.set(to: 1)
    logger.notice("HAProxy started", metadata: ["haproxy.pid": "\(started.pid)"])
    await refreshRunningVersion()
    return true
  }

  /// With etcd unreachable and no HAProxy running, serves the last good config rather than nothing.
  /// Returns whether HAProxy was started.
  func startFromLastGoodIfStopped(structure lastGood: String?) async -> Bool {
    guard !Task.isCancelled, !isRunning, let structure = lastGood else { return false }
    do {
      guard try await start(structure: structure) else { return false }
      logger.notice("Started HAProxy from the last good configuration while etcd is unreachable")
      return true
    } catch {
      logger.error("Could not start HAProxy from the last good configuration", metadata: ["error": "\(error)"])
      return false
    }
  }

  /// A seamless reload through the master: the new worker reads the installed file, whose structure is
  /// `structure`, and takes over the listening sockets.
  func reload(structure: String) async throws {
    guard let cli = process.withLock({ $0?.masterCLI() }) else {
      throw HAProxyError(.invalidState, "HAProxy is not running")
    }
    _ = try await cli.reload()
    await recordRunning(structure)
    await refreshRunningVersion()
  }

  /// Stops HAProxy gracefully (its workers finish their connections), forcing it after `timeout`.
  func stop(timeout: Duration) async {
    if let running = process.withLock({ $0 }) {
      do {
        try await running.stop(timeout: timeout)
      } catch {
        logger.error("Stopping HAProxy failed", metadata: ["error": "\(error)"])
      }
    }
    status.update { $0.haproxyRunning = false }
    metrics.haproxyRunning.set(to: 0)
    logger.notice("HAProxy stopped")
  }

  /// Notices when HAProxy dies (within 50 ms), reports it, and calls `restart` (which asks for the full
  /// pass that starts it again).
  func superviseLoop(restart: @Sendable () -> Void) async {
    while !Task.isCancelled {
      await waitForExitOrInterval()
      guard !Task.isCancelled, status.state.withLock({ $0.haproxyRunning }), !isRunning else { continue }
      metrics.haproxyRunning.set(to: 0)
      metrics.haproxyRestarts.increment()
      status.update {
        $0.haproxyRunning = false
        $0.restarts += 1
      }
      let exit = process.withLock { $0?.exitStatus?.description }
      logger.error(
        "HAProxy died; starting it again from the last good configuration",
        metadata: ["exit": "\(exit ?? "unknown")", "log": "\(directory.logTail(bytes: 1_000))"]
      )
      restart()
    }
  }

  /// Returns when the HAProxy that runs exits (seen within 50 ms: every millisecond after a death is a
  /// refused connection), or after ``superviseInterval`` (a process started or adopted meanwhile).
  private func waitForExitOrInterval() async {
    guard let running = process.withLock({ $0 }), running.isRunning else {
      try? await Task.sleep(for: superviseInterval)
      return
    }
    await withTaskGroup(of: Void.self) { group in
      group.addTask { _ = try? await running.waitForExit() }
      group.addTask { [superviseInterval] in try? await Task.sleep(for: superviseInterval) }
      await group.next()
      group.cancelAll()
    }
  }

  private func recordRunning(_ structure: String) async {
    running.withLock { $0 = structure }
    await DurableFile.replaceOrWarn(structure, at: runningStructurePath, logger: logger)
  }
}
