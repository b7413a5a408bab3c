/// A certificate as `show ssl cert <path>` describes it. No key material: HAProxy never prints a key.
public struct SSLCertificateInfo: Sendable, Hashable {
  /// The file name HAProxy knows the certificate by.
  public let path: String
  /// The serial number, upper-case hex (`198B868F…`).
  public let serial: String
  /// The end of validity as HAProxy prints it (`Dec 16 15:10:07 2026 GMT`).
  public let notAfter: String
  /// The SHA-1 fingerprint of the leaf certificate (DER), upper-case hex.
  public let sha1Fingerprint: String
  /// The subject as OpenSSL's one-line form (`/CN=a.test`).
  public let subject: String

  /// Creates a description.
  public init(path: String, serial: String, notAfter: String, sha1Fingerprint: String, subject: String) {
    self.path = path
    self.serial = serial
    self.notAfter = notAfter
    self.sha1Fingerprint = sha1Fingerprint
    self.subject = subject
  }
}

/// One line of a crt-list as HAProxy holds it.
public struct CrtListEntry: Sendable, Hashable {
  /// The certificate file the line names.
  public let certificatePath: String
  /// The SNI filters (`a.example.com`, `*.example.com`, `!skip.example.com`); empty: the names in the
  /// certificate.
  public let sniFilters: [String]

  /// Creates an entry.
  public init(certificatePath: String, sniFilters: [String]) {
    self.certificatePath = certificatePath
    self.sniFilters = sniFilters
  }
}

/// Certificates and crt-lists changed at runtime: what a TLS listener serves, without a reload.
///
/// Each command goes on a connection of its own (HAProxy 3.0 runs only the first line of a multi-line
/// request in non-interactive mode; a payload after `<<` is part of its command and ends at an empty
/// line). Replies were checked on HAProxy 2.6.12 and 3.0.11, which answer these commands alike:
/// `new ssl cert` → `New empty certificate store '<path>'!`, `set ssl cert` → `Transaction created for
/// certificate <path>!` (or `updated`, when one is open), `commit ssl cert` → `Committing <path>` then
/// `Success!`, `add ssl crt-list` → `Inserting certificate …` then `Success!`, `del ssl crt-list` → `Entry
/// '<path>' deleted in crtlist '<list>'!`, `del ssl cert` → `Certificate '<path>' deleted!`. Errors are
/// sentences such as `Can't update <path>!` or `certificate … in use, can't be deleted!`.
///
/// HAProxy keeps at most one certificate transaction open at a time: callers serialize installs.
/// The changes live in the running worker only: the files on disk must say the same before a reload.
extension RuntimeAPI {
  /// The certificates HAProxy has loaded (`show ssl cert`), without the line of an open transaction
  /// (`*<path>`).
  public func certificatePaths() async throws -> [String] {
    let command = "show ssl cert"
    let reply = try await send(command)
    return Self.parseCertificatePaths(reply)
  }

  /// What HAProxy serves under `path` (`show ssl cert <path>`): serial, end of validity, SHA-1 fingerprint
  /// and subject; `nil` when HAProxy knows no such certificate.
  public func certificateInfo(path: String) async throws -> SSLCertificateInfo? {
    try Self.checkCertificatePath(path, "certificate")
    let command = "show ssl cert \(path)"
    let reply = try await send(command)
    if reply.contains("Not found") { return nil }
    guard let info = Self.parseCertificateInfo(reply) else {
      throw HAProxyError(.unexpectedReply, "cannot read the certificate's description", command: command, reply: reply)
    }
    return info
  }

  /// Serves `pem` (certificate, chain and private key, PEM) under `path`: `new ssl cert` when HAProxy does
  /// not know `path` yet, then `set ssl cert <path> <<` with the payload and `commit ssl cert`. Every TLS
  /// listener using `path` serves the new certificate from the next handshake on; handshakes in progress
  /// finish with the old one. On any failure the transaction is aborted (`abort ssl cert`) and the old
  /// certificate stays in force.
  ///
  /// A new certificate is not served by any listener until a crt-list names it
  /// (``addCrtListEntry(list:certificatePath:sniFilters:)``).
  ///
  /// - Throws: ``HAProxyError/Code/invalidCommand`` for a bad path or a payload that is empty, not PEM, or
  ///   holds an empty line (which would end the payload early); ``HAProxyError/Code/unexpectedReply`` when
  ///   HAProxy refuses a step. No error carries the payload.
  public func installCertificate(path: String, pem: String) async throws {
    try Self.checkCertificatePath(path, "certificate")
    try Self.checkPEMPayload(pem)
    if try await !certificatePaths().contains(path) {
      let command = "new ssl cert \(path)"
      let reply = try await send(command)
      // A certificate created meanwhile (`already exists`) is as good as a new one.
      guard reply.hasPrefix("New empty certificate store") || reply.contains("already exists") else {
        throw HAProxyError(.unexpectedReply, "HAProxy did not create the certificate", command: command, reply: reply)
      }
    }
    let setCommand = "set ssl cert \(path) <<"
    do {
      let payload = pem.hasSuffix("\n") ? pem : pem + "\n"
      let reply = try await UnixSocketClient.request(
        setCommand + "\n" + payload, socketPath: socketPath, timeout: timeout)
      guard reply.hasPrefix("Transaction created") || reply.hasPrefix("Transaction updated") else {
        throw HAProxyError(
          .unexpectedReply, "HAProxy did not take the certificate for \(path)", command: setCommand,
          reply: reply)
      }
      let commit = "commit ssl cert \(path)"
      let committed = try await send(commit)
      guard committed.contains("Success!") else {
        throw HAProxyError(
          .unexpectedReply, "HAProxy did not commit the certificate \(path)", command: commit, reply: committed)
      }
    } catch {
      _ = try? await send("abort ssl cert \(path)")
      throw error
    }
  }

  /// Removes the certificate `path` from HAProxy (`del ssl cert`). HAProxy refuses while a crt-list still
  /// names it: delete the crt-list entry first.
  public func deleteCertificate(path: String) async throws {
    try Self.checkCertificatePath(path, "certificate")
    let command = "del ssl cert \(path)"
    let reply = try await send(command)
    guard reply.hasPrefix("Certificate '") && reply.contains("' deleted!") else {
      throw HAProxyError(.unexpectedReply, "HAProxy did not delete the certificate", command: command, reply: reply)
    }
  }

  /// The entries of crt-list `list` in their order (`show ssl crt-list -n <list>`, which 2.6 and 3.0 both
  /// answer with `<path>:<line> [options] sni…` lines).
  public func crtListEntries(list: String) async throws -> [CrtListEntry] {
    try Self.checkCertificatePath(list, "crt-list")
    let command = "show ssl crt-list -n \(list)"
    let reply = try await send(command)
    guard let entries = Self.parseCrtList(reply) else {
      throw HAProxyError(.unexpectedReply, "cannot read the crt-list", command: command, reply: reply)
    }
    return entries
  }

  /// Adds a line naming `certificatePath` (already loaded, see ``installCertificate(path:pem:)``) to
  /// crt-list `list`, serving it for `sniFilters` (empty: the names in the certificate). HAProxy adds it to
  /// every listener that uses the list.
  ///
  /// - Throws: ``HAProxyError/Code/invalidCommand`` for a bad path or filter (filters are DNS names, `*.`
  ///   wildcards or a `!` exclusion of either); ``HAProxyError/Code/unexpectedReply`` when HAProxy refuses.
  public func addCrtListEntry(list: String, certificatePath: String, sniFilters: [String]) async throws {
    try Self.checkCertificatePath(list, "crt-list")
    try Self.checkCertificatePath(certificatePath, "certificate")
    for filter in sniFilters { try Self.checkSNIFilter(filter) }
    let command = "add ssl crt-list \(list) <<"
    let line = ([certificatePath] + sniFilters).joined(separator: " ")
    let reply = try await UnixSocketClient.request(
      command + "\n" + line + "\n", socketPath: socketPath, timeout: timeout)
    guard reply.contains("Success!") else {
      throw HAProxyError(.unexpectedReply, "HAProxy did not add the crt-list entry", command: command, reply: reply)
    }
  }

  /// Removes every line of crt-list `list` that names `certificatePath` (`del ssl crt-list`).
  public func deleteCrtListEntry(list: String, certificatePath: String) async throws {
    try Self.checkCertificatePath(list, "crt-list")
    try Self.checkCertificatePath(certificatePath, "certificate")
    let command = "del ssl crt-list \(list) \(certificatePath)"
    let reply = try await send(command)
    guard reply.hasPrefix("Entry '") && reply.contains("deleted in crtlist") else {
      throw HAProxyError(.unexpectedReply, "HAProxy did not delete the crt-list entry", command: command, reply: reply)
    }
  }

  // MARK: - Parsing

  /// `show ssl cert`: `# transaction`, `*<path>` lines, `# filename`, then one path a line.
  static func parseCertificatePaths(_ reply: String) -> [String] {
    reply.split(separator: "\n").compactMap { line in
      line.hasPrefix("#") || line.hasPrefix("*") || line.isEmpty ? nil : String(line)
    }
  }

  /// `show ssl cert <path>`: `Key: value` lines.
  static func parseCertificateInfo(_ reply: String) -> SSLCertificateInfo? {
    var fields: [String: String] = [:]
    for line in reply.split(separator: "\n") {
      guard let colon = line.firstIndex(of: ":") else { continue }
      let key = String(line[..<colon])
      guard fields[key] == nil else { continue }  // The first block is the leaf; chain blocks follow.
      fields[key] = String(line[line.index(after: colon)...]).trimmingCharacters(in: " ")
    }
    guard let path = fields["Filename"], let serial = fields["Serial"], let notAfter = fields["notAfter"],
      let sha1 = fields["SHA1 FingerPrint"], let subject = fields["Subject"]
    else { return nil }
    return SSLCertificateInfo(
      path: path.hasPrefix("*") ? String(path.dropFirst()) : path, serial: serial, notAfter: notAfter,
      sha1Fingerprint: sha1, subject: subject)
  }

  /// `show ssl crt-list -n <list>`: `# <list>`, then `<path>:<line> [options] sni…` lines; `nil` when a
  /// line does not look like one.
  static func parseCrtList(_ reply: String) -> [CrtListEntry]? {
    var entries: [CrtListEntry] = []
    for line in reply.split(separator: "\n") where !line.hasPrefix("#") {
      var words = line.split(separator: " ")
      guard !words.isEmpty else { continue }
      var path = words.removeFirst()
      if let colon = path.lastIndex(of: ":"), path[path.index(after: colon)...].allSatisfy(\.isNumber),
        colon != path.index(before: path.endIndex)
      {
        path = path[..<colon]
      }
      guard path.hasPrefix("/") else { return nil }
      if words.first?.hasPrefix("[") == true {
        guard let close = words.firstIndex(where: { $0.hasSuffix("]") }) else { return nil }
        words.removeFirst(close + 1)
      }
      entries.append(CrtListEntry(certificatePath: String(path), sniFilters: words.map(String.init)))
    }
    return entries
  }

  // MARK: - Validation

  /// Longest accepted certificate or crt-list path.
  static let maxCertificatePathLength = 1024

  /// Refuses a path that is not absolute or holds anything but letters, digits and `/ . _ - + @ , =`.
  static func checkCertificatePath(_ path: String, _ kind: String) throws {
    let valid =
      path.hasPrefix("/") && path.utf8.count <= maxCertificatePathLength && !path.contains("/../")
      && !path.hasSuffix("/..")
      && path.unicodeScalars.allSatisfy { scalar in
        switch scalar {
        case "a"..."z", "A"..."Z", "0"..."9", "/", ".", "_", "-", "+", "@", ",", "=": true
        default: false
        }
      }
    guard valid else {
      throw HAProxyError(
        .invalidCommand,
        "\(kind) path '\(CommandValidation.escaped(path))' is not an absolute path of letters, digits and / . _ - + @ , ="
      )
    }
  }

  /// Refuses an SNI filter that is not a DNS name, a `*.` wildcard, or `!` and one of those.
  static func checkSNIFilter(_ filter: String) throws {
    var name = Substring(filter)
    if name.hasPrefix("!") { name = name.dropFirst() }
    if name.hasPrefix("*.") { name = name.dropFirst(2) }
    let labels = name.split(separator: ".", omittingEmptySubsequences: false)
    let valid =
      !name.isEmpty && name.utf8.count <= 253
      && labels.allSatisfy { label in
        (1...63).contains(label.utf8.count) && !label.hasPrefix("-") && !label.hasSuffix("-")
          && label.unicodeScalars.allSatisfy { scalar in
            switch scalar {
            case "a"..."z", "A"..."Z", "0"..."9", "-": true
            default: false
            }
          }
      }
    guard valid else {
      throw HAProxyError(
        .invalidCommand, "SNI filter '\(CommandValidation.escaped(filter))' is not a DNS name or a *. wildcard")
    }
  }

  /// Refuses a payload HAProxy could misread: empty, not PEM, with an empty line (which ends the payload,
  /// and the rest would run as commands), or with a character outside printable ASCII and the line break.
  /// The message never quotes the payload: it holds a private key.
  static func checkPEMPayload(_ pem: String) throws {
    let text = pem.replacingOccurrences(of: "\r\n", with: "\n")
    guard text == pem else {
      throw HAProxyError(.invalidCommand, "the PEM payload has CRLF line ends; use LF only")
    }
    guard text.hasPrefix("-----BEGIN "), text.contains("-----END ") else {
      throw HAProxyError(.invalidCommand, "the PEM payload does not start with a -----BEGIN line")
    }
    let body = text.hasSuffix("\n") ? String(text.dropLast()) : text
    guard !body.contains("\n\n") else {
      throw HAProxyError(.invalidCommand, "the PEM payload has an empty line, which would end it early")
    }
    guard body.unicodeScalars.allSatisfy({ (0x20...0x7e).contains($0.value) || $0 == "\n" }) else {
      throw HAProxyError(.invalidCommand, "the PEM payload holds a character outside printable ASCII")
    }
    guard body.utf8.count <= pemPayloadLimit else {
      throw HAProxyError(
        .invalidCommand, "the PEM payload is \(body.utf8.count) bytes; at most \(pemPayloadLimit) fit HAProxy's buffer")
    }
  }

  /// Largest PEM payload sent: HAProxy reads a command and its payload into one buffer (`tune.bufsize`,
  /// 16 kB by default).
  static let pemPayloadLimit = 15_000
}

extension String {
  fileprivate func trimmingCharacters(in character: Character) -> String {
    var text = Substring(self)
    while text.first == character { text = text.dropFirst() }
    while text.last == character { text = text.dropLast() }
    return String(text)
  }
}
