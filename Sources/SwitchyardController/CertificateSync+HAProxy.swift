import Foundation
import HAProxyKit
import SwitchyardCerts
import SwitchyardModel
import SwitchyardReconcile

/// Bringing the running HAProxy to what ``CertificateSync`` read from etcd: files first, then the Runtime API.
extension CertificateSync {
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

  func syncChallenges(_ challenges: [String: String]) async throws {
    let entries = challenges.sorted { $0.key < $1.key }.map { (key: $0.key, value: $0.value) }
    let text = entries.map { "\($0.key) \($0.value)\n" }.joined()
    try writeIfChanged(text, at: settings.acmeMapPath)
    let served = try await runtime.showMap(settings.acmeMapPath)
    if served.map({ "\($0.key) \($0.value)\n" }).joined() != text {
      try await runtime.replaceMap(settings.acmeMapPath, entries: entries)
      logger.info("ACME challenges served", metadata: ["count": "\(entries.count)"])
    }
  }

  func syncCertificates(_ entries: [CertificateName: Entry]) async throws {
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

  func observe(directory: String) async throws -> ObservedTLS {
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

  func run(_ step: TLSStep) async throws {
    switch step {
    case .install(let certificate): try await runtime.installCertificate(path: certificate.path, pem: certificate.pem)
    case .list(let certificate):
      try await runtime.addCrtListEntry(
        list: settings.crtListPath, certificatePath: certificate.path, sniFilters: certificate.sniFilters)
    case .unlist(let path): try await runtime.deleteCrtListEntry(list: settings.crtListPath, certificatePath: path)
    case .delete(let path): try await runtime.deleteCertificate(path: path)
    }
  }

  func writeIfChanged(_ text: String, at path: String) throws {
    guard state.withLock({ $0.written[path] }) != text else { return }
    let onDisk = try? String(contentsOfFile: path, encoding: .utf8)
    if onDisk != text { try DurableFile.replace(text, at: path) }
    state.withLock { $0.written[path] = text }
  }

  func publishStatus(entries: [CertificateName: Entry], problems: [String: String]) {
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

}
