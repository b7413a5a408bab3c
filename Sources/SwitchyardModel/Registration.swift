import Foundation

/// Whether an instance should take traffic.
public enum InstanceState: String, Sendable, Hashable, CaseIterable, Codable {
  /// Takes new traffic.
  case up
  /// Finishes what it has; gets no new connections.
  case drain
  /// Out of service: no traffic at all.
  case maint
}

/// What an instance registers about itself: the value of its etcd key.
///
/// Written as compact JSON with sorted keys, for example
/// `{"address":"127.0.0.1","check":{"path":"/healthz"},"port":9001,"state":"up","weight":100}`.
/// Readers also accept the original demo's plain `host:port`.
public struct Registration: Sendable, Hashable {
  /// Where the instance listens.
  public var address: Address
  /// Its port, 1–65535.
  public var port: Int
  /// Relative share of traffic, 0–256 (HAProxy's range; 0 takes no new traffic).
  public var weight: Int
  /// Whether it takes traffic.
  public var state: InstanceState
  /// HTTP path for health checks, if the instance wants a specific one.
  public var checkPath: String?
  /// Free-form labels (zone, version, …); never written into HAProxy's config.
  public var meta: [String: String]

  /// Largest value accepted from etcd.
  public static let maxValueBytes = 4096
  /// Default weight.
  public static let defaultWeight = 100

  /// Creates a registration, validating every field.
  public init(
    address: Address,
    port: Int,
    weight: Int = Registration.defaultWeight,
    state: InstanceState = .up,
    checkPath: String? = nil,
    meta: [String: String] = [:]
  ) throws(RegistrationError) {
    guard (1...65535).contains(port) else {
      throw RegistrationError(field: "port", reason: "\(port) is outside 1–65535")
    }
    guard (0...256).contains(weight) else {
      throw RegistrationError(field: "weight", reason: "\(weight) is outside 0–256")
    }
    if let checkPath, let problem = Self.checkPathProblem(checkPath) {
      throw RegistrationError(field: "check.path", reason: problem)
    }
    if let problem = Self.metaProblem(meta) {
      throw RegistrationError(field: "meta", reason: problem)
    }
    self.address = address
    self.port = port
    self.weight = weight
    self.state = state
    self.checkPath = checkPath
    self.meta = meta
  }

  /// `host:port` for logs and HAProxy `server` lines.
  public var hostPort: String { address.hostPort(port) }

  /// The same registration in another state.
  public func with(state: InstanceState) -> Registration {
    var copy = self
    copy.state = state
    return copy
  }

  // MARK: - Writing

  private struct Wire: Codable {
    struct Check: Codable {
      var path: String
    }
    var address: String
    var port: Int
    var weight: Int?
    var state: String?
    var check: Check?
    var meta: [String: String]?
  }

  /// The canonical JSON value (sorted keys, no whitespace).
  public func encoded() -> [UInt8] {
    let wire = Wire(
      address: address.text,
      port: port,
      weight: weight,
      state: state.rawValue,
      check: checkPath.map { Wire.Check(path: $0) },
      meta: meta.isEmpty ? nil : meta
    )
    let encoder = JSONEncoder()
    encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
    // Encoding plain strings and integers cannot fail.
    return Array((try? encoder.encode(wire)) ?? Data())
  }

  // MARK: - Reading

  /// Parses and validates a value read from etcd.
  public static func parse(_ value: [UInt8]) throws(RegistrationError) -> Registration {
    guard value.count <= maxValueBytes else {
      throw RegistrationError(reason: "value is \(value.count) bytes; at most \(maxValueBytes) are accepted")
    }
    guard let text = String(validating: value, as: UTF8.self) else {
      throw RegistrationError(reason: "value is not valid UTF-8")
    }
    let trimmed = text.trimmingCharacters(in: .whitespaces)
    if trimmed.hasPrefix("{") {
      return try parseJSON(Data(value))
    }
    return try parsePlain(trimmed)
  }

  /// The original demo's `host:port` (IPv6 in brackets).
  static func parsePlain(_ text: String) throws(RegistrationError) -> Registration {
    let plainCharacters = Set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789.-:[]")
    guard !text.isEmpty, text.allSatisfy({ plainCharacters.contains($0) }) else {
      throw RegistrationError(reason: "value is neither a JSON object nor host:port")
    }
    let host: Substring
    let portText: Substring
    if text.hasPrefix("[") {
      guard let close = text.firstIndex(of: "]"), text[text.index(after: close)...].hasPrefix(":") else {
        throw RegistrationError(reason: "value is neither a JSON object nor host:port")
      }
      host = text[text.index(after: text.startIndex)..<close]
      portText = text[text.index(close, offsetBy: 2)...]
    } else {
      guard let colon = text.lastIndex(of: ":"), text.firstIndex(of: ":") == colon else {
        throw RegistrationError(reason: "value is neither a JSON object nor host:port")
      }
      host = text[..<colon]
      portText = text[text.index(after: colon)...]
    }
    guard !portText.isEmpty, portText.allSatisfy({ $0.isASCII && $0.isNumber }), let port = Int(portText) else {
      throw RegistrationError(field: "port", reason: "\"\(portText)\" is not a port number")
    }
    return try Registration(address: Address(validating: String(host)), port: port)
  }

  static func parseJSON(_ data: Data) throws(RegistrationError) -> Registration {
    let object: [String: JSONValue]
    do {
      object = try JSONDecoder().decode([String: JSONValue].self, from: data)
    } catch {
      throw RegistrationError(reason: "value is not a valid JSON object")
    }
    guard case .string(let addressText)? = object["address"] else {
      throw RegistrationError(field: "address", reason: object["address"] == nil ? "is missing" : "must be a string")
    }
    let address = try Address(validating: addressText)
    let port = try integer(object["port"], field: "port", required: true) ?? 0
    let weight = try integer(object["weight"], field: "weight", required: false) ?? defaultWeight
    var state = InstanceState.up
    if let value = object["state"] {
      guard case .string(let text) = value, let parsed = InstanceState(rawValue: text) else {
        throw RegistrationError(field: "state", reason: "must be one of \"up\", \"drain\", \"maint\"")
      }
      state = parsed
    }
    var checkPath: String?
    if let check = object["check"] {
      guard case .object(let fields) = check else {
        throw RegistrationError(field: "check", reason: "must be an object like {\"path\":\"/healthz\"}")
      }
      if let path = fields["path"] {
        guard case .string(let text) = path else {
          throw RegistrationError(field: "check.path", reason: "must be a string")
        }
        checkPath = text
      }
    }
    var meta: [String: String] = [:]
    if let value = object["meta"] {
      guard case .object(let fields) = value else {
        throw RegistrationError(field: "meta", reason: "must be an object of strings")
      }
      for (key, entry) in fields {
        guard case .string(let text) = entry else {
          throw RegistrationError(field: "meta", reason: "value of \"\(key)\" must be a string")
        }
        meta[key] = text
      }
    }
    return try Registration(
      address: address,
      port: port,
      weight: weight,
      state: state,
      checkPath: checkPath,
      meta: meta
    )
  }

  private static func integer(_ value: JSONValue?, field: String, required: Bool) throws(RegistrationError) -> Int? {
    switch value {
    case nil:
      if required { throw RegistrationError(field: field, reason: "is missing") }
      return nil
    case .integer(let number)?:
      guard let result = Int(exactly: number) else {
        throw RegistrationError(field: field, reason: "\(number) is out of range")
      }
      return result
    case .double(let number)?:
      throw RegistrationError(field: field, reason: "\(number) is not a whole number")
    default:
      throw RegistrationError(field: field, reason: "must be a number")
    }
  }

  /// Why `path` cannot be a health-check path, or `nil` when it can. Characters allowed in a path: URL path and query characters that HAProxy's
  /// config parser treats as plain text (no spaces, quotes, `#`, `$`, `\` or control characters).
  public static func checkPathProblem(_ path: String) -> String? {
    guard path.hasPrefix("/") else { return "must start with \"/\"" }
    guard path.utf8.count <= 256 else { return "is longer than 256 characters" }
    let allowed = Set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-._~/%?=&+,:@!*();".unicodeScalars)
    for scalar in path.unicodeScalars where !allowed.contains(scalar) {
      return "contains \(describe(scalar))"
    }
    return nil
  }

  static func metaProblem(_ meta: [String: String]) -> String? {
    guard meta.count <= 32 else { return "has more than 32 entries" }
    for (key, value) in meta {
      if let problem = SafeName.validate(key, what: "key \"\(key)\"", maxLength: 64) { return problem }
      guard value.utf8.count <= 256 else { return "value of \"\(key)\" is longer than 256 bytes" }
      for scalar in value.unicodeScalars where scalar.value < 0x20 || scalar.value == 0x7f {
        return "value of \"\(key)\" contains \(describe(scalar))"
      }
    }
    return nil
  }
}

/// Just enough JSON to tell a number from a string from an object, for precise error messages.
enum JSONValue: Decodable, Hashable {
  case string(String)
  case integer(Int64)
  case double(Double)
  case bool(Bool)
  case object([String: JSONValue])
  case array([JSONValue])
  case null

  init(from decoder: any Decoder) throws {
    let container = try decoder.singleValueContainer()
    if container.decodeNil() {
      self = .null
    } else if let value = try? container.decode(Bool.self) {
      self = .bool(value)
    } else if let value = try? container.decode(Int64.self) {
      self = .integer(value)
    } else if let value = try? container.decode(Double.self) {
      self = .double(value)
    } else if let value = try? container.decode(String.self) {
      self = .string(value)
    } else if let value = try? container.decode([String: JSONValue].self) {
      self = .object(value)
    } else {
      self = .array(try container.decode([JSONValue].self))
    }
  }
}

/// One registered instance, as the controller sees it.
public struct ServiceInstance: Sendable, Hashable, Comparable {
  /// Where it is registered.
  public var key: RegistrationKey
  /// What it registered.
  public var registration: Registration
  /// The etcd revision of its last change.
  public var modRevision: Int64

  /// Creates an instance.
  public init(key: RegistrationKey, registration: Registration, modRevision: Int64 = 0) {
    self.key = key
    self.registration = registration
    self.modRevision = modRevision
  }

  /// Parses one etcd entry; the error names the key.
  public static func parse(key: String, value: [UInt8], modRevision: Int64 = 0) throws(RegistrationError)
    -> ServiceInstance
  {
    do {
      let parsedKey = try RegistrationKey(parsing: key)
      return ServiceInstance(key: parsedKey, registration: try Registration.parse(value), modRevision: modRevision)
    } catch {
      throw error.at(key: key)
    }
  }

  /// Parses many entries: every valid one, plus one error per invalid one, so that a bad entry
  /// never holds back the good ones. Both lists are sorted by key.
  public static func parseAll(
    _ entries: [(key: String, value: [UInt8], modRevision: Int64)]
  ) -> (valid: [ServiceInstance], invalid: [RegistrationError]) {
    var valid: [ServiceInstance] = []
    var invalid: [RegistrationError] = []
    for entry in entries {
      do {
        valid.append(try parse(key: entry.key, value: entry.value, modRevision: entry.modRevision))
      } catch {
        invalid.append(error)
      }
    }
    return (valid.sorted(), invalid.sorted { ($0.key ?? "") < ($1.key ?? "") })
  }

  /// Orders by key.
  public static func < (lhs: ServiceInstance, rhs: ServiceInstance) -> Bool { lhs.key < rhs.key }
}
