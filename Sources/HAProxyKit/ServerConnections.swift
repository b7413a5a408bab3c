/// One server's connections as `show servers conn <backend>` reports them.
public struct ServerConnections: Sendable, Hashable {
  /// The backend's name.
  public var backend: String
  /// The server's name.
  public var server: String
  /// Connections in use by a request (`used_cur`).
  public var used: Int
  /// Idle connections kept for reuse (`idle_cur`).
  public var idle: Int
  /// Every column by its header name, as HAProxy printed it.
  public var fields: [String: String]

  /// Whether the server has no connection at all, which `del server` requires.
  public var isIdle: Bool { used == 0 && idle == 0 }

  /// Parses the reply to `show servers conn`: a header line `# bkname/svname bkid/svid addr port - …` and
  /// one line per server. Rows of servers that never pooled a connection lack the per-thread columns at the
  /// end; the columns are matched by position, so they are simply absent.
  ///
  /// - Throws: ``HAProxyError/Code/unexpectedReply`` for an error message such as `Can't find backend.`,
  ///   or a row without `used_cur` or `idle_cur`.
  public static func parse(_ reply: String) throws -> [ServerConnections] {
    let lines = reply.nonEmptyLines()
    guard let header = lines.first, header.hasPrefix("# ") else {
      throw HAProxyError(.unexpectedReply, "show servers conn: expected a header line starting with '# '")
    }
    let names = header.dropFirst(2).whitespaceSeparated().map(String.init)
    return try lines.dropFirst().map { line in
      let values = line.whitespaceSeparated().map(String.init)
      let fields = Dictionary(zip(names, values), uniquingKeysWith: { first, _ in first })
      let path = (fields["bkname/svname"] ?? "").split(separator: "/", maxSplits: 1)
      guard path.count == 2, let used = fields["used_cur"].flatMap({ Int($0) }),
        let idle = fields["idle_cur"].flatMap({ Int($0) })
      else {
        throw HAProxyError(.unexpectedReply, "show servers conn: cannot read row: \(line)")
      }
      return ServerConnections(
        backend: String(path[0]), server: String(path[1]), used: used, idle: idle, fields: fields)
    }
  }
}
