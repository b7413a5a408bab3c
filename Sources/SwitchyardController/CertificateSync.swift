import EtcdClient
import Foundation
import HAProxyKit
import Logging
import SwitchyardACME
import SwitchyardCerts
import SwitchyardModel
import SwitchyardReconcile
import Synchronization

/// What a node needs to serve HTTPS: the key that opens the certificates' sealed keys, and which
/// certificate it serves when a client's SNI matches none.
public struct TLSSettings: Sendable {
  /// The cluster key; without it no certificate from etcd can be opened and only the default one is served.
  public var clusterKey: ClusterKey?
  /// The certificate in etcd served by default (no SNI, or an unknown name); without one, a self-signed
  /// certificate made on the node's first start (``CertificateBundle/selfSigned(now:days:)``).
  public var defaultCertificate: CertificateName?
  /// How often HAProxy's certificates are compared with etcd's even when nothing changed (after a reload
  /// or restart of HAProxy, the files are what it loaded: the same, but this makes sure).
  public var resyncInterval: Duration

  /// Creates settings.
  public init(
    clusterKey: ClusterKey? = nil, defaultCertificate: CertificateName? = nil, resyncInterval: Duration = .seconds(10)
  ) {
    self.clusterKey = clusterKey
    self.defaultCertificate = defaultCertificate
    self.resyncInterval = resyncInterval
  }
}

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

  private struct State {
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

  private let client: EtcdClient
  private let settings: NodeSettings
  private let tls: TLSSettings
  private let runtime: RuntimeAPI
  private let status: ControllerStatus
  private let publisher: StatusPublisher
  private let metrics: ControllerMetrics
  private let logger: Logger
  private let state = Mutex(State())
  private let wake: AsyncStream<Void>.Continuation
  private let wakes: AsyncStream<Void>

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

  // MARK: - HAProxy

  /// Brings HAProxy to etcd's certificates and challenges after every change, and every
  /// ``TLSSettings/resyncInterval`` in any case; a failed sync is tried again a second later.
  func syncLoop() async {
    var failures = 0
    var lastWarning: ContinuousClock.Instant?
    // HAProxy runs once the first pass is done; before, only the files count (prepareFiles made them).
    while !Task.isCancelled && !status.state.withLock({ $0.initialPassDone }) {
      try? await Task.sleep(for: .milliseconds(50))
    }
    await withTaskGroup(of: Void.self) { group in
      group.addTask { [wake, interval = tls.resyncInterval] in
        while !Task.isCancelled {
          try? await Task.sleep(for: interval)
          wake.yield()
        }
      }
      for await _ in wakes {
        if Task.isCancelled { break }
        do {
          try await sync()
          if failures > 0 { logger.notice("HAProxy's certificates are in step with etcd again") }
          failures = 0
        } catch is CancellationError {
          break
        } catch {
          failures += 1
          // HAProxy restarting or reloading answers nothing for a moment: the files are written already.
          if lastWarning.map({ $0.duration(to: .now) > .seconds(60) }) ?? true {
            logger.warning(
              "Could not bring HAProxy's certificates in step with etcd; retrying",
              metadata: ["error": "\(error)"])
            lastWarning = .now
          }
          Task { [wake] in
            try? await Task.sleep(for: .seconds(1))
            wake.yield()
          }
        }
      }
      group.cancelAll()
    }
  }

  /// One sync: files, then the Runtime API, then `/state`.
  func sync() async throws {
    let (loaded, entries, challenges, unsynced) = state.withLock {
      ($0.loaded, $0.entries, $0.challenges, $0.unsynced)
    }
    guard loaded else { return }
    try await syncChallenges(challenges)
    if servesHTTPS { try await syncCertificates(entries) }
    // These changes are in HAProxy now: when everything before each was applied, so is it (they change no
    // server, so no pass follows them).
    state.withLock { $0.unsynced.removeFirst(min(unsynced.count, $0.unsynced.count)) }
    for change in unsynced { _ = publisher.appliedWithoutChange(revision: change.after, whenApplied: change.before) }
  }

  private func syncChallenges(_ challenges: [String: String]) async throws {
    let entries = challenges.sorted { $0.key < $1.key }.map { (key: $0.key, value: $0.value) }
    let text = entries.map { "\($0.key) \($0.value)\n" }.joined()
    try writeIfChanged(text, at: settings.acmeMapPath)
    let served = try await runtime.showMap(settings.acmeMapPath)
    if served.map({ "\($0.key) \($0.value)\n" }).joined() != text {
      try await runtime.replaceMap(settings.acmeMapPath, entries: entries)
      logger.info("ACME challenges served", metadata: ["count": "\(entries.count)"])
    }
  }

  private func syncCertificates(_ entries: [CertificateName: Entry]) async throws {
    let directory = Self.certificatesDirectory(settings)
    var desired: [ServedCertificate] = []
    var keep: Set<String> = []
    for (name, entry) in entries {
      let path = settings.certificatePath(for: name.rawValue)
      guard let bundle = entry.good else {
        keep.insert(path)
        continue
      }
      desired.append(
        ServedCertificate(
          name: name.rawValue, path: path, sha1Fingerprint: bundle.sha1Fingerprint,
          sniFilters: bundle.hosts.map(\.text), pem: bundle.haproxyPEM))
    }
    let defaultCertificate = tls.defaultCertificate.flatMap { entries[$0]?.good }.map { bundle in
      ServedCertificate(
        name: "default", path: settings.defaultCertificatePath, sha1Fingerprint: bundle.sha1Fingerprint,
        sniFilters: [], pem: bundle.haproxyPEM)
    }
    // Files first: a reload or restart from here on loads what the Runtime API is about to make live.
    for certificate in desired + (defaultCertificate.map { [$0] } ?? []) {
      try writeIfChanged(certificate.pem, at: certificate.path)
    }
    let observed = try await observe(directory: directory)
    let kept = observed.listed.filter { keep.contains($0.key) }
    try writeIfChanged(TLSPlanner.crtListText(desired, kept: kept), at: settings.crtListPath)
    let steps = TLSPlanner.plan(
      desired: desired, defaultCertificate: defaultCertificate, observed: observed, managedDirectory: directory,
      keep: keep)
    var problems: [String: String] = [:]
    var firstError: Error?
    for step in steps {
      do {
        try await run(step)
        logger.info("Certificate change applied", metadata: ["step": "\(step)"])
      } catch {
        if case .install(let certificate) = step { problems[certificate.name] = "HAProxy refused it: \(error)" }
        if case .list(let certificate) = step { problems[certificate.name] = "HAProxy refused it: \(error)" }
        firstError = firstError ?? error
      }
    }
    // Files of certificates no longer served go once HAProxy let them go.
    if firstError == nil {
      let files = (try? FileManager.default.contentsOfDirectory(atPath: directory)) ?? []
      for file in files where file.hasSuffix(".pem") {
        let path = directory + "/" + file
        if !keep.contains(path) && !desired.contains(where: { $0.path == path }) {
          try? FileManager.default.removeItem(atPath: path)
          _ = state.withLock { $0.written.removeValue(forKey: path) }
        }
      }
    }
    state.withLock { $0.pending = problems }
    publishStatus(entries: entries, problems: problems)
    if let firstError { throw firstError }
  }

  private func observe(directory: String) async throws -> ObservedTLS {
    var observed = ObservedTLS()
    let paths = try await runtime.certificatePaths()
    for path in paths where path.hasPrefix(directory + "/") || path == settings.defaultCertificatePath {
      observed.loaded[path] = try await runtime.certificateInfo(path: path)?.sha1Fingerprint.uppercased()
    }
    for entry in try await runtime.crtListEntries(list: settings.crtListPath) {
      observed.listed[entry.certificatePath] = entry.sniFilters
    }
    return observed
  }

  private func run(_ step: TLSStep) async throws {
    switch step {
    case .install(let certificate): try await runtime.installCertificate(path: certificate.path, pem: certificate.pem)
    case .list(let certificate):
      try await runtime.addCrtListEntry(
        list: settings.crtListPath, certificatePath: certificate.path, sniFilters: certificate.sniFilters)
    case .unlist(let path): try await runtime.deleteCrtListEntry(list: settings.crtListPath, certificatePath: path)
    case .delete(let path): try await runtime.deleteCertificate(path: path)
    }
  }

  private func writeIfChanged(_ text: String, at path: String) throws {
    guard state.withLock({ $0.written[path] }) != text else { return }
    let onDisk = try? String(contentsOfFile: path, encoding: .utf8)
    if onDisk != text { try DurableFile.replace(text, at: path) }
    state.withLock { $0.written[path] = text }
  }

  private func publishStatus(entries: [CertificateName: Entry], problems: [String: String]) {
    var list: [NodeSnapshot.Certificate] = []
    for (name, entry) in entries.sorted(by: { $0.key < $1.key }) {
      let bundle = entry.good
      let problem = entry.problem ?? problems[name.rawValue]
      let state: String
      if entry.problem != nil {
        state = "invalid"
      } else if problems[name.rawValue] != nil {
        state = "pending"
      } else {
        state = name == tls.defaultCertificate ? "default" : "served"
      }
      list.append(
        NodeSnapshot.Certificate(
          name: name.rawValue, hosts: bundle?.hosts.map(\.text) ?? [], state: state, source: entry.source?.rawValue,
          notAfter: bundle.map { Int64($0.notAfter.timeIntervalSince1970) },
          sha256Fingerprint: bundle?.sha256Fingerprint,
          problem: problem))
    }
    let invalidKeys = state.withLock { $0.invalidKeys }
    for (key, reason) in invalidKeys.sorted(by: { $0.key < $1.key }) {
      list.append(NodeSnapshot.Certificate(name: key, hosts: [], state: "invalid", problem: reason))
    }
    status.update { $0.certificates = list }
    metrics.setCertificates(list)
  }

  /// A key as text that a log or `/state` can show: printable ASCII, anything else escaped.
  static func printable(_ bytes: [UInt8]) -> String {
    bytes.map { byte in
      (0x20..<0x7f).contains(byte) && byte != UInt8(ascii: "\\")
        ? String(UnicodeScalar(byte)) : String(format: "\\x%02x", byte)
    }.joined()
  }
}
