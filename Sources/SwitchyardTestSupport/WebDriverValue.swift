/// A JSON value as WebDriver sends and receives it: the body of every command, the `value` of every answer,
/// and what a script run in the page returns (`return {nodes: 3}` comes back as an ``object(_:)``).
///
/// Numbers are `Double`s, as in JavaScript. Literals build values: `["url": "http://127.0.0.1:8080/"]`.
public enum WebDriverValue: Sendable, Hashable, Codable, CustomStringConvertible {
  case null
  case bool(Bool)
  case number(Double)
  case string(String)
  case array([WebDriverValue])
  case object([String: WebDriverValue])

  public init(from decoder: any Decoder) throws {
    let container = try decoder.singleValueContainer()
    if container.decodeNil() {
      self = .null
    } else if let bool = try? container.decode(Bool.self) {
      self = .bool(bool)
    } else if let number = try? container.decode(Double.self) {
      self = .number(number)
    } else if let string = try? container.decode(String.self) {
      self = .string(string)
    } else if let array = try? container.decode([WebDriverValue].self) {
      self = .array(array)
    } else {
      self = .object(try container.decode([String: WebDriverValue].self))
    }
  }

  public func encode(to encoder: any Encoder) throws {
    var container = encoder.singleValueContainer()
    switch self {
    case .null: try container.encodeNil()
    case .bool(let bool): try container.encode(bool)
    case .number(let number): try container.encode(number)
    case .string(let string): try container.encode(string)
    case .array(let array): try container.encode(array)
    case .object(let object): try container.encode(object)
    }
  }

  /// The string, if this is one.
  public var string: String? {
    if case .string(let string) = self { return string }
    return nil
  }

  /// The number, if this is one.
  public var double: Double? {
    if case .number(let number) = self { return number }
    return nil
  }

  /// The number as an `Int`, if this is a whole number.
  public var int: Int? {
    guard let double, double.rounded() == double, abs(double) < 9e15 else { return nil }
    return Int(double)
  }

  /// The Boolean, if this is one.
  public var bool: Bool? {
    if case .bool(let bool) = self { return bool }
    return nil
  }

  /// The elements, if this is an array.
  public var array: [WebDriverValue]? {
    if case .array(let array) = self { return array }
    return nil
  }

  /// The members, if this is an object.
  public var object: [String: WebDriverValue]? {
    if case .object(let object) = self { return object }
    return nil
  }

  /// Whether this is `null` (JavaScript's `null` and `undefined` both arrive as `null`).
  public var isNull: Bool { self == .null }

  /// The member `key` of an object; `null` when this is not an object or has no such member.
  public subscript(key: String) -> WebDriverValue {
    object?[key] ?? .null
  }

  /// Compact JSON, for messages.
  public var description: String {
    switch self {
    case .null: "null"
    case .bool(let bool): "\(bool)"
    case .number(let number): int.map(String.init) ?? "\(number)"
    case .string(let string): "\"\(string)\""
    case .array(let array): "[\(array.map(\.description).joined(separator: ","))]"
    case .object(let object):
      "{\(object.sorted { $0.key < $1.key }.map { "\"\($0.key)\":\($0.value)" }.joined(separator: ","))}"
    }
  }
}

extension WebDriverValue: ExpressibleByNilLiteral, ExpressibleByBooleanLiteral, ExpressibleByIntegerLiteral,
  ExpressibleByFloatLiteral, ExpressibleByStringLiteral, ExpressibleByArrayLiteral, ExpressibleByDictionaryLiteral
{
  public init(nilLiteral: ()) { self = .null }
  public init(booleanLiteral value: Bool) { self = .bool(value) }
  public init(integerLiteral value: Int) { self = .number(Double(value)) }
  public init(floatLiteral value: Double) { self = .number(value) }
  public init(stringLiteral value: String) { self = .string(value) }
  public init(arrayLiteral elements: WebDriverValue...) { self = .array(elements) }
  public init(dictionaryLiteral elements: (String, WebDriverValue)...) {
    self = .object(Dictionary(elements, uniquingKeysWith: { _, last in last }))
  }
}
