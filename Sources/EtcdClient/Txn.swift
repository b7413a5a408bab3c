import Foundation

/// A condition of a transaction, evaluated atomically against the current store.
public struct Compare: Sendable, Hashable {
  /// How the key's field relates to the operand.
  public enum Result: Sendable, Hashable {
    case equal, notEqual, greater, less
  }
  /// The field compared, with its operand.
  public enum Target: Sendable, Hashable {
    /// Number of modifications since creation (0: the key does not exist).
    case version(Int64)
    /// Revision of the key's creation (0: the key does not exist).
    case createRevision(Int64)
    /// Revision of the key's last modification.
    case modRevision(Int64)
    /// The value's bytes.
    case value([UInt8])
    /// The lease the key is attached to.
    case lease(Int64)
  }

  /// The key (or range) compared.
  public var range: KeyRange
  /// The relation that must hold.
  public var result: Result
  /// The field and operand.
  public var target: Target

  /// Creates a comparison.
  public init(_ range: KeyRange, _ target: Target, _ result: Result) {
    self.range = range
    self.result = result
    self.target = target
  }

  /// The key's value equals `value`.
  public static func value(
    _ key: some EtcdBytesConvertible,
    _ result: Result = .equal,
    _ value: some EtcdBytesConvertible
  ) -> Compare {
    Compare(.key(key), .value(value.etcdBytes), result)
  }

  /// The key's version relates to `version` (`.version(k, .equal, 0)`: the key is absent).
  public static func version(_ key: some EtcdBytesConvertible, _ result: Result, _ version: Int64) -> Compare {
    Compare(.key(key), .version(version), result)
  }

  /// The key's creation revision relates to `revision`.
  public static func createRevision(_ key: some EtcdBytesConvertible, _ result: Result, _ revision: Int64) -> Compare {
    Compare(.key(key), .createRevision(revision), result)
  }

  /// The key's modification revision relates to `revision`.
  public static func modRevision(_ key: some EtcdBytesConvertible, _ result: Result, _ revision: Int64) -> Compare {
    Compare(.key(key), .modRevision(revision), result)
  }

  /// The key's lease relates to `lease`.
  public static func lease(_ key: some EtcdBytesConvertible, _ result: Result, _ lease: Int64) -> Compare {
    Compare(.key(key), .lease(lease), result)
  }

  var proto: Etcdserverpb_Compare {
    var compare = Etcdserverpb_Compare()
    compare.key = Data(range.key)
    compare.rangeEnd = Data(range.rangeEnd)
    switch result {
    case .equal: compare.result = .equal
    case .notEqual: compare.result = .notEqual
    case .greater: compare.result = .greater
    case .less: compare.result = .less
    }
    switch target {
    case .version(let value):
      compare.target = .version
      compare.version = value
    case .createRevision(let value):
      compare.target = .create
      compare.createRevision = value
    case .modRevision(let value):
      compare.target = .mod
      compare.modRevision = value
    case .value(let value):
      compare.target = .value
      compare.value = Data(value)
    case .lease(let value):
      compare.target = .lease
      compare.lease = value
    }
    return compare
  }
}

/// One operation inside a transaction.
public indirect enum TxnOp: Sendable, Hashable {
  /// A read.
  case get(KeyRange, GetOptions = GetOptions())
  /// A write.
  case put(key: [UInt8], value: [UInt8], options: PutOptions = PutOptions())
  /// A delete.
  case delete(KeyRange, prevKV: Bool = false)
  /// A nested transaction.
  case txn(Txn)

  /// A write of string or byte keys and values.
  public static func put(
    _ key: some EtcdBytesConvertible,
    _ value: some EtcdBytesConvertible,
    options: PutOptions = PutOptions()
  ) -> TxnOp {
    .put(key: key.etcdBytes, value: value.etcdBytes, options: options)
  }

  var isReadOnly: Bool {
    switch self {
    case .get: true
    case .put, .delete: false
    case .txn(let txn): txn.isReadOnly
    }
  }

  var proto: Etcdserverpb_RequestOp {
    var op = Etcdserverpb_RequestOp()
    switch self {
    case .get(let range, let options):
      op.requestRange = EtcdClient.rangeRequest(range, options: options)
    case .put(let key, let value, let options):
      op.requestPut = EtcdClient.putRequest(key: key, value: value, options: options)
    case .delete(let range, let prevKV):
      op.requestDeleteRange = EtcdClient.deleteRequest(range, prevKV: prevKV)
    case .txn(let txn):
      op.requestTxn = txn.proto
    }
    return op
  }
}

/// A transaction: `if all(compare) { success } else { failure }`, applied atomically.
public struct Txn: Sendable, Hashable {
  /// Conditions that must all hold.
  public var compare: [Compare]
  /// Operations when every condition holds.
  public var success: [TxnOp]
  /// Operations otherwise.
  public var failure: [TxnOp]

  /// Creates a transaction.
  public init(compare: [Compare] = [], success: [TxnOp] = [], failure: [TxnOp] = []) {
    self.compare = compare
    self.success = success
    self.failure = failure
  }

  var isReadOnly: Bool {
    (success + failure).allSatisfy(\.isReadOnly)
  }

  var proto: Etcdserverpb_TxnRequest {
    var request = Etcdserverpb_TxnRequest()
    request.compare = compare.map(\.proto)
    request.success = success.map(\.proto)
    request.failure = failure.map(\.proto)
    return request
  }
}

/// The result of one transaction operation.
public indirect enum TxnOpResult: Sendable, Hashable {
  case get(RangeResult)
  case put(PutResult)
  case delete(DeleteResult)
  case txn(TxnResult)
}

/// The reply to a transaction.
public struct TxnResult: Sendable, Hashable {
  /// Revision after the transaction.
  public var header: ResponseHeader
  /// Whether every comparison held (so `success` ran).
  public var succeeded: Bool
  /// One result per operation that ran.
  public var responses: [TxnOpResult]

  init(_ proto: Etcdserverpb_TxnResponse) {
    header = ResponseHeader(proto.header)
    succeeded = proto.succeeded
    responses = proto.responses.compactMap { op in
      switch op.response {
      case .responseRange(let range): .get(RangeResult(range))
      case .responsePut(let put): .put(PutResult(put))
      case .responseDeleteRange(let delete): .delete(DeleteResult(delete))
      case .responseTxn(let txn): .txn(TxnResult(txn))
      case .none: nil
      }
    }
  }
}
