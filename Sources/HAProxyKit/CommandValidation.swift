import AddressText

/// Checks for everything that goes into a CLI command, so that no value can end one command and start
/// another (`;`, a newline) or smuggle in a comment (`#`).
enum CommandValidation {
  /// Refuses an empty command and any character but printable ASCII (space included), or `;`.
  static func checkCommand(_ command: String) throws {
    guard !command.isEmpty else { throw HAProxyError(.invalidCommand, "empty command") }
    for scalar in command.unicodeScalars where !(0x20...0x7e).contains(scalar.value) || scalar == ";" {
      let what = scalar == ";" ? "';', which chains commands" : "character U+\(hex(scalar.value))"
      throw HAProxyError(.invalidCommand, "command contains \(what); refusing to send it", command: escaped(command))
    }
  }

  /// Refuses names that HAProxy itself would not accept for a proxy or server: only letters, digits, `-`,
  /// `_`, `.` and `:`.
  static func checkName(_ name: String, _ kind: String) throws {
    let valid =
      !name.isEmpty
      && name.unicodeScalars.allSatisfy { scalar in
        switch scalar {
        case "a"..."z", "A"..."Z", "0"..."9", "-", "_", ".", ":": true
        default: false
        }
      }
    guard valid else {
      throw HAProxyError(
        .invalidCommand, "invalid \(kind) name '\(escaped(name))': use letters, digits, '-', '_', '.', ':'")
    }
  }

  /// `backend/server`, with both names checked.
  static func serverPath(_ backend: String, _ server: String) throws -> String {
    try checkName(backend, "backend")
    try checkName(server, "server")
    return "\(backend)/\(server)"
  }

  /// `backend/#id` for a server named by its numeric id, or `backend/server` when there is none; both checked.
  static func serverPath(_ backend: String, _ server: String, id: Int?) throws -> String {
    guard let id else { return try serverPath(backend, server) }
    try checkName(backend, "backend")
    try checkServerID(id)
    return "\(backend)/#\(id)"
  }

  /// Refuses a server id HAProxy cannot hold: ids are positive 32-bit integers.
  static func checkServerID(_ id: Int) throws {
    guard (1...Int(Int32.max)).contains(id) else {
      throw HAProxyError(.invalidCommand, "server id \(id) is outside 1...\(Int32.max)")
    }
  }

  /// Refuses an option token that is empty, has spaces or non-printable characters, `;` or `#`.
  static func checkOption(_ option: String) throws {
    let valid =
      !option.isEmpty
      && option.unicodeScalars.allSatisfy { (0x21...0x7e).contains($0.value) && $0 != ";" && $0 != "#" }
    guard valid else {
      throw HAProxyError(
        .invalidCommand,
        "invalid server option '\(escaped(option))': printable ASCII without spaces, ';' or '#' only")
    }
  }

  /// Accepts IPv4 and IPv6 literals only: HAProxy never resolves a host name given to a dynamic server.
  static func checkAddress(_ address: String) throws {
    guard IPLiteral.isIPv4(address) || IPLiteral.isIPv6(address) else {
      throw HAProxyError(
        .invalidCommand,
        "invalid address '\(escaped(address))': dynamic servers need an IPv4 or IPv6 address, not a host name")
    }
  }

  static func checkPort(_ port: Int) throws {
    guard (1...65_535).contains(port) else { throw HAProxyError(.invalidCommand, "invalid port \(port)") }
  }

  /// `address:port`, or `[address]:port` for IPv6, after checking both.
  static func endpoint(address: String, port: Int) throws -> String {
    try checkAddress(address)
    try checkPort(port)
    return HostPortText.format(host: address, port: port)
  }

  /// The text with control characters made visible, for error messages that may end up in logs.
  static func escaped(_ text: String) -> String {
    var result = ""
    for scalar in text.unicodeScalars {
      if (0x20...0x7e).contains(scalar.value) {
        result.unicodeScalars.append(scalar)
      } else {
        result += "\\u{\(hex(scalar.value))}"
      }
    }
    return result
  }

  private static func hex(_ value: UInt32) -> String {
    String(value, radix: 16, uppercase: true)
  }
}
