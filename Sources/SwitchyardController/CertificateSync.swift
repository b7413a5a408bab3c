import EtcdClient
import Foundation
import HAProxyKit
import Logging
import SwitchyardACME
import SwitchyardCerts
import SwitchyardModel
import SwitchyardReconcile
import Synchronization

/// Keeps HAProxy's certificates and ACME challenge answers in step with etcd: reads
/// `/switchyard/certs/` and `/switchyard/acme/challenges/` at one revision, watches both, and after each
/// change writes the files first (certificate PEMs, the crt-list, the challenge map: what a reload or
/// restart loads) and then changes the running HAProxy through its Runtime API (``TLSPlanner``): no reload.
///
/// Nothing from etcd is trusted: a certificate record is parsed strictly, its key opened with the cluster
/// key and the pair validated again (``CertificateBundle/open(_:with:now:)``); a refused record leaves the
/// last good certificate of that name in force and is reported in `/state`. Challenge tokens and key
/// authorizations are checked by ``ACMEChallenge/parse(key:value:)``. No key reaches a log or `/state`.
final class CertificateSync: Sendable {
  /// One certificate name as etcd has it, and what this node serves for it.
  struct Entry: Sendable {
    /// The last record of this name that opened and validated: what is served.
    var good: CertificateBundle?
    var source: CertificateRecord.Source?
    /// Why the newest record of this name was refused; `nil` when it is the one served.
    var problem: String?
  }

  struct State {
    var entries: [CertificateName: Entry] = [:]
    /// Invalid keys under the certificates' prefix (not a valid name), with why.
    var invalidKeys: [String: String] = [:]
    var challenges: [String: String] = [:]
    /// Whether etcd has been read once: before, nothing is removed.
    var loaded = false
    /// The watch responses taken since the last sync: the revision before each and its last change's.
    var unsynced: [(before: Int64, after: Int64)] = []
    /// What the files hold, as last written (path → text).
    var written: [String: String] = [:]
    /// The per-name problems of the last sync with HAProxy.
    var pending: [String: String] = [:]
  }

  let client: EtcdClient
  let settings: NodeSettings
  let tls: TLSSettings
  let runtime: RuntimeAPI
  let status: ControllerStatus
  let publisher: StatusPublisher
  let metrics: ControllerMetrics
  let logger: Logger
  let state = Mutex(State())
  let wake: AsyncStream<Void>.Continuation
  let wakes: AsyncStream<Void>

  /// The keyspaces read and watched.
  static let prefixes = [CertificateRecord.root, ACMEChallenge.root]

  init(
    client: EtcdClient, settings: NodeSettings, tls: TLSSettings, runtime: RuntimeAPI, status: ControllerStatus,
    publisher: StatusPublisher, metrics: ControllerMetrics, logger: Logger
  ) {
    self.metrics = metrics
    self.client = client
    self.settings = settings
    self.tls = tls
    self.runtime = runtime
    self.status = status
    self.publisher = publisher
    self.logger = logger
    (wakes, wake) = AsyncStream<Void>.makeStream(bufferingPolicy: .bufferingNewest(1))
  }

  /// Whether this node serves HTTPS.
  var servesHTTPS: Bool { settings.httpsListen != nil }

  // MARK: - Files before HAProxy starts

  /// Makes the files the configuration names exist before HAProxy starts: the challenge map (empty), and
  /// with an HTTPS listener the TLS directory, a default certificate (self-signed, made once) and the
  /// crt-list (empty). Files an earlier run wrote are kept: they serve until etcd says otherwise.
  func prepareFiles() throws {
    let manager = FileManager.default
    if !manager.fileExists(atPath: settings.acmeMapPath) { try DurableFile.replace("", at: settings.acmeMapPath) }
    guard servesHTTPS else { return }
    for directory in [settings.tlsDirectoryPath, Self.certificatesDirectory(settings)] {
      try manager.createDirectory(
        atPath: directory, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])
    }
    if !manager.fileExists(atPath: settings.defaultCertificatePath) {
      let made = try CertificateBundle.selfSigned()
      try DurableFile.replace(made.haproxyPEM, at: settings.defaultCertificatePath)
      logger.notice(
        "Made a self-signed default certificate for the HTTPS listener",
        metadata: ["path": "\(settings.defaultCertificatePath)", "sha256": "\(made.sha256Fingerprint)"])
    }
    if !manager.fileExists(atPath: settings.crtListPath) { try DurableFile.replace("", at: settings.crtListPath) }
  }

  static func certificatesDirectory(_ settings: NodeSettings) -> String { settings.tlsDirectoryPath + "/certs" }

  // MARK: - etcd

  /// Reads both keyspaces at one revision, then watches them from the next; starts over after a failure
  /// (a compacted history included: the read covers it).
  func watchLoop() async {
    var failures = 0
    while !Task.isCancelled {
      do {
        let revision = try await readAll()
        failures = 0
        try await withThrowingTaskGroup(of: Void.self) { group in
          for prefix in Self.prefixes {
            group.addTask { try await self.watch(prefix: prefix, from: revision + 1) }
          }
          // The first watch to end (an error) ends both: the next read covers what they missed.
          try await group.next()
          group.cancelAll()
        }
      } catch is CancellationError {
        return
      } catch {
        failures += 1
        let delay = Duration.milliseconds(min(5_000, 200 * (1 << min(failures, 5))))
        logger.info(
          "Reading certificates and challenges from etcd failed; retrying",
          metadata: ["error": "\(error)", "retry_in": "\(delay)"])
        try? await Task.sleep(for: delay)
      }
    }
  }

  private func readAll() async throws -> Int64 {
    let certificates = try await client.getPaginated(.prefix(CertificateRecord.root), pageSize: 100)
    let revision = certificates.header.revision
    let challenges = try await client.getPaginated(
      .prefix(ACMEChallenge.root), pageSize: 500, options: GetOptions(revision: revision))
    let now = Date()
    let parsed = certificates.kvs.map {
      ($0.key, parseRecord(key: $0.key, value: $0.value, modRevision: $0.modRevision, now: now))
    }
    let answers = challenges.kvs.compactMap { try? ACMEChallenge.parse(key: $0.key, value: $0.value) }
    let refused = challenges.kvs.count - answers.count
    if refused > 0 { logger.warning("Refused \(refused) invalid ACME challenge entries in etcd") }
    state.withLock { state in
      var entries: [CertificateName: Entry] = [:]
      state.invalidKeys = [:]
      for (key, result) in parsed {
        switch result {
        case .record(let name, let outcome):
          entries[name] = Self.merge(outcome, into: state.entries[name])
        case .badKey(let problem):
          state.invalidKeys[Self.printable(key)] = problem
        }
      }
      state.entries = entries
      state.challenges = Dictionary(answers.map { ($0.token, $0.keyAuthorization) }, uniquingKeysWith: { $1 })
      state.loaded = true
      state.unsynced = []
    }
    wake.yield()
    return revision
  }

  private func watch(prefix: String, from revision: Int64) async throws {
    let watch = client.watch(.prefix(prefix), options: WatchOptions(startRevision: revision))
    for try await response in watch {
      guard let last = response.events.last else { continue }
      let now = Date()
      var changes: [(key: [UInt8], kind: WatchEvent.Kind, parsed: Parsed?, challenge: ACMEChallenge?)] = []
      for event in response.events {
        if prefix == CertificateRecord.root {
          let parsed =
            event.kind == .put
            ? parseRecord(key: event.kv.key, value: event.kv.value, modRevision: event.kv.modRevision, now: now) : nil
          changes.append((event.kv.key, event.kind, parsed, nil))
        } else {
          var challenge: ACMEChallenge?
          if event.kind == .put {
            do { challenge = try ACMEChallenge.parse(key: event.kv.key, value: event.kv.value) } catch {
              logger.warning("Refused an invalid ACME challenge entry in etcd", metadata: ["error": "\(error)"])
            }
          }
          changes.append((event.kv.key, event.kind, nil, challenge))
        }
      }
      state.withLock { state in
        for change in changes {
          let keyText = String(decoding: change.key, as: UTF8.self)
          if prefix == ACMEChallenge.root {
            let token = String(keyText.dropFirst(ACMEChallenge.root.count))
            if let challenge = change.challenge {
              state.challenges[challenge.token] = challenge.keyAuthorization
            } else {
              state.challenges[token] = nil
            }
            continue
          }
          switch change.parsed {
          case .record(let name, let outcome):
            state.entries[name] = Self.merge(outcome, into: state.entries[name])
            state.invalidKeys[Self.printable(change.key)] = nil
          case .badKey(let problem):
            state.invalidKeys[Self.printable(change.key)] = problem
          case nil:
            state.invalidKeys[Self.printable(change.key)] = nil
            if let name = try? CertificateName(validating: String(keyText.dropFirst(CertificateRecord.root.count))) {
              state.entries[name] = nil
            }
          }
        }
        state.unsynced.append((response.events[0].kv.modRevision - 1, last.kv.modRevision))
      }
      wake.yield()
    }
  }

  enum Parsed: Sendable {
    /// A valid name, and either the bundle or why its record was refused.
    case record(CertificateName, Result<(CertificateBundle, CertificateRecord.Source), CertificateProblem>)
    case badKey(String)
  }

  private func parseRecord(key: [UInt8], value: [UInt8], modRevision: Int64, now: Date) -> Parsed {
    let keyText = String(decoding: key, as: UTF8.self)
    let name: CertificateName
    do {
      name = try CertificateName(validating: String(keyText.dropFirst(CertificateRecord.root.count)))
    } catch {
      return .badKey("\(error)")
    }
    do {
      let record = try CertificateRecord.parse(key: key, value: value, modRevision: modRevision)
      guard let clusterKey = tls.clusterKey else {
        return .record(
          name,
          .failure(
            CertificateProblem(
              name: name.rawValue, field: "sealed key",
              reason: "this node has no cluster key (--cluster-key) to open it")))
      }
      let bundle = try CertificateBundle.open(record, with: clusterKey, now: now)
      return .record(name, .success((bundle, record.source)))
    } catch {
      // The problem names fields and reasons, never key material.
      logger.warning(
        "Refused the certificate record in etcd; the last good certificate of this name, if any, stays in force",
        metadata: ["certificate": "\(name)", "problem": "\(error)", "mod_revision": "\(modRevision)"])
      return .record(name, .failure(error))
    }
  }

  /// A new outcome for a name: a valid record replaces what is served; a refused one leaves the last good
  /// certificate in force and records why.
  private static func merge(
    _ outcome: Result<(CertificateBundle, CertificateRecord.Source), CertificateProblem>, into entry: Entry?
  ) -> Entry {
    switch outcome {
    case .success(let (bundle, source)): Entry(good: bundle, source: source, problem: nil)
    case .failure(let problem): Entry(good: entry?.good, source: entry?.source, problem: problem.description)
    }
  }

  /// A key as text that a log or `/state` can show: escaped as the access log escapes a value
  /// (``LogEscaping``), byte for byte, so two keys never show alike.
  static func printable(_ bytes: [UInt8]) -> String {
    var text: [UInt8] = []
    LogEscaping.appendTextValue(bytes, to: &text)
    return String(decoding: text, as: UTF8.self)
  }
}
