import Foundation

extension ServiceSettings {
  /// The fields of the JSON value; anything else is refused, so that a typo is not silently ignored.
  static let fields = [
    "balance", "check", "maxconn", "mode", "port", "retries", "timeout_connect", "timeout_server",
  ]
  /// The fields of `check`.
  static let checkFields = ["fall", "interval", "path", "rise", "timeout", "type"]

  /// Parses one etcd entry under ``root``: the key must be exactly `/switchyard/services/<service>`,
  /// the value a JSON object of the fields ``encoded()`` writes and nothing else. Errors carry the key
  /// (made readable if it is not UTF-8) and name the field (`balance`, `check.interval`, …).
  public static func parse(
    key: [UInt8], value: [UInt8], modRevision: Int64 = 0
  ) throws(RegistrationError) -> ServiceSettings {
    let keyText = String(decoding: key, as: UTF8.self)
    do throws(RegistrationError) {
      let segment = try ModelJSON.keySegment(key, under: root, placeholder: "<service>")
      let service: ServiceName
      do { service = try ServiceName(validating: segment) } catch { throw error.at(key: keyText, code: .invalidKey) }
      let object = try ModelJSON.object(
        from: value, maxBytes: maxValueBytes, example: #"{"balance":"leastconn"}"#)
      try object.rejectUnknown(known: fields)
      return try ServiceSettings(
        service: service,
        balance: try object.choice("balance", of: Balance.self),
        mode: try object.choice("mode", of: Mode.self) ?? .http,
        port: try object.integer("port", in: portRange),
        check: try check(in: object),
        timeoutConnect: try object.duration("timeout_connect"),
        timeoutServer: try object.duration("timeout_server"),
        retries: try object.integer("retries", in: retriesRange),
        maxconn: try object.integer("maxconn", in: maxconnRange),
        modRevision: modRevision
      )
    } catch {
      throw error.key == nil ? error.at(key: keyText) : error
    }
  }

  private static func check(in object: ModelJSON.Object) throws(RegistrationError) -> Check? {
    guard let fields = try object.object("check", example: #"{"type":"tcp","interval":"2s"}"#) else { return nil }
    try fields.rejectUnknown(known: checkFields)
    return Check(
      kind: try fields.choice("type", of: Check.Kind.self) ?? .http,
      path: try fields.string("path"),
      interval: try fields.duration("interval"),
      timeout: try fields.duration("timeout"),
      rise: try fields.integer("rise", in: checkCountRange),
      fall: try fields.integer("fall", in: checkCountRange)
    )
  }
}

/// Reading and writing the JSON values of the keys operators write (``Route``, ``ServiceSettings``):
/// strict, with errors that name the field and never repeat the input raw.
enum ModelJSON {
  /// The one segment after `root` in an etcd key, which must be UTF-8 and have no further `/`.
  /// Errors have code `.invalidKey` and no key (the caller adds it).
  static func keySegment(_ key: [UInt8], under root: String, placeholder: String) throws(RegistrationError) -> String {
    guard String(validating: key, as: UTF8.self) != nil else {
      throw RegistrationError(code: .invalidKey, reason: "key is not valid UTF-8")
    }
    // Bytes, not characters: a combining mark after the root's "/" must not change where the name starts.
    guard key.starts(with: root.utf8) else {
      throw RegistrationError(code: .invalidKey, reason: "key is not under \(root)")
    }
    let rest = key.dropFirst(root.utf8.count)
    let segment = String(decoding: rest, as: UTF8.self)
    guard !rest.contains(UInt8(ascii: "/")) else {
      throw RegistrationError(
        code: .invalidKey, reason: "key must be \(root)\(placeholder), with one segment after \(root)")
    }
    return segment
  }

  /// The members of a JSON object value of at most `maxBytes` bytes. Errors have code `.invalidValue`.
  static func object(from value: [UInt8], maxBytes: Int, example: String) throws(RegistrationError) -> Object {
    guard value.count <= maxBytes else {
      throw RegistrationError(
        code: .invalidValue, reason: "value is \(value.count) bytes; at most \(maxBytes) are accepted")
    }
    guard String(validating: value, as: UTF8.self) != nil else {
      throw RegistrationError(code: .invalidValue, reason: "value is not valid UTF-8")
    }
    guard let members = try? JSONDecoder().decode([String: JSONValue].self, from: Data(value)) else {
      throw RegistrationError(code: .invalidValue, reason: "value is not a JSON object like \(example)")
    }
    return Object(members: members, prefix: "")
  }

  /// The elements of the top-level array `name` in `value` (``JSONValue`` does not keep them);
  /// nested objects and arrays in it are recorded by kind only.
  static func array(_ name: String, in value: [UInt8]) throws(RegistrationError) -> [JSONValue] {
    struct MaybeArray: Decodable {
      var elements: [JSONValue]?
      init(from decoder: any Decoder) throws { elements = try? decoder.singleValueContainer().decode([JSONValue].self) }
    }
    guard let members = try? JSONDecoder().decode([String: MaybeArray].self, from: Data(value)),
      let elements = members[name]?.elements
    else {
      throw RegistrationError(code: .invalidField, field: name, reason: "is not an array that can be read")
    }
    return elements
  }

  /// Compact JSON with sorted keys and unescaped slashes.
  static func encode(_ value: some Encodable) -> [UInt8] {
    let encoder = JSONEncoder()
    encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
    // Strings, integers and booleans always encode; the empty fallback is unreachable.
    return Array((try? encoder.encode(value)) ?? Data())
  }

  /// One JSON object, read member by member. Errors have code `.invalidField` and name the member
  /// with the object's prefix (`check.interval`).
  struct Object {
    /// The members, as decoded.
    let members: [String: JSONValue]
    /// `""` at the top level, `"check."` inside `check`.
    let prefix: String

    /// An error about member `name`.
    func failure(_ name: String, _ reason: String) -> RegistrationError {
      RegistrationError(code: .invalidField, field: prefix + name, reason: reason)
    }

    /// Refuses the first member (in byte order) that is not in `known`, naming it escaped.
    func rejectUnknown(known: [String]) throws(RegistrationError) {
      guard let unknown = members.keys.filter({ !known.contains($0) }).min() else { return }
      let list = known.map { "\"\($0)\"" }.joined(separator: ", ")
      throw RegistrationError(
        code: .invalidField,
        field: prefix + escaped(unknown, limit: 64),
        reason: "is not a known field; the fields are \(list)"
      )
    }

    /// A string member, or `nil` when absent.
    func string(_ name: String) throws(RegistrationError) -> String? {
      guard let value = members[name] else { return nil }
      guard case .string(let text) = value else { throw failure(name, "must be a string, not \(value.kind)") }
      return text
    }

    /// A boolean member, or `nil` when absent.
    func bool(_ name: String) throws(RegistrationError) -> Bool? {
      guard let value = members[name] else { return nil }
      guard case .bool(let flag) = value else { throw failure(name, "must be true or false, not \(value.kind)") }
      return flag
    }

    /// An integer member in `range`, or `nil` when absent. JSON has one number type, so `80.0` is
    /// the integer 80; `80.5`, strings, booleans and null are refused.
    func integer(_ name: String, in range: ClosedRange<Int>) throws(RegistrationError) -> Int? {
      guard let value = members[name] else { return nil }
      let bounds = "\(range.lowerBound)–\(range.upperBound)"
      switch value {
      case .integer(let number):
        guard let result = Int(exactly: number), range.contains(result) else {
          throw failure(name, "\(number) is outside \(bounds)")
        }
        return result
      case .double(let number):
        throw failure(
          name, number.rounded() == number ? "\(number) is outside \(bounds)" : "\(number) is not an integer")
      default:
        throw failure(name, "must be an integer from \(bounds), not \(value.kind)")
      }
    }

    /// A duration member, a string such as `"2s"` or `"500ms"`, or `nil` when absent.
    func duration(_ name: String) throws(RegistrationError) -> Duration? {
      guard let value = members[name] else { return nil }
      guard case .string(let text) = value else {
        throw failure(name, "must be a duration string like \"2s\" or \"500ms\", not \(value.kind)")
      }
      guard let duration = ServiceSettings.parseDuration(text) else {
        throw failure(name, "\(quoted(text)) is not a duration like \"250ms\", \"2s\" or \"1m\"")
      }
      return duration
    }

    /// A string member that must be one of `choices`' raw values, or `nil` when absent.
    func choice<Choice: RawRepresentable & CaseIterable>(
      _ name: String, of choices: Choice.Type
    ) throws(RegistrationError) -> Choice? where Choice.RawValue == String {
      guard let value = members[name] else { return nil }
      guard case .string(let text) = value, let choice = Choice(rawValue: text) else {
        let list = Choice.allCases.map { "\"\($0.rawValue)\"" }.joined(separator: ", ")
        throw failure(name, "\(value.summary) is not one of \(list)")
      }
      return choice
    }

    /// An object member, or `nil` when absent. Only members of top-level objects are decoded
    /// (see ``JSONValue``), so this is for depth 1.
    func object(_ name: String, example: String) throws(RegistrationError) -> Object? {
      guard let value = members[name] else { return nil }
      guard case .object(let fields) = value else {
        throw failure(name, "must be an object like \(example), not \(value.kind)")
      }
      return Object(members: fields, prefix: prefix + name + ".")
    }
  }
}
