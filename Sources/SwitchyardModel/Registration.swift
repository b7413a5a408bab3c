import Foundation

/// Whether an instance should take traffic.
public enum InstanceState: String, Sendable, Hashable, CaseIterable {
  /// Takes new traffic.
  case up
  /// Finishes what it has, gets no new connections.
  case drain
  /// Out of service: no traffic at all.
  case maint
}

/// What an instance registers about itself: the value of its etcd key.
///
/// Every field is validated when the registration is created, whether by a writer
/// (`init(address:port:weight:state:checkPath:meta:)`) or by a reader (`parse(_:)`), and cannot be
/// changed afterwards except through `with(state:)`. Whatever holds a `Registration` may print its
/// address, port, weight, check path and TLS server name into HAProxy's configuration.
public struct Registration: Sendable, Hashable {
  /// Where the instance listens; never the unspecified address.
  public private(set) var address: Address
  /// Its port, 1–65535.
  public private(set) var port: Int
  /// Relative share of traffic, 0–256 (HAProxy's range; 0 takes no new traffic).
  public private(set) var weight: Int
  /// Whether it takes traffic.
  public private(set) var state: InstanceState
  /// HTTP path for health checks, if the instance wants one; see `checkPathProblem(_:)` for the rules.
  public private(set) var checkPath: String?
  /// Free-form labels (zone, version, …) for people and tools; never written into HAProxy's config.
  public private(set) var meta: [String: String]
  /// Whether load balancers connect to it over TLS and verify its certificate (JSON `"tls": true`).
  public private(set) var tls: Bool
  /// The DNS name sent as SNI and checked against its certificate, lower-cased; only with ``tls``
  /// (JSON `"tls_server_name"`). `nil`: the certificate's chain is verified, not its name.
  public private(set) var tlsServerName: String?

  /// Largest value accepted from etcd, in bytes. Canonical encodings always fit well within it.
  public static let maxValueBytes = 4096
  /// Weight when none is given.
  public static let defaultWeight = 100
  /// Accepted weights: HAProxy's.
  public static let weightRange = 0...256
  /// Longest accepted check path, in bytes.
  public static let maxCheckPathLength = 256
  /// Longest meta key (same characters as an instance id).
  public static let maxMetaKeyLength = 64
  /// Longest meta value, in bytes.
  public static let maxMetaValueLength = 256
  /// Largest `meta` object, in bytes of canonical JSON. With the other fields' limits, this keeps
  /// every canonical value under `maxValueBytes`.
  public static let maxMetaBytes = 2048

  /// Creates a registration, validating every field. Errors have code `.invalidField` and name the field.
  public init(
    address: Address,
    port: Int,
    weight: Int = Registration.defaultWeight,
    state: InstanceState = .up,
    checkPath: String? = nil,
    meta: [String: String] = [:],
    tls: Bool = false,
    tlsServerName: String? = nil
  ) throws(RegistrationError) {
    func failure(_ field: String, _ reason: String) -> RegistrationError {
      RegistrationError(code: .invalidField, field: field, reason: reason)
    }
    if address.isUnspecified {
      throw failure(
        "address",
        "\(address) is the unspecified address; register an address that load balancers can connect to"
      )
    }
    guard (1...65535).contains(port) else { throw failure("port", "\(port) is outside 1–65535") }
    guard Self.weightRange.contains(weight) else {
      throw failure("weight", "\(weight) is outside \(Self.weightRange.lowerBound)–\(Self.weightRange.upperBound)")
    }
    if let checkPath, let problem = Self.checkPathProblem(checkPath) { throw failure("check.path", problem) }
    if let problem = Self.metaProblem(meta) { throw failure("meta", problem) }
    var serverName: String?
    if let tlsServerName {
      guard tls else { throw failure("tls_server_name", "is set but \"tls\" is not true") }
      serverName = try Self.validServerName(tlsServerName)
    }
    self.address = address
    self.port = port
    self.weight = weight
    self.state = state
    self.checkPath = checkPath
    self.meta = meta
    self.tls = tls
    self.tlsServerName = serverName
  }

  /// `host:port` for logs and HAProxy `server` lines, with IPv6 in brackets: `[::1]:8080`.
  public var hostPort: String { address.hostPort(port) }

  /// The same registration in another state (all other fields stay valid).
  public func with(state: InstanceState) -> Registration {
    var copy = self
    copy.state = state
    return copy
  }

  /// The canonical value to write to etcd: compact JSON with sorted keys, `weight` and `state`
  /// always present, `check`, `meta`, `tls` and `tls_server_name` only when set (a registration without
  /// TLS encodes as it did before TLS existed):
  /// `{"address":"127.0.0.1","check":{"path":"/healthz"},"port":9001,"state":"up","weight":100}`.
  public func encoded() -> [UInt8] {
    let wire = Wire(
      address: address.text,
      check: checkPath.map { Wire.Check(path: $0) },
      meta: meta.isEmpty ? nil : meta,
      port: port,
      state: state.rawValue,
      tls: tls ? true : nil,
      tlsServerName: tlsServerName,
      weight: weight
    )
    // Strings and integers always encode; the empty fallback is unreachable.
    return Array((try? Self.encoder.encode(wire)) ?? Data())
  }

  // MARK: - Rules

  /// `name` as a TLS server name: an exact DNS name by ``HostPattern``'s rules, lower-cased. It is
  /// printed into HAProxy's `sni` and `verifyhost` keywords, so nothing else gets through.
  static func validServerName(_ name: String) throws(RegistrationError) -> String {
    let failure = { (reason: String) in
      RegistrationError(code: .invalidField, field: "tls_server_name", reason: reason)
    }
    let pattern: HostPattern
    do {
      pattern = try HostPattern(validating: name)
    } catch {
      throw failure(error.reason)
    }
    guard pattern.kind == .exact else { throw failure("\(quoted(name)) is a wildcard; name one host") }
    return pattern.text
  }

  /// Why `path` cannot be a health-check path, or `nil` when it can.
  ///
  /// A check path starts with `/`, is at most 256 bytes, and holds only
  /// `A–Z a–z 0–9 - . _ ~ / ? = & + , ; : @ ! * ( )` and `%` followed by two hex digits: URL path
  /// and query characters that HAProxy's configuration parser reads as plain text. No spaces,
  /// quotes, `#`, `$`, `\`, or control characters.
  public static func checkPathProblem(_ path: String) -> String? {
    guard path.hasPrefix("/") else { return "\(quoted(path)) does not start with \"/\"" }
    guard path.utf8.count <= maxCheckPathLength else { return "is longer than \(maxCheckPathLength) bytes" }
    let scalars = Array(path.unicodeScalars)
    for (index, scalar) in scalars.enumerated() {
      if scalar == "%" {
        let hex = scalars.dropFirst(index + 1).prefix(2)
        guard hex.count == 2, hex.allSatisfy({ $0.properties.isASCIIHexDigit }) else {
          return "has \"%\" not followed by two hex digits"
        }
      } else if !isCheckPathCharacter(scalar) {
        return "contains \(describe(scalar))"
      }
    }
    return nil
  }

  private static func isCheckPathCharacter(_ scalar: Unicode.Scalar) -> Bool {
    switch scalar {
    case "a"..."z", "A"..."Z", "0"..."9", "-", ".", "_", "~", "/", "?", "=", "&", "+", ",", ";", ":", "@", "!", "*",
      "(", ")":
      true
    default: false
    }
  }

  /// Why `meta` cannot be registered, or `nil` when it can.
  static func metaProblem(_ meta: [String: String]) -> String? {
    for key in meta.keys.sorted() {
      if let problem = SafeName.problem(key, maxLength: maxMetaKeyLength) { return "key \(quoted(key)) \(problem)" }
      let value = meta[key] ?? ""
      guard value.utf8.count <= maxMetaValueLength else {
        return "value of \(quoted(key)) is longer than \(maxMetaValueLength) bytes"
      }
      for scalar in value.unicodeScalars where isControlOrInvisible(scalar) {
        return "value of \(quoted(key)) contains \(describe(scalar))"
      }
    }
    let size = (try? encoder.encode(meta).count) ?? Int.max
    guard size <= maxMetaBytes else { return "is \(size) bytes as JSON; at most \(maxMetaBytes) are accepted" }
    return nil
  }

  /// Control characters (C0, DEL, C1), format characters (bidirectional overrides, zero-width
  /// characters) and line or paragraph separators: what can break or disguise a log line.
  private static func isControlOrInvisible(_ scalar: Unicode.Scalar) -> Bool {
    switch scalar.properties.generalCategory {
    case .control, .format, .lineSeparator, .paragraphSeparator: true
    default: false
    }
  }

  // MARK: - Wire form

  /// The JSON object, field for field. Writing only; reading goes through `JSONValue` for precise errors.
  private struct Wire: Encodable {
    struct Check: Encodable {
      var path: String
    }
    var address: String
    var check: Check?
    var meta: [String: String]?
    var port: Int
    var state: String
    var tls: Bool?
    var tlsServerName: String?
    var weight: Int

    enum CodingKeys: String, CodingKey {
      case address, check, meta, port, state, tls, weight
      case tlsServerName = "tls_server_name"
    }
  }

  private static var encoder: JSONEncoder {
    let encoder = JSONEncoder()
    encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
    return encoder
  }
}
