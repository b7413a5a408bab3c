import ArgumentParser
import EtcdClient
import Foundation
import SwitchyardCerts
import SwitchyardModel

/// `switchyard cert …`: the certificates the load balancers serve, kept in etcd at `/switchyard/certs/<name>`.
struct CertCommand: AsyncParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "cert",
    abstract: "Add, remove and list the TLS certificates in etcd (/switchyard/certs/<name>).",
    discussion: """
      A certificate is its PEM chain, its private key and the hosts it serves (SNI). The key is sealed with \
      the cluster key (AES-256-GCM, made by `cert keygen`), which only load-balancer nodes and operators \
      hold: a reader of etcd, or an etcd backup, gets no private key. Everything is validated before it is \
      written: the chain, the key matching the leaf, the dates, and each host covered by the certificate.
      """,
    subcommands: [CertKeygenCommand.self, CertAddCommand.self, CertRemoveCommand.self, CertListCommand.self]
  )
}

/// `switchyard cert keygen --out FILE`.
struct CertKeygenCommand: ParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "keygen",
    abstract: "Write a new cluster key (base64 of 32 random bytes) to a new file, mode 0600.",
    discussion: """
      Give the file to every load-balancer node and keep a copy where operators add certificates; a \
      certificate sealed with one cluster key does not open with another. An existing file is never overwritten.
      """
  )

  @Option(name: .customLong("out"), help: "The file to create.", completion: .file()) var out: String

  func run() throws {
    let key = ClusterKey.generate()
    do {
      try Self.writeNewFile(out, contents: key.fileContents)
    } catch let error as OperatorError {
      FileHandle.standardError.write(Data("error: \(error)\n".utf8))
      throw ExitCode.failure
    }
    print("cluster key \(key.id) written to \(out) (mode 0600)")
  }

  /// Creates `path` with mode 0600 (refusing an existing file, also a symbolic link) and writes `contents`.
  static func writeNewFile(_ path: String, contents: String) throws {
    let descriptor = open(path, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0o600)
    guard descriptor >= 0 else {
      let reason = errno == EEXIST ? "it exists; a cluster key is never overwritten" : String(cString: strerror(errno))
      throw OperatorError("--out: cannot create \(path): \(reason)")
    }
    defer { close(descriptor) }
    let bytes = Array(contents.utf8)
    let written = bytes.withUnsafeBytes { write(descriptor, $0.baseAddress, $0.count) }
    guard written == bytes.count, fsync(descriptor) == 0 else {
      throw OperatorError("--out: cannot write \(path): \(String(cString: strerror(errno)))")
    }
  }
}

/// `switchyard cert add NAME --cert FILE --key FILE [--host H]... --cluster-key FILE`.
struct CertAddCommand: AsyncParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "add",
    abstract: "Validate a certificate and its key, seal the key with the cluster key and write both to etcd.",
    discussion: """
      Adding a name that exists replaces it: that is how a certificate is renewed. Checked first: the chain \
      (leaf first, each next certificate its issuer), the key (EC P-256/P-384 or RSA of 2048 bits or more) \
      matching the leaf, the dates, and each --host covered by a DNS name of the certificate (without --host, \
      the certificate's DNS names). --cert and --key here are the certificate's files; the etcd client's \
      own certificate and key are --etcd-cert and --etcd-key.
      """
  )

  /// The environment variable that names the cluster key file when `--cluster-key` is not given.
  static let clusterKeyVariable = ClusterKeyFile.variable

  @Argument(help: "The certificate's name: letters, digits, -, _ and . (its key is /switchyard/certs/<name>).")
  var name: String
  @Option(
    name: .customLong("cert"), help: "The PEM chain: the certificate first, then its issuers.", completion: .file())
  var certificateFile: String
  @Option(name: .customLong("key"), help: "The certificate's private key (PEM, unencrypted).", completion: .file())
  var keyFile: String
  @Option(
    name: .customLong("host"),
    help:
      "A host it serves (SNI): shop.example.com or *.example.com. Repeat for more; none: the certificate's DNS names."
  )
  var hosts: [String] = []
  @Option(
    name: .customLong("cluster-key"),
    help: ArgumentHelp("The cluster key file (from `cert keygen`).", discussion: "Default: $\(clusterKeyVariable)."),
    completion: .file())
  var clusterKeyFile: String?
  @OptionGroup var etcd: CertEtcdOptions

  /// What the arguments and files describe, validated, with warnings to print: the bundle and cluster key.
  func prepare(
    environment: [String: String] = ProcessInfo.processInfo.environment, now: Date = Date()
  ) throws -> (bundle: CertificateBundle, clusterKey: ClusterKey, warnings: [String]) {
    let certificateName: CertificateName
    do { certificateName = try CertificateName(validating: name) } catch {
      throw ValidationError("NAME: \(error.reason)")
    }
    var patterns: [HostPattern] = []
    for host in hosts {
      do { patterns.append(try HostPattern(validating: host)) } catch {
        throw ValidationError("--host \"\(RegistrationError.escape(host, limit: 64))\": \(error.reason)")
      }
    }
    guard let (keyPath, flag) = ClusterKeyFile.location(flag: clusterKeyFile, environment: environment) else {
      throw ValidationError("give the cluster key file with --cluster-key or $\(Self.clusterKeyVariable)")
    }
    var warnings: [String] = []
    let clusterKey: ClusterKey
    do { clusterKey = try ClusterKey(fileContents: try readText(keyPath, flag: flag)) } catch let problem
      as CertificateProblem
    {
      throw OperatorError("\(flag) \(keyPath): \(problem.reason)")
    }
    for (path, what) in [(keyPath, "cluster key file"), (keyFile, "key file")] where Self.isReadableByOthers(path) {
      warnings.append("warning: the \(what) \(path) is readable by group or others; chmod 600 it")
    }
    let chain = try readText(certificateFile, flag: "--cert")
    let key = try readText(keyFile, flag: "--key")
    do {
      let bundle = try CertificateBundle.validate(
        name: certificateName, chainPEM: chain, keyPEM: key, hosts: hosts.isEmpty ? nil : patterns, now: now)
      return (bundle, clusterKey, warnings)
    } catch {
      throw OperatorError(error.description)
    }
  }

  /// Writes the sealed record and says what it wrote.
  func execute(client: EtcdClient, now: Date = Date()) async throws -> (lines: [String], warnings: [String]) {
    let (bundle, clusterKey, warnings) = try prepare(now: now)
    let record = bundle.record(sealedWith: clusterKey, source: .manual)
    let written = try await client.put(record.path, value: record.jsonValue(), options: PutOptions(prevKV: true))
    let days = CertificateDates.daysLeft(until: bundle.notAfter, now: now)
    let lines = [
      "certificate \(bundle.name) \(written.prevKV == nil ? "added" : "replaced") at etcd revision "
        + "\(written.header.revision): \(record.path)",
      "  subject \(bundle.subject), issuer \(bundle.issuer), \(bundle.chainBlocks.count) certificate(s) in the chain",
      "  hosts \(bundle.hosts.map(\.text).joined(separator: ","))",
      "  not after \(CertificateDates.text(bundle.notAfter)) (\(days) days left)",
      "  sha256 \(bundle.sha256Fingerprint)",
      "  key sealed with cluster key \(clusterKey.id)",
    ]
    return (lines, warnings)
  }

  func run() async throws {
    let result: (lines: [String], warnings: [String])
    do {
      let options = try etcd.etcdOptions()
      result = try await options.withClient(localCluster: .operator) { client in try await execute(client: client) }
    } catch let error as OperatorError {
      FileHandle.standardError.write(Data("error: \(error)\n".utf8))
      throw ExitCode.failure
    } catch let error as ValidationError {
      FileHandle.standardError.write(Data("error: \(error.message)\n".utf8))
      throw ExitCode.failure
    }
    for warning in result.warnings { FileHandle.standardError.write(Data("\(warning)\n".utf8)) }
    for line in result.lines { print(line) }
  }

  /// Whether the file at `path` has any permission for group or others.
  static func isReadableByOthers(_ path: String) -> Bool {
    guard let attributes = try? FileManager.default.attributesOfItem(atPath: path),
      let mode = attributes[.posixPermissions] as? Int
    else { return false }
    return mode & 0o044 != 0
  }
}

/// `switchyard cert rm NAME`.
struct CertRemoveCommand: OperatorCommand {
  static let configuration = CommandConfiguration(
    commandName: "rm",
    abstract: "Remove a certificate from etcd; the nodes stop serving it.",
    aliases: ["remove"]
  )

  @Argument(help: "The certificate's name.") var name: String
  @OptionGroup var etcd: EtcdOptions

  func validate() throws { _ = try certificateName() }

  /// The name, validated.
  func certificateName() throws -> CertificateName {
    do { return try CertificateName(validating: name) } catch { throw ValidationError("NAME: \(error.reason)") }
  }

  /// Deletes the certificate and says whether there was one.
  func execute(client: EtcdClient) async throws -> [String] {
    let name = try certificateName()
    let deleted = try await client.delete(.key(CertificateRecord.path(for: name)), prevKV: true)
    let revision = deleted.header.revision
    guard let previous = deleted.prevKVs.first else {
      return ["certificate \(name): there was none; nothing removed (etcd revision \(revision))"]
    }
    let summary = CertificateSummary(key: previous.key, value: previous.value, modRevision: previous.modRevision)
    let was =
      if let record = summary.record, summary.problem == nil {
        "for \(record.hosts.map(\.text).joined(separator: ",")), not after \(CertificateDates.text(record.notAfter))"
      } else {
        "an invalid entry (\(summary.problem?.reason ?? "?"))"
      }
    return ["certificate \(name) removed at etcd revision \(revision); it was \(was)"]
  }
}

/// `switchyard cert ls [--json]`.
struct CertListCommand: OperatorCommand {
  static let configuration = CommandConfiguration(
    commandName: "ls",
    abstract: "List the certificates in etcd: hosts, expiry, source, cluster key id, and invalid entries.",
    discussion: "No cluster key is needed: private keys are not opened, and none is ever shown.",
    aliases: ["list"]
  )

  @Flag(help: "Print JSON.") var json = false
  @OptionGroup var etcd: EtcdOptions

  /// The listing, as text lines or one JSON document.
  func execute(client: EtcdClient) async throws -> [String] {
    let listing = try await CertificateListing.read(from: client)
    return json ? [try operatorJSON(listing.document(now: Date()))] : listing.lines(now: Date())
  }
}

/// The text of the file at `path`; errors name `flag` and the path, never the contents.
private func readText(_ path: String, flag: String) throws -> String {
  guard let data = FileManager.default.contents(atPath: path) else {
    throw ValidationError("\(flag): cannot read \(path)")
  }
  guard data.count <= 256 * 1024, let text = String(data: data, encoding: .utf8) else {
    throw ValidationError("\(flag): \(path) is not a PEM or key file (binary, or larger than 256 KiB)")
  }
  return text
}
