/// Where an instance is registered in etcd: `/services/<service>/<instance-id>`.
public struct RegistrationKey: Sendable, Hashable, Comparable, CustomStringConvertible {
  /// Every registration lives under this prefix.
  public static let root = "/services/"

  /// The service.
  public let service: ServiceName
  /// The instance.
  public let instance: InstanceID

  /// Creates a key from validated parts.
  public init(service: ServiceName, instance: InstanceID) {
    self.service = service
    self.instance = instance
  }

  /// Parses a raw etcd key, accepting exactly `/services/<service>/<instance-id>`: no missing,
  /// empty or extra segments, no trailing `/`. Errors have code `.invalidKey` and carry the key.
  public init(parsing key: String) throws(RegistrationError) {
    try self.init(parsing: key, under: Self.root)
  }

  /// Parses `<root><service>/<instance-id>` for another keyspace that names instances the same way
  /// (``InstanceOverride/root``).
  init(parsing key: String, under root: String) throws(RegistrationError) {
    guard key.hasPrefix(root) else {
      throw RegistrationError(code: .invalidKey, key: key, reason: "key is not under \(root)")
    }
    let segments = key.utf8.dropFirst(root.utf8.count).split(
      separator: UInt8(ascii: "/"),
      omittingEmptySubsequences: false
    )
    guard segments.count == 2 else {
      throw RegistrationError(
        code: .invalidKey,
        key: key,
        reason: "key must be \(root)<service>/<instance-id>, with exactly two segments after \(root)"
      )
    }
    do {
      service = try ServiceName(validating: String(decoding: segments[0], as: UTF8.self))
      instance = try InstanceID(validating: String(decoding: segments[1], as: UTF8.self))
    } catch {
      throw error.at(key: key, code: .invalidKey)
    }
  }

  /// The etcd key, `/services/backend/backend-1`.
  public var path: String { "\(Self.root)\(service.rawValue)/\(instance.rawValue)" }

  /// The prefix that holds every instance of `service`, `/services/backend/`, for range reads and watches.
  public static func prefix(for service: ServiceName) -> String { "\(root)\(service.rawValue)/" }

  /// The etcd key.
  public var description: String { path }

  /// Orders by service, then instance.
  public static func < (lhs: RegistrationKey, rhs: RegistrationKey) -> Bool {
    (lhs.service, lhs.instance) < (rhs.service, rhs.instance)
  }
}
