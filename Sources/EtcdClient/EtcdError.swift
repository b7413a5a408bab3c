import GRPCCore

/// An error from the etcd client: what went wrong, in which call, against which member.
///
/// Compare ``code`` to tell cases apart; codes are extensible without breaking the API.
public struct EtcdError: Error, Hashable, Sendable, CustomStringConvertible {
  /// The kind of failure.
  public struct Code: Hashable, Sendable, CustomStringConvertible {
    private enum Wrapped: Hashable, Sendable {
      case invalidArgument, unavailable, timeout, cancelled
      case compacted, futureRevision
      case leaseNotFound, leaseExpired, leaseRenewalDeadlinePassed
      case authenticationFailed, invalidToken, permissionDenied
      case noLeader, watchCanceled, server
    }
    private let wrapped: Wrapped
    private init(_ wrapped: Wrapped) { self.wrapped = wrapped }

    /// A request or configuration value was rejected before or by etcd.
    public static let invalidArgument = Code(.invalidArgument)
    /// No member could be reached, or the connection broke.
    public static let unavailable = Code(.unavailable)
    /// The call's time budget ran out.
    public static let timeout = Code(.timeout)
    /// The caller's task was cancelled.
    public static let cancelled = Code(.cancelled)
    /// The requested revision has been compacted; ``EtcdError/compactRevision`` tells the oldest
    /// revision still available. Watchers must re-read full state.
    public static let compacted = Code(.compacted)
    /// The requested revision is newer than the store's.
    public static let futureRevision = Code(.futureRevision)
    /// etcd does not know the lease (never granted, revoked or expired).
    public static let leaseNotFound = Code(.leaseNotFound)
    /// A keepalive reply said the lease has expired (TTL ≤ 0).
    public static let leaseExpired = Code(.leaseExpired)
    /// No keepalive reply arrived before the lease's TTL ran out: the lease may be lost.
    public static let leaseRenewalDeadlinePassed = Code(.leaseRenewalDeadlinePassed)
    /// User name or password was rejected.
    public static let authenticationFailed = Code(.authenticationFailed)
    /// The auth token was rejected even after fetching a new one (invalid or expired, older than
    /// the auth store's revision, or missing while authentication is enabled).
    public static let invalidToken = Code(.invalidToken)
    /// The user lacks permission for the key range.
    public static let permissionDenied = Code(.permissionDenied)
    /// The member has no leader (it may be partitioned from its cluster).
    public static let noLeader = Code(.noLeader)
    /// etcd cancelled a watch for a reason other than compaction.
    public static let watchCanceled = Code(.watchCanceled)
    /// Any other error reported by etcd.
    public static let server = Code(.server)

    /// The code's name.
    public var description: String { String(describing: wrapped) }
  }

  /// The kind of failure.
  public var code: Code
  /// Human-readable detail.
  public var message: String
  /// The member the failing call went to, when one was chosen.
  public var endpoint: EtcdEndpoint?
  /// The call that failed, such as `KV.Range` or `Watch`.
  public var call: String?
  /// For ``Code/compacted``: the compaction revision reported by etcd.
  public var compactRevision: Int64?
  /// For lease errors: the lease concerned.
  public var leaseID: Int64?
  /// The gRPC status code underneath, when there was one.
  public var grpcCode: String?

  /// Creates an error.
  public init(
    code: Code,
    message: String,
    endpoint: EtcdEndpoint? = nil,
    call: String? = nil,
    compactRevision: Int64? = nil,
    leaseID: Int64? = nil,
    grpcCode: String? = nil
  ) {
    self.code = code
    self.message = message
    self.endpoint = endpoint
    self.call = call
    self.compactRevision = compactRevision
    self.leaseID = leaseID
    self.grpcCode = grpcCode
  }

  /// The error a watch ends with when its start revision is older than the last compaction.
  public static func compacted(compactRevision: Int64, endpoint: EtcdEndpoint? = nil) -> EtcdError {
    EtcdError(
      code: .compacted,
      message: "revision has been compacted; the oldest available revision is \(compactRevision)",
      endpoint: endpoint,
      call: "Watch",
      compactRevision: compactRevision
    )
  }

  static func invalidArgument(_ message: String) -> EtcdError {
    EtcdError(code: .invalidArgument, message: message)
  }

  /// `etcd <call> via <endpoint> failed (<code>): <message>`
  public var description: String {
    var text = "etcd"
    if let call { text += " \(call)" }
    if let endpoint { text += " via \(endpoint)" }
    text += " failed (\(code)): \(message)"
    return text
  }
}

extension EtcdError {
  /// Maps a gRPC error from etcd to a typed error, recognising etcd's well-known messages.
  init(rpcError: RPCError, endpoint: EtcdEndpoint?, call: String) {
    let message = rpcError.message
    let code: Code
    switch rpcError.code {
    case .outOfRange where message.contains("compacted"):
      code = .compacted
    case .outOfRange where message.contains("future revision"):
      code = .futureRevision
    case .notFound where message.contains("lease not found"):
      code = .leaseNotFound
    case .invalidArgument where message.contains("authentication failed"),
      .invalidArgument where message.contains("password is invalid"):
      code = .authenticationFailed
    case .unauthenticated:
      code = .invalidToken
    case _ where message.contains("revision of auth store is old"),
      _ where message.contains("auth: revision in header is old"),
      .invalidArgument where message.contains("user name is empty"):
      // The token predates a change to users or roles (etcd 3.4 says "revision of auth store is
      // old"; 3.5 "auth: revision in header is old", with gRPC code unknown), or none was sent:
      // a new token fixes the first, credentials the last.
      code = .invalidToken
    case .permissionDenied:
      code = .permissionDenied
    case .unavailable where message.contains("no leader"):
      code = .noLeader
    case .unavailable:
      code = .unavailable
    case .deadlineExceeded:
      code = .timeout
    case .cancelled:
      code = .cancelled
    case .invalidArgument, .failedPrecondition:
      code = .invalidArgument
    default:
      code = .server
    }
    var detail = message
    if let cause = rpcError.cause {
      let text = "\(cause)"
      detail = Self.tlsProblem(in: text).map { "\($0) [\(text)]" } ?? "\(detail) (\(text))"
    }
    self.init(code: code, message: detail, endpoint: endpoint, call: call, grpcCode: "\(rpcError.code)")
  }

  /// A plain statement of a failed TLS handshake, from the TLS library's error text; `nil` for other errors.
  static func tlsProblem(in text: String) -> String? {
    if text.contains("CERTIFICATE_VERIFY_FAILED") {
      return "TLS handshake failed: the member's certificate is not signed by a CA we trust "
        + "(check --cacert / EtcdConfiguration.TLS.caCertificatePath)"
    }
    if text.contains("ALERT_BAD_CERTIFICATE") || text.contains("CERTIFICATE_REQUIRED")
      || text.contains("ALERT_UNKNOWN_CA") || text.contains("ALERT_CERTIFICATE_UNKNOWN")
    {
      return "TLS handshake failed: the member refused our client certificate (none was given, or the member's "
        + "CA did not sign it; check --cert and --key)"
    }
    if text.contains("WRONG_VERSION_NUMBER") || text.contains("PACKET_LENGTH_TOO_LONG") {
      return "TLS handshake failed: the member does not speak TLS on this port (use http://, or check the port)"
    }
    if text.contains("handshakeFailed") || text.contains("sslError") {
      return "TLS handshake failed"
    }
    return nil
  }
}
