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
  private var row: TableRow

  /// Every column by its header name, as HAProxy printed it.
  public var fields: [String: String] { row.fields }

  /// Whether the server has no connection at all, which `del server` requires.
  public var isIdle: Bool { used == 0 && idle == 0 }

  /// Parses the reply to `show servers conn`: a header line `# bkname/svname bkid/svid addr port - …` and
  /// one line per server. Rows of servers that never pooled a connection lack the per-thread columns at the
  /// end; the columns are matched by position, so they are simply absent.
  ///
  /// - Throws: ``HAProxyError/Code/unexpectedReply`` for an error message such as `Can't find backend.`,
  ///   or a row without `used_cur` or `idle_cur`.
  public static func parse(_ reply: String) throws -> [ServerConnections] {
    let lines = reply.asciiLines()
    guard let header = lines.first, header.hasPrefix("# ") else {
      throw HAProxyError(.unexpectedReply, "show servers conn: expected a header line starting with '# '")
    }
    let names = header.dropFirst(2).asciiFields().map(String.init)
    let columns = Dictionary(names.enumerated().map { ($1, $0) }, uniquingKeysWith: { first, _ in first })
    return try lines.dropFirst().map { line in
      let values = line.asciiFields()
      func value(_ name: String) -> Substring? {
        columns[name].flatMap { $0 < values.count ? values[$0] : nil }
      }
      let path = (value("bkname/svname") ?? "").split(separator: "/", maxSplits: 1)
      guard path.count == 2, let used = value("used_cur").flatMap({ Int($0) }),
        let idle = value("idle_cur").flatMap({ Int($0) })
      else {
        throw HAProxyError(.unexpectedReply, "show servers conn: cannot read row: \(line)")
      }
      return ServerConnections(
        backend: String(path[0]), server: String(path[1]), used: used, idle: idle,
        row: TableRow(names: names, line: String(line)))
    }
  }
}
