/// A certificate as a node should serve it: the file HAProxy loads it from, what it holds, and the
/// host names (SNI filters) of its crt-list line.
///
/// ``pem`` holds the private key: it is never part of ``description``, and nothing that logs a step
/// prints it.
public struct ServedCertificate: Sendable, Hashable, CustomStringConvertible {
  /// The certificate's name (validated by the caller: letters, digits, `-`, `_`, `.`).
  public let name: String
  /// The file HAProxy loads it from; also the name the Runtime API knows it by.
  public let path: String
  /// SHA-1 of the leaf certificate (DER) in upper-case hex, as `show ssl cert <path>` prints it.
  public let sha1Fingerprint: String
  /// The host names its crt-list line serves it for, sorted; empty for the default certificate.
  public let sniFilters: [String]
  /// The chain, then the key, in PEM, without an empty line.
  public let pem: String

  /// Creates a served certificate.
  public init(name: String, path: String, sha1Fingerprint: String, sniFilters: [String], pem: String) {
    self.name = name
    self.path = path
    self.sha1Fingerprint = sha1Fingerprint.uppercased()
    self.sniFilters = sniFilters.sorted()
    self.pem = pem
  }

  /// `shop (A1B2…) for shop.example.com`: never the key.
  public var description: String {
    "\(name) (\(sha1Fingerprint.prefix(16))…)" + (sniFilters.isEmpty ? "" : " for \(sniFilters.joined(separator: " "))")
  }

  /// Its line in the crt-list file: the path, then its SNI filters.
  public var crtListLine: String { ([path] + sniFilters).joined(separator: " ") }
}

/// What HAProxy holds now, as its Runtime API says.
public struct ObservedTLS: Sendable, Hashable {
  /// Loaded certificate files and the SHA-1 of each leaf (upper-case hex; `nil` when not asked).
  public var loaded: [String: String?]
  /// The lines of the crt-list: certificate path → its SNI filters.
  public var listed: [String: [String]]

  /// Creates an observation.
  public init(loaded: [String: String?] = [:], listed: [String: [String]] = [:]) {
    self.loaded = loaded
    self.listed = listed
  }
}

/// One Runtime API step of bringing HAProxy's certificates to what etcd holds.
public enum TLSStep: Sendable, Hashable, CustomStringConvertible {
  /// Load a new certificate file or replace what a loaded one holds (`new ssl cert` when absent, `set
  /// ssl cert`, `commit ssl cert`).
  case install(ServedCertificate)
  /// Add the certificate's line to the crt-list (`add ssl crt-list`).
  case list(ServedCertificate)
  /// Remove a certificate's line from the crt-list (`del ssl crt-list`).
  case unlist(path: String)
  /// Unload a certificate file that no line uses any more (`del ssl cert`).
  case delete(path: String)

  /// For logs: names and paths, never the key.
  public var description: String {
    switch self {
    case .install(let certificate): "install \(certificate)"
    case .list(let certificate): "list \(certificate)"
    case .unlist(let path): "unlist \(path)"
    case .delete(let path): "delete \(path)"
    }
  }
}

/// Plans the steps that bring HAProxy's certificates to the desired ones. Pure.
///
/// The default certificate's file is named by the configuration (`bind … ssl crt <default>`): it is only
/// ever installed, never listed or deleted. Every other certificate lives in `managedDirectory` and has
/// one crt-list line. Loaded files outside that directory are left alone, and so are the paths in `keep`:
/// certificates whose record in etcd is refused while nothing valid of that name has been seen, so the
/// files an earlier run wrote go on serving.
public enum TLSPlanner {
  /// The steps, in a safe order: certificates are installed before a line names them, lines change
  /// before certificates are unloaded, and a changed line is removed before it is added again.
  public static func plan(
    desired: [ServedCertificate],
    defaultCertificate: ServedCertificate?,
    observed: ObservedTLS,
    managedDirectory: String,
    keep: Set<String> = []
  ) -> [TLSStep] {
    var installs: [TLSStep] = []
    var lists: [TLSStep] = []
    var unlists: [TLSStep] = []
    var deletes: [TLSStep] = []
    if let defaultCertificate, observed.loaded[defaultCertificate.path] != .some(defaultCertificate.sha1Fingerprint) {
      installs.append(.install(defaultCertificate))
    }
    let directory = managedDirectory.hasSuffix("/") ? managedDirectory : managedDirectory + "/"
    var wanted: Set<String> = keep
    for certificate in desired.sorted(by: { $0.path < $1.path }) {
      wanted.insert(certificate.path)
      if observed.loaded[certificate.path] != .some(certificate.sha1Fingerprint) {
        installs.append(.install(certificate))
      }
      switch observed.listed[certificate.path] {
      case .none:
        lists.append(.list(certificate))
      case .some(let filters) where filters.sorted() != certificate.sniFilters:
        unlists.append(.unlist(path: certificate.path))
        lists.append(.list(certificate))
      case .some:
        break
      }
    }
    for path in observed.listed.keys.sorted() where path.hasPrefix(directory) && !wanted.contains(path) {
      unlists.append(.unlist(path: path))
    }
    for path in observed.loaded.keys.sorted() where path.hasPrefix(directory) && !wanted.contains(path) {
      deletes.append(.delete(path: path))
    }
    // A changed line comes out before it goes in again; new lines after every removal.
    return installs + unlists + lists + deletes
  }

  /// The crt-list file that serves `desired` (and the `kept` lines as they are), sorted by path: what a
  /// reload or restart loads, the same as the Runtime API made live.
  public static func crtListText(_ desired: [ServedCertificate], kept: [String: [String]] = [:]) -> String {
    var lines: [String: String] = [:]
    for (path, filters) in kept { lines[path] = ([path] + filters.sorted()).joined(separator: " ") }
    for certificate in desired { lines[certificate.path] = certificate.crtListLine }
    return lines.keys.sorted().map { lines[$0]! + "\n" }.joined()
  }
}
