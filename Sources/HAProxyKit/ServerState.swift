/// One server as `show servers state` reports it.
///
/// Rows are parsed by the names in the header line, so columns that later versions add are kept in
/// ``fields`` without breaking anything.
public struct ServerState: Sendable, Hashable {
  /// A server's operational state (`srv_op_state`), as health checks and tracking see it.
  public enum OperationalState: Int, Sendable, Hashable {
    /// Down, or in maintenance.
    case stopped = 0
    /// Coming up (slow start).
    case starting = 1
    /// Up.
    case running = 2
    /// Going down (soft stop).
    case stopping = 3
  }

  /// Why a server is in maintenance or drain (`srv_admin_state`); several flags can be set at once.
  public struct AdminFlags: OptionSet, Sendable, Hashable {
    public let rawValue: Int

    public init(rawValue: Int) {
      self.rawValue = rawValue
    }

    /// Put in maintenance by the CLI or the stats page (`state maint`); dynamic servers start with it.
    public static let forcedMaint = AdminFlags(rawValue: 0x01)
    /// In maintenance because a tracked server is.
    public static let inheritedMaint = AdminFlags(rawValue: 0x02)
    /// Declared `disabled` in the configuration.
    public static let configMaint = AdminFlags(rawValue: 0x04)
    /// Drained by the CLI (`state drain`).
    public static let forcedDrain = AdminFlags(rawValue: 0x08)
    /// Drained because a tracked server is.
    public static let inheritedDrain = AdminFlags(rawValue: 0x10)
    /// In maintenance because its name could not be resolved.
    public static let resolutionMaint = AdminFlags(rawValue: 0x20)
    /// In maintenance because its host name is not resolved (yet).
    public static let hostnameMaint = AdminFlags(rawValue: 0x40)

    static let anyMaint: AdminFlags = [.forcedMaint, .inheritedMaint, .configMaint, .resolutionMaint, .hostnameMaint]
    static let anyDrain: AdminFlags = [.forcedDrain, .inheritedDrain]
  }

  /// The backend's name.
  public var backend: String
  /// The server's name.
  public var server: String
  /// The server's numeric id in its backend (`srv_id`); commands can name the server `backend/#id`.
  public var id: Int
  /// The server's address; nil when HAProxy has none (`-`), such as for an unresolved host name.
  public var address: String?
  /// The server's port (0 when none was given).
  public var port: Int
  /// Up, down, or in between.
  public var operationalState: OperationalState?
  /// Maintenance and drain flags.
  public var adminFlags: AdminFlags
  /// The weight set by the configuration or `set weight` (`srv_uweight`).
  public var userWeight: Int
  /// The health check's health counter (`srv_check_health`): from 0 to rise+fall-1, up from rise.
  public var checkHealth: Int
  /// The health check's state flags (`srv_check_state`): 0x2 configured, 0x4 enabled, 0x8 paused.
  public var checkState: Int
  /// The host name the server was declared with; nil for an address (`-`).
  public var fqdn: String?
  /// The backend's numeric id (`be_id`).
  public var backendID: Int?
  /// Whether the server speaks TLS to its backend (`srv_use_ssl`); nil when HAProxy prints no such column.
  public var usesTLS: Bool?
  private var row: TableRow

  /// Every column by its header name, as HAProxy printed it. Built on each use: the properties above are
  /// parsed once, so a caller that reads every row of a large reply should prefer them.
  public var fields: [String: String] { row.fields }

  /// Whether any maintenance flag is set: the server takes no traffic.
  public var isMaint: Bool { !adminFlags.isDisjoint(with: AdminFlags.anyMaint) }
  /// Whether a drain flag is set: the server takes no new traffic but keeps its connections.
  public var isDrain: Bool { !adminFlags.isDisjoint(with: AdminFlags.anyDrain) }
  /// Whether a health check is configured and enabled.
  public var isCheckEnabled: Bool { checkState & 0x6 == 0x6 }

  /// Parses the reply to `show servers state`: a format version line `1`, a header line starting with
  /// `# be_id`, and one line per server.
  ///
  /// - Throws: ``HAProxyError/Code/unexpectedReply`` for another format version, an error message such as
  ///   `Can't find backend.`, or a row that does not fit the header.
  public static func parse(_ reply: String) throws -> [ServerState] {
    var lines = reply.asciiLines()[...]
    guard lines.first?.trimmedWhitespace == "1" else {
      throw HAProxyError(.unexpectedReply, "show servers state: expected format version 1 on the first line")
    }
    lines = lines.dropFirst()
    guard let header = lines.first, header.hasPrefix("# ") else {
      throw HAProxyError(.unexpectedReply, "show servers state: expected a header line starting with '# '")
    }
    let names = header.dropFirst(2).asciiFields().map(String.init)
    let columns = Dictionary(names.enumerated().map { ($1, $0) }, uniquingKeysWith: { first, _ in first })
    // Looked up once, not once per row: a reply can hold tens of thousands of rows.
    let backendColumn = columns["be_name"]
    let serverColumn = columns["srv_name"]
    let idColumn = columns["srv_id"]
    let addressColumn = columns["srv_addr"]
    let portColumn = columns["srv_port"]
    let fqdnColumn = columns["srv_fqdn"]
    let operationalColumn = columns["srv_op_state"]
    let adminColumn = columns["srv_admin_state"]
    let weightColumn = columns["srv_uweight"]
    let healthColumn = columns["srv_check_health"]
    let checkStateColumn = columns["srv_check_state"]
    let backendIDColumn = columns["be_id"]
    let tlsColumn = columns["srv_use_ssl"]
    return try lines.dropFirst().map { line in
      let values = line.asciiFields()
      guard values.count >= names.count else {
        throw HAProxyError(
          .unexpectedReply, "show servers state: row has \(values.count) columns, header \(names.count): \(line)")
      }
      func required(_ column: Int?, _ name: String) throws -> Substring {
        guard let column else {
          throw HAProxyError(.unexpectedReply, "show servers state: no column \(name)")
        }
        return values[column]
      }
      func optional(_ column: Int?) -> String? {
        column.map { values[$0] }.flatMap { $0 == "-" ? nil : String($0) }
      }
      func number(_ column: Int?, _ name: String) throws -> Int {
        guard let value = Int(try required(column, name)) else {
          throw HAProxyError(.unexpectedReply, "show servers state: \(name) is not a number in \(line)")
        }
        return value
      }
      return ServerState(
        backend: String(try required(backendColumn, "be_name")),
        server: String(try required(serverColumn, "srv_name")),
        id: try number(idColumn, "srv_id"),
        address: optional(addressColumn),
        port: try number(portColumn, "srv_port"),
        operationalState: OperationalState(rawValue: try number(operationalColumn, "srv_op_state")),
        adminFlags: AdminFlags(rawValue: try number(adminColumn, "srv_admin_state")),
        userWeight: try number(weightColumn, "srv_uweight"),
        checkHealth: try number(healthColumn, "srv_check_health"),
        checkState: try number(checkStateColumn, "srv_check_state"),
        fqdn: optional(fqdnColumn),
        backendID: backendIDColumn.flatMap { Int(values[$0]) },
        usesTLS: tlsColumn.flatMap { Int(values[$0]) }.map { $0 != 0 },
        row: TableRow(names: names, line: String(line))
      )
    }
  }
}
