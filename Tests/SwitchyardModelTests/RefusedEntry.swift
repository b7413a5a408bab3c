import SwitchyardModel
import Testing

/// A suite of entries that must be refused, with the key its entries have unless they say otherwise.
protocol RefusedEntrySuite {
  /// The key of an entry that names none.
  static var key: String { get }
}

/// One etcd entry that must be refused, and how: the error's code and field.
struct RefusedEntry<Suite: RefusedEntrySuite>: CustomTestStringConvertible, Sendable {
  var label: String
  var key: [UInt8]
  var value: [UInt8]
  var code: RegistrationError.Code
  var field: String?
  var testDescription: String { label }

  /// A value refused for one field, at the suite's key.
  init(_ label: String, _ value: String, _ field: String) {
    self.init(label, keyBytes: Array(Suite.key.utf8), valueBytes: Array(value.utf8), .invalidField, field)
  }

  init(_ label: String, key: String = Suite.key, _ value: String, _ code: RegistrationError.Code, _ field: String?) {
    self.init(label, keyBytes: Array(key.utf8), valueBytes: Array(value.utf8), code, field)
  }

  init(_ label: String, keyBytes: [UInt8], valueBytes: [UInt8], _ code: RegistrationError.Code, _ field: String?) {
    self.label = label
    self.key = keyBytes
    self.value = valueBytes
    self.code = code
    self.field = field
  }
}
