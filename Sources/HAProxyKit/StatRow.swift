/// One line of `show stat`: a frontend, a backend or a server, with every column by its header name.
///
/// The typed accessors cover what a controller looks at; everything else is in ``fields`` (see the
/// "Statistics and monitoring" section of HAProxy's management guide for the columns). Empty columns are
/// absent from ``fields``.
public struct StatRow: Sendable, Hashable {
  /// Every non-empty column by its header name (`pxname`, `svname`, `scur`, `status`, …).
  public var fields: [String: String]

  /// Creates a row from its columns.
  public init(fields: [String: String]) {
    self.fields = fields
  }

  /// A column's value; nil if it is empty or unknown.
  public subscript(_ name: String) -> String? { fields[name] }

  /// The proxy (frontend or backend) name (`pxname`).
  public var proxyName: String { fields["pxname"] ?? "" }
  /// The server name, or `FRONTEND` / `BACKEND` for the proxy's own line (`svname`).
  public var serviceName: String { fields["svname"] ?? "" }
  /// Whether this is a frontend's line.
  public var isFrontend: Bool { serviceName == "FRONTEND" }
  /// Whether this is a backend's line.
  public var isBackend: Bool { serviceName == "BACKEND" }
  /// Whether this is a server's line.
  public var isServer: Bool { !isFrontend && !isBackend }
  /// Current sessions (`scur`).
  public var currentSessions: Int? { integer("scur") }
  /// Total sessions since start (`stot`).
  public var totalSessions: Int? { integer("stot") }
  /// `UP`, `DOWN`, `MAINT`, `DRAIN`, `no check`, `OPEN`, … (`status`).
  public var status: String? { fields["status"] }
  /// Effective weight (`weight`).
  public var weight: Int? { integer("weight") }
  /// HTTP responses with a 5xx status (`hrsp_5xx`).
  public var http5xxResponses: Int? { integer("hrsp_5xx") }
  /// HTTP responses with a 2xx status (`hrsp_2xx`).
  public var http2xxResponses: Int? { integer("hrsp_2xx") }

  /// A column as a number; nil if empty or not a number.
  public func integer(_ name: String) -> Int? { fields[name].flatMap { Int($0) } }

  /// Parses the CSV reply to `show stat`: a header line `# pxname,svname,…` and one line per proxy or server.
  ///
  /// - Throws: ``HAProxyError/Code/unexpectedReply`` if the header is missing.
  public static func parse(_ reply: String) throws -> [StatRow] {
    let lines = reply.nonEmptyLines()
    guard let header = lines.first, header.hasPrefix("# ") else {
      throw HAProxyError(.unexpectedReply, "show stat: expected a CSV header line starting with '# '")
    }
    let names = csvFields(header.dropFirst(2))
    return lines.dropFirst().map { line in
      var fields: [String: String] = [:]
      for (name, value) in zip(names, csvFields(line)) where !name.isEmpty && !value.isEmpty {
        fields[name] = value
      }
      return StatRow(fields: fields)
    }
  }

  /// The comma-separated fields of a CSV line; double quotes protect commas, `""` is a quote.
  static func csvFields(_ line: Substring) -> [String] {
    var fields: [String] = []
    var current = ""
    var quoted = false
    var index = line.startIndex
    while index < line.endIndex {
      let character = line[index]
      if quoted {
        if character == "\"" {
          let next = line.index(after: index)
          if next < line.endIndex && line[next] == "\"" {
            current.append("\"")
            index = next
          } else {
            quoted = false
          }
        } else {
          current.append(character)
        }
      } else if character == "\"" {
        quoted = true
      } else if character == "," {
        fields.append(current)
        current = ""
      } else {
        current.append(character)
      }
      index = line.index(after: index)
    }
    fields.append(current)
    return fields
  }
}
