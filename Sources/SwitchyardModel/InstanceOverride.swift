import Foundation

/// An operator's word on one instance, kept in etcd apart from its registration, under
/// `/switchyard/overrides/<service>/<instance-id>`: a keyspace that registrars never write, so an
/// instance can be drained or taken out of service while it keeps itself registered.
///
/// The value is JSON: `{"state":"drain"}` or `{"state":"maint"}`, with an optional `reason` for people
/// (`{"state":"maint","reason":"disk replacement"}`). The controller applies the stricter of the two
/// states (``InstanceState/stricter(_:)``); deleting the key ends the override. An override of an
/// instance that is not registered waits for it.
public struct InstanceOverride: Sendable, Hashable {
  /// Every override lives under this prefix.
  public static let root = "/switchyard/overrides/"
  /// Longest accepted reason.
  public static let maxReasonLength = 256
  /// Largest accepted value.
  public static let maxValueBytes = 1024

  /// The instance it is about.
  public let instance: RegistrationKey
  /// The state it imposes: `drain` or `maint`.
  public let state: InstanceState
  /// Why, in the operator's words, when given; printable text only.
  public let reason: String?
  /// The etcd revision of its last change (0 when unknown).
  public let modRevision: Int64

  /// Creates an override. `state` must be `drain` or `maint` (an override of `up` would be none), and
  /// `reason` at most ``maxReasonLength`` printable characters.
  public init(
    instance: RegistrationKey, state: InstanceState, reason: String? = nil, modRevision: Int64 = 0
  ) throws(RegistrationError) {
    guard state != .up else {
      throw RegistrationError(
        code: .invalidField, field: "state", reason: "an override is \"drain\" or \"maint\"; delete it to end it")
    }
    if let reason, let problem = Self.reasonProblem(reason) {
      throw RegistrationError(code: .invalidField, field: "reason", reason: problem)
    }
    self.instance = instance
    self.state = state
    self.reason = reason
    self.modRevision = modRevision
  }

  /// The etcd key of the override of `instance`.
  public static func path(for instance: RegistrationKey) -> String {
    "\(root)\(instance.service.rawValue)/\(instance.instance.rawValue)"
  }

  /// The etcd key.
  public var path: String { Self.path(for: instance) }

  /// Parses one etcd entry under ``root``. Errors carry the key (made readable if it is not UTF-8).
  public static func parse(
    key: [UInt8], value: [UInt8], modRevision: Int64 = 0
  ) throws(RegistrationError) -> InstanceOverride {
    let keyText = String(decoding: key, as: UTF8.self)
    do throws(RegistrationError) {
      guard String(validating: key, as: UTF8.self) != nil else {
        throw RegistrationError(code: .invalidKey, reason: "key is not valid UTF-8")
      }
      let instance = try RegistrationKey(parsing: keyText, under: root)
      guard value.count <= maxValueBytes else {
        throw RegistrationError(
          code: .invalidValue, reason: "value is \(value.count) bytes; at most \(maxValueBytes) are accepted")
      }
      guard let object = try? JSONDecoder().decode([String: JSONValue].self, from: Data(value)) else {
        throw RegistrationError(
          code: .invalidValue, reason: "value is not a JSON object like {\"state\":\"drain\"}")
      }
      guard let stateValue = object["state"] else {
        throw RegistrationError(code: .invalidField, field: "state", reason: "is missing")
      }
      guard case .string(let text) = stateValue, let state = InstanceState(rawValue: text), state != .up else {
        throw RegistrationError(
          code: .invalidField, field: "state", reason: "\(stateValue.summary) is not one of \"drain\", \"maint\"")
      }
      var reason: String?
      if let reasonValue = object["reason"] {
        guard case .string(let text) = reasonValue else {
          throw RegistrationError(
            code: .invalidField, field: "reason", reason: "must be a string, not \(reasonValue.kind)")
        }
        reason = text
      }
      return try InstanceOverride(instance: instance, state: state, reason: reason, modRevision: modRevision)
    } catch {
      throw error.key == nil ? error.at(key: keyText) : error
    }
  }

  /// The value to write: compact JSON with sorted keys, `{"reason":"…","state":"maint"}`.
  public func encoded() -> [UInt8] {
    let encoder = JSONEncoder()
    encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
    let wire = Wire(reason: reason, state: state.rawValue)
    // Strings always encode; the empty fallback is unreachable.
    return Array((try? encoder.encode(wire)) ?? Data())
  }

  private struct Wire: Encodable {
    var reason: String?
    var state: String
  }

  /// Why `reason` cannot be an override's reason, or `nil`: it must be at most ``maxReasonLength``
  /// characters of printable text (no control characters), since status pages and logs show it.
  public static func reasonProblem(_ reason: String) -> String? {
    if reason.count > maxReasonLength { return "is longer than \(maxReasonLength) characters" }
    for scalar in reason.unicodeScalars where scalar.properties.generalCategory == .control {
      return "contains \(describe(scalar)); only printable text is allowed"
    }
    return nil
  }
}

extension InstanceState {
  /// The stricter of two states: `maint` over `drain` over `up`.
  public func stricter(_ other: InstanceState) -> InstanceState {
    func rank(_ state: InstanceState) -> Int {
      switch state {
      case .up: 0
      case .drain: 1
      case .maint: 2
      }
    }
    return rank(other) > rank(self) ? other : self
  }
}

extension ServiceInstance {
  /// The instance as the controller serves it under `override`: its state the stricter of the two.
  public func applying(_ override: InstanceOverride?) -> ServiceInstance {
    guard let override else { return self }
    let state = registration.state.stricter(override.state)
    guard state != registration.state else { return self }
    return ServiceInstance(
      key: key, registration: registration.with(state: state), modRevision: max(modRevision, override.modRevision))
  }
}
