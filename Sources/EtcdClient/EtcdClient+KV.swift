import Foundation
import GRPCCore

/// Options of a read.
public struct GetOptions: Sendable, Hashable {
  /// Order of returned keys.
  public enum SortOrder: Sendable, Hashable {
    case none, ascending, descending
  }
  /// What to sort by.
  public enum SortTarget: Sendable, Hashable {
    case key, version, createRevision, modRevision, value
  }

  /// Maximum number of keys to return; 0 for no limit.
  public var limit: Int64
  /// Read the store as of this revision; 0 for the latest.
  public var revision: Int64
  /// Answer from the local member without a quorum round (may be stale).
  public var serializable: Bool
  /// Return keys without values.
  public var keysOnly: Bool
  /// Return only the count of matching keys.
  public var countOnly: Bool
  /// Sort order; `.none` returns keys in key order.
  public var sortOrder: SortOrder
  /// Sort field, used when `sortOrder` is not `.none`.
  public var sortTarget: SortTarget

  /// Creates read options; the defaults read everything linearizably at the latest revision.
  public init(
    limit: Int64 = 0,
    revision: Int64 = 0,
    serializable: Bool = false,
    keysOnly: Bool = false,
    countOnly: Bool = false,
    sortOrder: SortOrder = .none,
    sortTarget: SortTarget = .key
  ) {
    self.limit = limit
    self.revision = revision
    self.serializable = serializable
    self.keysOnly = keysOnly
    self.countOnly = countOnly
    self.sortOrder = sortOrder
    self.sortTarget = sortTarget
  }
}

/// Options of a write.
public struct PutOptions: Sendable, Hashable {
  /// Lease to attach the key to; 0 for none.
  public var lease: Int64
  /// Return the previous key-value.
  public var prevKV: Bool
  /// Keep the current value (only the lease changes). The value argument must be empty.
  public var ignoreValue: Bool
  /// Keep the current lease (only the value changes). `lease` must be 0.
  public var ignoreLease: Bool

  /// Creates write options.
  public init(lease: Int64 = 0, prevKV: Bool = false, ignoreValue: Bool = false, ignoreLease: Bool = false) {
    self.lease = lease
    self.prevKV = prevKV
    self.ignoreValue = ignoreValue
    self.ignoreLease = ignoreLease
  }
}

/// The reply to a read.
public struct RangeResult: Sendable, Hashable {
  /// Revision the read was served at.
  public var header: ResponseHeader
  /// Matching key-values (empty for count-only reads).
  public var kvs: [KeyValue]
  /// Whether more keys matched than `limit` allowed.
  public var more: Bool
  /// Number of keys in the range.
  public var count: Int64

  init(_ proto: Etcdserverpb_RangeResponse) {
    header = ResponseHeader(proto.header)
    kvs = proto.kvs.map(KeyValue.init)
    more = proto.more
    count = proto.count
  }
}

/// The reply to a write.
public struct PutResult: Sendable, Hashable {
  /// Revision of the write.
  public var header: ResponseHeader
  /// The previous key-value, when asked for and it existed.
  public var prevKV: KeyValue?

  init(_ proto: Etcdserverpb_PutResponse) {
    header = ResponseHeader(proto.header)
    prevKV = proto.hasPrevKv ? KeyValue(proto.prevKv) : nil
  }
}

/// The reply to a delete.
public struct DeleteResult: Sendable, Hashable {
  /// Revision of the delete.
  public var header: ResponseHeader
  /// Number of keys deleted.
  public var deleted: Int64
  /// The deleted key-values, when asked for.
  public var prevKVs: [KeyValue]

  init(_ proto: Etcdserverpb_DeleteRangeResponse) {
    header = ResponseHeader(proto.header)
    deleted = proto.deleted
    prevKVs = proto.prevKvs.map(KeyValue.init)
  }
}

extension EtcdClient {
  /// Reads a key or range.
  public func get(_ range: KeyRange, options: GetOptions = GetOptions()) async throws -> RangeResult {
    let request = Self.rangeRequest(range, options: options)
    return try await unary("KV.Range") { member, metadata, callOptions in
      RangeResult(try await member.kv.range(request, metadata: metadata, options: callOptions))
    }
  }

  /// Reads a key or range in pages of at most `pageSize` keys, all at one revision, and returns
  /// them as one result.
  ///
  /// The first page is read at `options.revision` (the latest when 0) and every later page at that
  /// same revision, so the result is one consistent snapshot however large
  /// the range is, and no single reply has to carry all of it. `options.limit`, when set, caps the
  /// total. Keys come in key order; other sort orders and count-only reads are refused. If the
  /// snapshot's revision is compacted between pages, the read fails with
  /// ``EtcdError/Code/compacted``: read again.
  public func getPaginated(
    _ range: KeyRange,
    pageSize: Int = 1_000,
    options: GetOptions = GetOptions()
  ) async throws -> RangeResult {
    guard pageSize > 0 else { throw EtcdError.invalidArgument("pageSize must be positive, not \(pageSize)") }
    guard options.sortOrder == .none || (options.sortOrder == .ascending && options.sortTarget == .key),
      !options.countOnly
    else {
      throw EtcdError.invalidArgument(
        "a paginated read returns keys in key order; sorting and count-only are not supported")
    }
    var pageOptions = options
    pageOptions.limit = options.limit > 0 ? min(Int64(pageSize), options.limit) : Int64(pageSize)
    var result = try await get(range, options: pageOptions)
    // etcd's header carries the store's current revision; a read at the latest revision was served at
    // exactly that one, and every later page is read there too.
    if pageOptions.revision == 0 { pageOptions.revision = result.header.revision }
    while result.more, let last = result.kvs.last, options.limit == 0 || result.kvs.count < options.limit {
      if options.limit > 0 { pageOptions.limit = min(Int64(pageSize), options.limit - Int64(result.kvs.count)) }
      // The next page starts just past the last key read.
      let page = try await get(KeyRange(key: last.key + [0], rangeEnd: range.rangeEnd), options: pageOptions)
      result.kvs += page.kvs
      result.more = page.more
    }
    if options.limit == 0 || result.kvs.count < options.limit { result.more = false }
    return result
  }

  /// Reads one key; `nil` when it does not exist.
  public func value(of key: some EtcdBytesConvertible) async throws -> KeyValue? {
    try await get(.key(key)).kvs.first
  }

  /// Writes a key.
  @discardableResult
  public func put(
    _ key: some EtcdBytesConvertible,
    value: some EtcdBytesConvertible,
    options: PutOptions = PutOptions()
  ) async throws -> PutResult {
    let request = Self.putRequest(key: key.etcdBytes, value: value.etcdBytes, options: options)
    return try await unary("KV.Put") { member, metadata, callOptions in
      PutResult(try await member.kv.put(request, metadata: metadata, options: callOptions))
    }
  }

  /// Deletes a key or range.
  @discardableResult
  public func delete(_ range: KeyRange, prevKV: Bool = false) async throws -> DeleteResult {
    let request = Self.deleteRequest(range, prevKV: prevKV)
    return try await unary("KV.DeleteRange") { member, metadata, callOptions in
      DeleteResult(try await member.kv.deleteRange(request, metadata: metadata, options: callOptions))
    }
  }

  /// Runs a transaction: if every comparison holds, the `success` operations, else `failure`.
  public func txn(_ txn: Txn) async throws -> TxnResult {
    let request = txn.proto
    let policy: RetryPolicy = txn.isReadOnly ? .idempotent : .mutation
    return try await unary("KV.Txn", policy: policy) { member, metadata, callOptions in
      TxnResult(try await member.kv.txn(request, metadata: metadata, options: callOptions))
    }
  }

  /// Discards history before `revision`. With `physical`, waits until the space is reclaimed.
  @discardableResult
  public func compact(revision: Int64, physical: Bool = false) async throws -> ResponseHeader {
    let request = Etcdserverpb_CompactionRequest.with {
      $0.revision = revision
      $0.physical = physical
    }
    return try await unary("KV.Compact") { member, metadata, callOptions in
      ResponseHeader(try await member.kv.compact(request, metadata: metadata, options: callOptions).header)
    }
  }

  static func rangeRequest(_ range: KeyRange, options: GetOptions) -> Etcdserverpb_RangeRequest {
    var request = Etcdserverpb_RangeRequest()
    request.key = Data(range.key)
    request.rangeEnd = Data(range.rangeEnd)
    request.limit = options.limit
    request.revision = options.revision
    request.serializable = options.serializable
    request.keysOnly = options.keysOnly
    request.countOnly = options.countOnly
    switch options.sortOrder {
    case .none: request.sortOrder = .none
    case .ascending: request.sortOrder = .ascend
    case .descending: request.sortOrder = .descend
    }
    switch options.sortTarget {
    case .key: request.sortTarget = .key
    case .version: request.sortTarget = .version
    case .createRevision: request.sortTarget = .create
    case .modRevision: request.sortTarget = .mod
    case .value: request.sortTarget = .value
    }
    return request
  }

  static func putRequest(key: [UInt8], value: [UInt8], options: PutOptions) -> Etcdserverpb_PutRequest {
    var request = Etcdserverpb_PutRequest()
    request.key = Data(key)
    request.value = Data(value)
    request.lease = options.lease
    request.prevKv = options.prevKV
    request.ignoreValue = options.ignoreValue
    request.ignoreLease = options.ignoreLease
    return request
  }

  static func deleteRequest(_ range: KeyRange, prevKV: Bool) -> Etcdserverpb_DeleteRangeRequest {
    var request = Etcdserverpb_DeleteRangeRequest()
    request.key = Data(range.key)
    request.rangeEnd = Data(range.rangeEnd)
    request.prevKv = prevKV
    return request
  }
}
