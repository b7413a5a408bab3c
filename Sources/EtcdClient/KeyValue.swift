import Foundation

/// Something that can be sent to etcd as a key or value: `String` (as UTF-8) or raw bytes.
public protocol EtcdBytesConvertible: Sendable {
  /// The bytes etcd stores.
  var etcdBytes: [UInt8] { get }
}

extension String: EtcdBytesConvertible {
  /// The string's UTF-8 bytes.
  public var etcdBytes: [UInt8] { Array(utf8) }
}

extension Substring: EtcdBytesConvertible {
  /// The string's UTF-8 bytes.
  public var etcdBytes: [UInt8] { Array(utf8) }
}

extension Array: EtcdBytesConvertible where Element == UInt8 {
  /// The bytes themselves.
  public var etcdBytes: [UInt8] { self }
}

/// A stored key and its value with etcd's revision bookkeeping.
public struct KeyValue: Sendable, Hashable {
  /// The key's bytes.
  public var key: [UInt8]
  /// The value's bytes (empty for keys-only reads and DELETE events).
  public var value: [UInt8]
  /// Revision of the last creation of this key.
  public var createRevision: Int64
  /// Revision of the last modification of this key.
  public var modRevision: Int64
  /// Number of modifications since creation (0 once deleted).
  public var version: Int64
  /// Lease the key is attached to, 0 for none.
  public var lease: Int64

  /// Creates a key-value.
  public init(
    key: [UInt8],
    value: [UInt8],
    createRevision: Int64 = 0,
    modRevision: Int64 = 0,
    version: Int64 = 0,
    lease: Int64 = 0
  ) {
    self.key = key
    self.value = value
    self.createRevision = createRevision
    self.modRevision = modRevision
    self.version = version
    self.lease = lease
  }

  /// The key decoded as UTF-8 (invalid sequences replaced).
  public var keyString: String { String(decoding: key, as: UTF8.self) }
  /// The value decoded as UTF-8 (invalid sequences replaced).
  public var valueString: String { String(decoding: value, as: UTF8.self) }

  init(_ proto: Mvccpb_KeyValue) {
    self.init(
      key: Array(proto.key),
      value: Array(proto.value),
      createRevision: proto.createRevision,
      modRevision: proto.modRevision,
      version: proto.version,
      lease: proto.lease
    )
  }
}

/// Where a reply came from and at which revision of the store.
public struct ResponseHeader: Sendable, Hashable {
  /// The cluster's ID.
  public var clusterID: UInt64
  /// The member that answered.
  public var memberID: UInt64
  /// The store's revision when the request was applied.
  public var revision: Int64
  /// The raft term when the request was applied.
  public var raftTerm: UInt64

  init(_ proto: Etcdserverpb_ResponseHeader) {
    clusterID = proto.clusterID
    memberID = proto.memberID
    revision = proto.revision
    raftTerm = proto.raftTerm
  }
}

/// A key or a range of keys: `[key, rangeEnd)`, or one key when `rangeEnd` is empty.
public struct KeyRange: Sendable, Hashable, ExpressibleByStringLiteral {
  /// First key of the range.
  public var key: [UInt8]
  /// End of the range (exclusive); empty means exactly `key`; `[0]` means every key ≥ `key`.
  public var rangeEnd: [UInt8]

  /// Creates a range from its raw parts.
  public init(key: [UInt8], rangeEnd: [UInt8]) {
    self.key = key
    self.rangeEnd = rangeEnd
  }

  /// A literal is a single key.
  public init(stringLiteral value: String) {
    self.init(key: Array(value.utf8), rangeEnd: [])
  }

  /// Exactly one key.
  public static func key(_ key: some EtcdBytesConvertible) -> KeyRange {
    KeyRange(key: key.etcdBytes, rangeEnd: [])
  }

  /// Every key that starts with `prefix`.
  public static func prefix(_ prefix: some EtcdBytesConvertible) -> KeyRange {
    let bytes = prefix.etcdBytes
    return KeyRange(key: bytes.isEmpty ? [0] : bytes, rangeEnd: prefixEnd(bytes))
  }

  /// Keys from `start` (inclusive) to `end` (exclusive).
  public static func range(from start: some EtcdBytesConvertible, to end: some EtcdBytesConvertible) -> KeyRange {
    KeyRange(key: start.etcdBytes, rangeEnd: end.etcdBytes)
  }

  /// Every key greater than or equal to `start`.
  public static func from(_ start: some EtcdBytesConvertible) -> KeyRange {
    KeyRange(key: start.etcdBytes, rangeEnd: [0])
  }

  /// Every key.
  public static var all: KeyRange { KeyRange(key: [0], rangeEnd: [0]) }

  /// The smallest key greater than every key with this prefix (`[0]` when there is none).
  static func prefixEnd(_ prefix: [UInt8]) -> [UInt8] {
    var end = prefix
    while let last = end.last {
      if last < 0xff {
        end[end.count - 1] = last + 1
        return end
      }
      end.removeLast()
    }
    return [0]
  }
}
