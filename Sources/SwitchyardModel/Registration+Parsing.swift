import Foundation

extension Registration {
  /// Parses and validates a value read from etcd: a JSON object, or the original demo's plain
  /// `host:port` (read as state `up`, weight 100).
  ///
  /// Values over `maxValueBytes` and values that are not UTF-8 are refused before anything else.
  /// Unknown JSON fields are ignored, so that newer writers can add fields. Errors carry a code,
  /// the field when one is to blame, and no key (see `ServiceInstance.parse(key:value:modRevision:)`).
  public static func parse(_ value: [UInt8]) throws(RegistrationError) -> Registration {
    guard value.count <= maxValueBytes else {
      throw RegistrationError(
        code: .invalidValue,
        reason: "value is \(value.count) bytes; at most \(maxValueBytes) are accepted"
      )
    }
    guard let text = String(validating: value, as: UTF8.self) else {
      throw RegistrationError(code: .invalidValue, reason: "value is not valid UTF-8")
    }
    let trimmed = text.trimmingASCIIWhitespace()
    if trimmed.isEmpty { throw RegistrationError(code: .invalidValue, reason: "value is empty") }
    if trimmed.hasPrefix("{") { return try parseJSON(Data(value)) }
    let plain: HostPort
    do {
      plain = try HostPort(parsing: String(trimmed))
    } catch {
      guard error.code == .invalidValue else { throw error }
      let reason = "value is neither a JSON object nor host:port: \(error.reason)"
      throw RegistrationError(code: .invalidValue, reason: reason)
    }
    return try Registration(address: plain.address, port: plain.port)
  }

  private static func parseJSON(_ data: Data) throws(RegistrationError) -> Registration {
    func failure(_ field: String, _ reason: String) -> RegistrationError {
      RegistrationError(code: .invalidField, field: field, reason: reason)
    }
    let object: [String: JSONValue]
    do {
      object = try JSONDecoder().decode([String: JSONValue].self, from: data)
    } catch {
      throw RegistrationError(code: .invalidValue, reason: "value is not a valid JSON object")
    }

    guard let addressValue = object["address"] else { throw failure("address", "is missing") }
    guard case .string(let addressText) = addressValue else {
      throw failure("address", "must be a string, not \(addressValue.kind)")
    }
    let address = try Address(validating: addressText)
    guard let portValue = object["port"] else { throw failure("port", "is missing") }
    let port = try integer(portValue, field: "port", range: 1...65535)
    let weight = try object["weight"].map { value throws(RegistrationError) in
      try integer(value, field: "weight", range: weightRange)
    }

    var state = InstanceState.up
    if let value = object["state"] {
      guard case .string(let text) = value, let parsed = InstanceState(rawValue: text) else {
        throw failure("state", "\(value.summary) is not one of \"up\", \"drain\", \"maint\"")
      }
      state = parsed
    }

    var checkPath: String?
    if let check = object["check"] {
      guard case .object(let fields) = check else {
        throw failure("check", "must be an object like {\"path\":\"/healthz\"}, not \(check.kind)")
      }
      if let path = fields["path"] {
        guard case .string(let text) = path else { throw failure("check.path", "must be a string, not \(path.kind)") }
        checkPath = text
      }
    }

    var meta: [String: String] = [:]
    if let value = object["meta"] {
      guard case .object(let fields) = value else {
        throw failure("meta", "must be an object of strings, not \(value.kind)")
      }
      for (key, entry) in fields.sorted(by: { $0.key < $1.key }) {
        guard case .string(let text) = entry else {
          throw failure("meta", "value of \(quoted(key)) must be a string, not \(entry.kind)")
        }
        meta[key] = text
      }
    }

    var tls = false
    if let value = object["tls"] {
      guard case .bool(let flag) = value else { throw failure("tls", "must be true or false, not \(value.kind)") }
      tls = flag
    }
    var tlsServerName: String?
    if let value = object["tls_server_name"] {
      guard case .string(let text) = value else {
        throw failure("tls_server_name", "must be a string, not \(value.kind)")
      }
      tlsServerName = text
    }

    return try Registration(
      address: address,
      port: port,
      weight: weight ?? defaultWeight,
      state: state,
      checkPath: checkPath,
      meta: meta,
      tls: tls,
      tlsServerName: tlsServerName
    )
  }

  /// An integer field. JSON has one number type, so `80.0` and `8e1` are the integer 80;
  /// `80.5`, strings, booleans and null are refused.
  private static func integer(
    _ value: JSONValue,
    field: String,
    range: ClosedRange<Int>
  ) throws(RegistrationError) -> Int {
    let bounds = "\(range.lowerBound)–\(range.upperBound)"
    switch value {
    case .integer(let number):
      guard let result = Int(exactly: number), range.contains(result) else {
        throw RegistrationError(code: .invalidField, field: field, reason: "\(number) is outside \(bounds)")
      }
      return result
    case .double(let number):
      let reason =
        number.rounded() == number ? "\(number) is outside \(bounds)" : "\(number) is not an integer"
      throw RegistrationError(code: .invalidField, field: field, reason: reason)
    default:
      throw RegistrationError(
        code: .invalidField,
        field: field,
        reason: "must be an integer from \(bounds), not \(value.kind)"
      )
    }
  }
}

/// Just enough JSON to tell a number from a string from an object, for precise error messages.
///
/// Only the top-level object and the objects directly in it (`check`, `meta`) are read member by
/// member; anything deeper is recorded as "an object" or "an array" without being decoded, so the
/// cost of a value does not grow with how deeply someone nested it.
enum JSONValue: Decodable, Hashable {
  case string(String)
  case integer(Int64)
  case double(Double)
  case bool(Bool)
  case null
  /// Members of an object at depth 1; always empty deeper down.
  case object([String: JSONValue])
  case array

  /// Decodes anything without reading it.
  private struct Skipped: Decodable {
    init(from decoder: any Decoder) throws {}
  }

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
    } else if decoder.codingPath.count < 2, let members = try? container.decode([String: JSONValue].self) {
      self = .object(members)
    } else if (try? container.decode([String: Skipped].self)) != nil {
      self = .object([:])
    } else {
      _ = try container.decode([Skipped].self)
      self = .array
    }
  }

  /// `a string`, `a number`, … for "must be X, not Y".
  var kind: String {
    switch self {
    case .string: "a string"
    case .integer, .double: "a number"
    case .bool: "a boolean"
    case .object: "an object"
    case .array: "an array"
    case .null: "null"
    }
  }

  /// The value itself when it is a short scalar, escaped; otherwise its kind.
  var summary: String {
    switch self {
    case .string(let text): quoted(text)
    case .integer(let number): "\(number)"
    case .bool(let value): "\(value)"
    default: kind
    }
  }
}

extension String {
  /// Without leading and trailing spaces, tabs, CRs and LFs (a trailing newline from `etcdctl put`
  /// or `echo` is harmless; the rest is validated strictly).
  fileprivate func trimmingASCIIWhitespace() -> Substring {
    let isSpace: (Character) -> Bool = { $0 == " " || $0 == "\t" || $0 == "\n" || $0 == "\r" || $0 == "\r\n" }
    guard let first = firstIndex(where: { !isSpace($0) }), let last = lastIndex(where: { !isSpace($0) }) else {
      return ""
    }
    return self[first...last]
  }
}
