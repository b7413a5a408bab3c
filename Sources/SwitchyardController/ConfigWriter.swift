import Foundation
import HAProxyKit
import Logging
import SwitchyardReconcile
import Synchronization

/// The node's config file: what is installed, whether it is behind the desired state, and the flush that
/// brings it up to date beside the reconcile loop.
///
/// A change the Runtime API can make reaches HAProxy first and the file right after; anything that makes
/// HAProxy read the file (a start, a reload) installs it first. Passes for a few services leave the file
/// behind (rendering and syncing a large fleet's file takes tens of milliseconds that a change coming in
/// should not wait for); a flush catches up, and every other install waits for a running flush first, so
/// that the newest text is the one that stays.
actor ConfigWriter {
  private let installer: ConfigInstaller
  private let directory: StateDirectory
  private let settings: NodeSettings
  private let metrics: ControllerMetrics
  private let logger: Logger
  private var installedText: String?
  /// The structure of `installedText`, checked with `haproxy -c` when it was first installed.
  private var installedStructure: String?
  /// The file HAProxy last read (start or reload), for the `reload` update strategy.
  private(set) var loadedText: String?
  /// The routes map file as installed.
  private var installedMap: String?
  /// The routes HAProxy holds: the map file it last read, or what the Runtime API replaced it with
  /// since; `nil` when not known (an adopted HAProxy). Behind a lock, not the actor: a pass that changes
  /// routes must not wait while a flush syncs the file.
  private let routesLoaded = Mutex<String?>(nil)
  /// The desired state the file is behind, if it is. Behind a lock, not the actor: a pass marks it on
  /// its way to HAProxy and must not wait while a flush syncs the file.
  private let behind = Mutex<DesiredState?>(nil)
  /// Whether more than the routes map is behind (servers or structure changed since the last install):
  /// a pass that changed only routes leaves the config text as it is, and the flush writes the map alone.
  private let configBehind = Mutex(false)
  /// The flush that runs, if any. Behind a lock too: the loop asks for a flush on its way to the next
  /// pass and must not wait for one that is rendering or syncing.
  private let flush = Mutex<Task<Void, Never>?>(nil)

  /// Where the structure of the installed config is kept (next to it), for a start without etcd.
  private nonisolated var installedStructurePath: String { directory.path("haproxy.cfg.structure") }

  init(
    directory: StateDirectory, executable: String, settings: NodeSettings, metrics: ControllerMetrics, logger: Logger
  ) {
    self.directory = directory
    installer = ConfigInstaller(stateDirectory: directory, executable: executable, logger: logger)
    self.settings = settings
    self.metrics = metrics
    self.logger = logger
  }

  /// The node's configuration for `desired`.
  nonisolated func render(_ desired: DesiredState) -> RenderedConfig {
    ConfigRenderer.render(desired, settings: settings)
  }

  /// Whether a text needs `haproxy -c` before it is installed. It does when its structure changed; a text
  /// whose structure was checked before and whose only new lines are servers HAProxy has just taken
  /// through the Runtime API needs no second opinion. A start or a reload always reads a checked structure.
  static func needsValidation(structure: String, installedStructure: String?, serversApplied: Bool) -> Bool {
    !(serversApplied && structure == installedStructure)
  }

  /// Validates and installs `rendered` as the config file, unless it is installed already, once a flush
  /// that runs has finished. An invalid render is never installed: the last good file stays, and the
  /// failure is counted and thrown.
  func install(_ rendered: RenderedConfig, revision: Int64, serversApplied: Bool = false) async throws {
    await finishFlush()
    try await performInstall(rendered, revision: revision, serversApplied: serversApplied)
  }

  /// The file is behind `desired`: a flush is to bring it up.
  nonisolated func fileIsBehind(_ desired: DesiredState, routesOnly: Bool = false) {
    behind.withLock { $0 = desired }
    if !routesOnly { configBehind.withLock { $0 = true } }
  }

  /// The file was installed for the newest desired state.
  nonisolated func caughtUp() {
    behind.withLock { $0 = nil }
    configBehind.withLock { $0 = false }
  }

  /// Whether the file is behind the desired state.
  nonisolated var isBehind: Bool { behind.withLock { $0 != nil } }

  /// HAProxy read the installed file (a start or a reload).
  func markLoaded() {
    loadedText = installedText
    routesLoaded.withLock { $0 = installedMap }
  }

  /// The routes HAProxy holds, when known: the map file it last read, or what the Runtime API replaced it
  /// with since.
  nonisolated var routesInHAProxy: String? { routesLoaded.withLock { $0 } }

  /// What HAProxy holds is not known (an HAProxy adopted again): the next pass replaces its routes.
  nonisolated func routesUnknown() {
    routesLoaded.withLock { $0 = nil }
  }

  /// HAProxy took `routes` through the Runtime API.
  nonisolated func routesApplied(_ routes: String) {
    routesLoaded.withLock { $0 = routes }
  }

  /// Starts a flush beside the reconcile loop, unless one runs; the periodic check asks again while the
  /// file is behind. Returns at once.
  nonisolated func startFlush() {
    flush.withLock { flush in
      guard flush == nil else { return }
      flush = Task {
        do {
          try await self.flushNow()
        } catch {
          self.logger.warning(
            "Could not bring the config file up to date; trying again in a second", metadata: ["error": "\(error)"])
        }
        self.flush.withLock { $0 = nil }
      }
    }
  }

  /// Waits for the flush that runs, if any.
  nonisolated func finishFlush() async {
    await flush.withLock { $0 }?.value
  }

  /// Writes the file for the desired state it is behind. The servers are in HAProxy already, so an
  /// unchanged structure needs no `haproxy -c`. The text is rendered off the actor.
  nonisolated func flushNow() async throws {
    guard let desired = behind.withLock({ $0 }) else { return }
    if configBehind.withLock({ $0 }) {
      // Taken before the render: a pass that marks the config behind meanwhile sets it again.
      configBehind.withLock { $0 = false }
      do {
        let rendered = try await Self.offLoop { self.render(desired) }
        try await performInstall(rendered, revision: desired.revision, serversApplied: true)
      } catch {
        configBehind.withLock { $0 = true }
        throw error
      }
    } else {
      // Only routes changed: the config text would be the same; rendering it for a large fleet costs
      // tens of milliseconds that the next change should not share the machine with.
      try await installRoutesMap(desired.routes.mapText)
    }
    behind.withLock { if $0?.revision == desired.revision { $0 = nil } }
  }

  /// Writes the routes map file alone, when it differs from the installed one.
  private func installRoutesMap(_ map: String) throws {
    guard map != installedMap else { return }
    do {
      try DurableFile.replace(map, at: settings.routesMapPath)
    } catch {
      throw ControllerError("the routes map was not written; the last one stays: \(error)")
    }
    installedMap = map
  }

  /// The structure of the installed config, when the config file and its structure are both there.
  nonisolated func lastGoodStructure() -> String? {
    guard FileManager.default.fileExists(atPath: directory.configPath) else { return nil }
    return try? String(contentsOfFile: installedStructurePath, encoding: .utf8)
  }

  private func performInstall(_ rendered: RenderedConfig, revision: Int64, serversApplied: Bool) async throws {
    // The map first: `haproxy -c` reads the file the configuration names, and HAProxy loads it on a reload.
    try installRoutesMap(rendered.routesMap)
    // The ACME challenge map the frontend names exists already: CertificateSync.prepareFiles makes it
    // before HAProxy starts or a config is checked.
    guard rendered.text != installedText else { return }
    let validate = Self.needsValidation(
      structure: rendered.structure, installedStructure: installedStructure, serversApplied: serversApplied)
    do {
      if validate {
        try await installer.install(rendered.text, at: directory.configPath, validate: true)
      } else {
        // Nothing to check: only the write, off the loop's threads.
        let (text, path) = (rendered.text, directory.configPath)
        try await Self.offLoop { try DurableFile.replace(text, at: path) }
        logger.info("Installed HAProxy configuration", metadata: ["haproxy.config": "\(path)"])
      }
    } catch {
      metrics.configRejected.increment()
      throw ControllerError("the rendered configuration was not installed; the last good one stays: \(error)")
    }
    await DurableFile.replaceOrWarn(rendered.structure, at: installedStructurePath, logger: logger)
    installedText = rendered.text
    installedStructure = rendered.structure
    logger.debug("Installed a new configuration", metadata: ["revision": "\(revision)"])
  }
}

extension ConfigWriter {
  /// Where the file is rendered and written: a thread of its own, not one of the few that the passes share
  /// (two on a 2-core machine). Rendering a fleet of 10,000 servers and syncing its file take tens of
  /// milliseconds, which a change that comes in meanwhile must not wait behind.
  private static let fileQueue = DispatchQueue(label: "switchyard.config-file")

  /// Runs `work` on the file's thread.
  static func offLoop<Value: Sendable>(_ work: @escaping @Sendable () throws -> Value) async throws -> Value {
    try await withCheckedThrowingContinuation { continuation in
      fileQueue.async { continuation.resume(with: Result { try work() }) }
    }
  }
}

extension DurableFile {
  /// Writes a file that a later start reads beside the config (a structure): durably, on the file's thread,
  /// and with a failure logged rather than thrown, since HAProxy already has what it describes.
  static func replaceOrWarn(_ text: String, at path: String, logger: Logger) async {
    do {
      try await ConfigWriter.offLoop { try replace(text, at: path) }
    } catch {
      logger.warning("Could not write \(path)", metadata: ["error": "\(error)"])
    }
  }
}
