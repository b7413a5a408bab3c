extension RuntimeAPI {
  /// Largest `add map` request sent at once: HAProxy reads a whole command, payload included, into one
  /// buffer (`tune.bufsize`, 16 kB by default) and drops a larger one without a word.
  static let mapPayloadLimit = 15_000

  /// Replaces everything map `path` holds with `entries`, atomically: a new version is prepared, filled
  /// and committed (`prepare map`, `add map @v` with a payload, `commit map @v`), so a request sees
  /// either the old entries or the new ones, never a mix. The map must be loaded by the running
  /// configuration. A pending version is cleared when a step fails.
  ///
  /// Keys and values must be printable ASCII without spaces or `;`, and a key cannot start with `#`
  /// (a comment in a map file); anything else is refused before a byte is sent.
  ///
  /// Each request goes on a connection of its own (a payload does not fit the interactive mode's prompts).
  ///
  /// - Throws: ``HAProxyError/Code/invalidCommand`` for a bad path, key or value;
  ///   ``HAProxyError/Code/unexpectedReply`` when HAProxy refuses a step.
  public func replaceMap(_ path: String, entries: [(key: String, value: String)]) async throws {
    try Self.checkMapPath(path)
    for entry in entries {
      try Self.checkMapWord(entry.key, "key")
      try Self.checkMapWord(entry.value, "value")
    }
    let prepare = "prepare map \(path)"
    let prepared = try await UnixSocketClient.request(prepare, socketPath: socketPath, timeout: timeout)
    guard let version = Self.preparedVersion(prepared) else {
      throw HAProxyError(
        .unexpectedReply, "HAProxy did not prepare a new map version", command: prepare, reply: prepared)
    }
    do {
      for payload in Self.mapPayloads(entries) {
        let command = "add map @\(version) \(path) <<\n" + payload
        let reply = try await UnixSocketClient.request(command, socketPath: socketPath, timeout: timeout)
        // Success is one empty line; an empty reply means HAProxy dropped the request (too large).
        guard reply == "\n" || reply == "\n\n" else {
          throw HAProxyError(
            .unexpectedReply, "HAProxy did not take the map entries", command: "add map @\(version) \(path) <<",
            reply: reply)
        }
      }
      let commit = "commit map @\(version) \(path)"
      let reply = try await UnixSocketClient.request(commit, socketPath: socketPath, timeout: timeout)
      guard reply.trimmingTrailingNewlines().isEmpty, !reply.isEmpty else {
        throw HAProxyError(.unexpectedReply, "HAProxy did not commit the map version", command: commit, reply: reply)
      }
    } catch {
      _ = try? await UnixSocketClient.request(
        "clear map @\(version) \(path)", socketPath: socketPath, timeout: timeout)
      throw error
    }
  }

  /// The entries of map `path` as HAProxy holds them now (its current version), in its order.
  public func showMap(_ path: String) async throws -> [(key: String, value: String)] {
    try Self.checkMapPath(path)
    let reply = try await send("show map \(path)")
    var entries: [(key: String, value: String)] = []
    for line in reply.split(separator: "\n") {
      // `0x55eb073ef100 key value`
      let words = line.split(separator: " ", maxSplits: 2)
      guard words.count == 3, words[0].hasPrefix("0x") else {
        throw HAProxyError(.unexpectedReply, "unexpected line in the map", command: "show map \(path)", reply: reply)
      }
      entries.append((String(words[1]), String(words[2])))
    }
    return entries
  }

  /// `New version created: 3` → 3.
  static func preparedVersion(_ reply: String) -> Int? {
    let prefix = "New version created: "
    let text = reply.trimmingTrailingNewlines()
    guard text.hasPrefix(prefix) else { return nil }
    return Int(text.dropFirst(prefix.count))
  }

  /// The payloads of `add map` requests: `key value` lines, each request under ``mapPayloadLimit``.
  static func mapPayloads(_ entries: [(key: String, value: String)]) -> [String] {
    var payloads: [String] = []
    var current = ""
    for entry in entries {
      let line = "\(entry.key) \(entry.value)\n"
      if !current.isEmpty && current.utf8.count + line.utf8.count > mapPayloadLimit - 1024 {
        payloads.append(current)
        current = ""
      }
      current += line
    }
    if !current.isEmpty { payloads.append(current) }
    return payloads
  }

  /// Refuses a map path HAProxy could not name in a command: absolute, printable ASCII, no space or `;`.
  static func checkMapPath(_ path: String) throws {
    guard path.hasPrefix("/") else {
      throw HAProxyError(.invalidCommand, "map path '\(CommandValidation.escaped(path))' is not absolute")
    }
    try checkMapWord(path, "path")
  }

  /// Refuses a key, value or path that could end a line, a word or a command, or be read as a comment.
  static func checkMapWord(_ word: String, _ kind: String) throws {
    let valid =
      !word.isEmpty && !word.hasPrefix("#") && word.utf8.count <= 1024
      && word.unicodeScalars.allSatisfy { (0x21...0x7e).contains($0.value) && $0 != ";" }
    guard valid else {
      throw HAProxyError(
        .invalidCommand,
        "map \(kind) '\(CommandValidation.escaped(word))' is empty, too long, starts with '#' or contains a space, ';' or a non-printable character"
      )
    }
  }
}
