/// One registered instance, as the controller consumes it: a valid key and a valid value.
public struct ServiceInstance: Sendable, Hashable, Comparable {
  /// Where it is registered.
  public let key: RegistrationKey
  /// What it registered.
  public let registration: Registration
  /// The etcd revision of its last change (0 when unknown).
  public let modRevision: Int64

  /// Creates an instance.
  public init(key: RegistrationKey, registration: Registration, modRevision: Int64 = 0) {
    self.key = key
    self.registration = registration
    self.modRevision = modRevision
  }

  /// Parses one etcd entry. Errors always carry the key (made readable if it is not UTF-8).
  public static func parse(
    key: [UInt8],
    value: [UInt8],
    modRevision: Int64 = 0
  ) throws(RegistrationError) -> ServiceInstance {
    guard let keyText = String(validating: key, as: UTF8.self) else {
      throw RegistrationError(
        code: .invalidKey,
        key: String(decoding: key, as: UTF8.self),
        reason: "key is not valid UTF-8"
      )
    }
    do {
      let parsedKey = try RegistrationKey(parsing: keyText)
      let registration = try Registration.parse(value)
      return ServiceInstance(key: parsedKey, registration: registration, modRevision: modRevision)
    } catch {
      throw error.key == nil ? error.at(key: keyText) : error
    }
  }

  /// Parses a whole prefix read: every valid instance, plus one error per invalid entry, so that
  /// one bad entry never holds back the good ones. Instances are sorted by key (service, then
  /// instance); errors by key, then description. The same entries give the same result in any order.
  public static func parseAll(
    _ entries: [(key: [UInt8], value: [UInt8], modRevision: Int64)]
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
    valid.sort { ($0.key, $0.modRevision) < ($1.key, $1.modRevision) }
    invalid.sort { ($0.key ?? "", $0.description) < ($1.key ?? "", $1.description) }
    return (valid, invalid)
  }

  /// Orders by key.
  public static func < (lhs: ServiceInstance, rhs: ServiceInstance) -> Bool { lhs.key < rhs.key }
}
