import GRPCCore
import Logging
import Synchronization

/// An etcd v3 client over gRPC.
///
/// Create it, start ``run()`` in a task that lives as long as the client is used (or use
/// ``withEtcdClient(configuration:logger:_:)``), then call it from any task. Unary calls fail over
/// between the configured members; all watches share one stream and all lease keepalives share
/// another, and both streams move to a healthy member when theirs breaks.
///
/// ```swift
/// try await withEtcdClient(configuration: .init(endpoints: "127.0.0.1:2379")) { etcd in
///   try await etcd.put("/services/backend/a", value: "127.0.0.1:9001")
///   let result = try await etcd.get(.prefix("/services/backend/"))
/// }
/// ```
///
/// Every method throws ``EtcdError``.
public final class EtcdClient: Sendable {
  /// The configuration the client was created with.
  public let configuration: EtcdConfiguration
  let logger: Logger
  let pool: EndpointPool
  let tokens: TokenStore
  let watches: WatchManager
  let keepAlives: KeepAliveManager
  /// The options of every unary call: built once, they are the same for each.
  let unaryCallOptions: CallOptions
  private let lifecycle = Mutex<Lifecycle>(.idle)
  private let stopped: AsyncStream<Void>
  private let stop: AsyncStream<Void>.Continuation

  private enum Lifecycle {
    case idle, running, stopped
  }

  /// Creates a client; it does not connect until ``run()`` is called.
  ///
  /// - Throws: ``EtcdError`` with code ``EtcdError/Code/invalidArgument`` for a bad configuration.
  public init(configuration: EtcdConfiguration, logger: Logger = Logger(label: "etcd-client")) throws {
    try configuration.validate()
    self.configuration = configuration
    self.logger = logger
    self.pool = try EndpointPool(configuration: configuration)
    self.tokens = TokenStore(credentials: configuration.credentials)
    self.watches = WatchManager(logger: logger, hasCredentials: configuration.credentials != nil)
    self.keepAlives = KeepAliveManager(logger: logger)
    self.unaryCallOptions = Self.callOptions(timeout: nil, maxResponseBytes: configuration.maxResponseBytes)
    (stopped, stop) = AsyncStream.makeStream()
  }

  /// Maintains the connections and the shared watch and keepalive streams until the task is
  /// cancelled or ``shutdown()`` is called.
  public func run() async throws {
    // A client shut down before it ran (a body that finished at once) has nothing to do.
    let outcome = lifecycle.withLock { state -> Bool? in
      switch state {
      case .idle:
        state = .running
        return true
      case .stopped: return false
      default: return nil
      }
    }
    guard let shouldRun = outcome else {
      throw EtcdError.invalidArgument("EtcdClient.run() may only be called once")
    }
    guard shouldRun else { return }
    try await withTaskCancellationHandler {
      try await withThrowingTaskGroup(of: Void.self) { group in
        group.addTask { try await self.pool.run() }
        group.addTask { await self.watches.run(client: self) }
        group.addTask { await self.keepAlives.run(client: self) }
        // Streams stay open until cancelled, so shutdown cancels every task of the client.
        for await _ in stopped {}
        group.cancelAll()
        try await group.waitForAll()
      }
    } onCancel: {
      self.shutdown()
    }
  }

  /// Where the shared watch stream is open and how often it was opened.
  public var watchStream: StreamStatus { watches.streamStatus }

  /// Where the shared lease keepalive stream is open and how often it was opened.
  public var keepAliveStream: StreamStatus { keepAlives.streamStatus }

  /// Stops the client: watches and keepalives end, connections close.
  public func shutdown() {
    lifecycle.withLock { $0 = .stopped }
    stop.finish()
    watches.shutdown()
    keepAlives.shutdown()
    pool.shutdown()
  }

  // MARK: - Calls

  enum RetryPolicy {
    /// Safe to send again: reads, lease calls, status.
    case idempotent
    /// A mutation: only resent when the failed attempt never left this process.
    case mutation
  }

  /// How each unary call may be retried: writes are mutations, everything else is idempotent.
  static func retryPolicy(for call: String) -> RetryPolicy {
    switch call {
    case "KV.Put", "KV.DeleteRange", "KV.Txn", "KV.Compact": .mutation
    default: .idempotent
    }
  }

  /// Call options that lift the transport's 4 MiB cap on replies to the configured limit.
  func callOptions(timeout: Duration?) -> CallOptions {
    Self.callOptions(timeout: timeout, maxResponseBytes: configuration.maxResponseBytes)
  }

  private static func callOptions(timeout: Duration?, maxResponseBytes: Int) -> CallOptions {
    var options = CallOptions.defaults
    options.timeout = timeout
    options.waitForReady = false
    // grpc-swift-nio-transport takes the limit of a client call's inbound messages from
    // maxRequestMessageBytes; set both so that the limit holds whichever side reads it.
    options.maxRequestMessageBytes = maxResponseBytes
    options.maxResponseMessageBytes = maxResponseBytes
    return options
  }

  /// How long one attempt of a call may take on `member`.
  ///
  /// A member not known to be up gets the dial timeout. A member that answered before gets half
  /// the call's budget when the call may go to another member afterwards, so that one that hangs
  /// (a frozen process, a full disk) costs only part of the budget; a mutation, which cannot be
  /// resent once it may have reached etcd, gets all that is left.
  func attemptTimeout(remaining: Duration, knownHealthy: Bool, policy: RetryPolicy, canMove: Bool) -> Duration {
    guard knownHealthy else { return min(remaining, configuration.dialTimeout) }
    guard policy == .idempotent, canMove, pool.members.count > 1 else { return remaining }
    return min(remaining, max(configuration.requestTimeout / 2, configuration.dialTimeout))
  }

  /// Runs a unary call with failover, auth and the configured time budget.
  func unary<Result: Sendable>(
    _ name: String,
    policy explicitPolicy: RetryPolicy? = nil,
    member fixed: MemberConnection? = nil,
    _ body: @escaping @Sendable (MemberConnection, Metadata, CallOptions) async throws -> Result
  ) async throws -> Result {
    let policy = explicitPolicy ?? Self.retryPolicy(for: name)
    let clock = ContinuousClock()
    let deadline = clock.now.advanced(by: configuration.requestTimeout)
    var attempt = 0
    var refreshedToken = false
    // Why the last attempt failed, so that running out of time names the cause (a TLS handshake refused,
    // a member that does not listen) instead of only the time spent.
    var lastFailure: EtcdError?
    while true {
      try Task.checkCancellation()
      let member = fixed ?? pool.preferred()
      let remaining = clock.now.duration(to: deadline)
      guard remaining > .zero else {
        throw EtcdError(
          code: .timeout,
          message: "no member answered within \(configuration.requestTimeout)"
            + (lastFailure.map { "; last error from \($0.endpoint.map { "\($0)" } ?? "etcd"): \($0.message)" } ?? ""),
          endpoint: member.endpoint,
          call: name
        )
      }
      let knownHealthy = pool.isKnownHealthy(member)
      let timeout = attemptTimeout(
        remaining: remaining,
        knownHealthy: knownHealthy,
        policy: policy,
        canMove: fixed == nil
      )

      let token: String?
      do {
        token = try await tokens.token(client: self, member: member)
      } catch let error as EtcdError where error.code == .unavailable || error.code == .timeout {
        lastFailure = error
        if fixed == nil, attempt < 100 {
          pool.markFailed(member)
          try await sleepBeforeRetry(attempt: &attempt, deadline: deadline)
          continue
        }
        throw error
      }
      let metadata: Metadata = token.map { ["token": .string($0)] } ?? [:]

      do {
        // The attempt's timeout is kept by the member's event loop, not by grpc-swift (see
        // EventLoopTaskExecutor.run), so the call options carry none.
        let options = unaryCallOptions
        let result = try await member.executor.run(timeout: timeout) {
          try await body(member, metadata, options)
        }
        pool.markSucceeded(member)
        return result
      } catch let error as RPCError {
        let mapped = EtcdError(rpcError: error, endpoint: member.endpoint, call: name)
        if mapped.code == .invalidToken, let token, !refreshedToken {
          // Expired, invalidated by a change to the auth store, or lost by a restarted member:
          // fetch a new token once and send the call again (it was refused, so nothing happened).
          refreshedToken = true
          tokens.invalidate(token)
          continue
        }
        lastFailure = mapped
        if Self.shouldRetry(error, policy: policy, knownHealthy: knownHealthy), fixed == nil {
          logger.debug(
            "etcd call failed, trying another member",
            metadata: ["etcd.call": "\(name)", "etcd.endpoint": "\(member.endpoint)", "error": "\(error)"]
          )
          pool.markFailed(member)
          if clock.now < deadline {
            try await sleepBeforeRetry(attempt: &attempt, deadline: deadline)
            continue
          }
        }
        if error.code == .unavailable || error.code == .deadlineExceeded { pool.markFailed(member) }
        throw mapped
      } catch is CancellationError {
        throw EtcdError(code: .cancelled, message: "the call was cancelled", endpoint: member.endpoint, call: name)
      }
    }
  }

  /// Metadata for opening a stream on `member`: a current token, and etcd's require-leader flag so
  /// that a member cut off from its cluster ends the stream instead of holding it silently.
  func streamMetadata(member: MemberConnection) async throws -> Metadata {
    var metadata: Metadata = ["hasleader": "true"]
    if let token = try await tokens.token(client: self, member: member) {
      metadata.addString(token, forKey: "token")
    }
    return metadata
  }

  private func sleepBeforeRetry(attempt: inout Int, deadline: ContinuousClock.Instant) async throws {
    // The first retry goes straight to the next member; after a full round, back off.
    if attempt >= pool.members.count - 1 {
      let delay = configuration.backoff.delay(attempt: attempt - (pool.members.count - 1))
      let clock = ContinuousClock()
      let sleepUntil = min(clock.now.advanced(by: delay), deadline)
      try await Task.sleep(until: sleepUntil, clock: clock)
    }
    attempt += 1
  }

  /// Whether a failed attempt may be sent again to another member.
  static func shouldRetry(_ error: RPCError, policy: RetryPolicy, knownHealthy: Bool) -> Bool {
    switch error.code {
    case .unavailable:
      if error.message.contains("no leader") || error.message.contains("leader changed") {
        return policy == .idempotent
      }
      return policy == .idempotent || neverSent(error)
    case .deadlineExceeded:
      // The attempt's own timeout ran out (a hung member); a read may go to another member with
      // what is left of the budget, a write may have been applied and is never resent.
      return policy == .idempotent
    default:
      return false
    }
  }

  /// Whether the transport failed the call before any byte of it was written: then even a
  /// mutation can safely go to another member.
  ///
  /// Decided from grpc-swift-nio-transport's messages; should they change, writes are simply no
  /// longer resent, which is the safe direction.
  static func neverSent(_ error: RPCError) -> Bool {
    let message = error.message.lowercased()
    return [
      "channel is in a transient failure state",
      "channel isn't ready",
      "channel is closed",
      "channel is shutting down",
      "channel is shutdown",
      "subchannel isn't ready",
      "subchannel shutdown",
    ].contains { message.hasPrefix($0) }
  }
}

/// Where one of a client's shared streams is open, for status pages and tests.
public struct StreamStatus: Sendable, Hashable {
  /// The member the stream is open on; `nil` while none is open.
  public var endpoint: EtcdEndpoint?
  /// How many times the stream has been opened since the client started: more than one means it
  /// moved or reconnected.
  public var opens: Int

  /// Creates a status.
  public init(endpoint: EtcdEndpoint? = nil, opens: Int = 0) {
    self.endpoint = endpoint
    self.opens = opens
  }
}

/// Runs `body` with a client whose connections live exactly as long as the closure.
public func withEtcdClient<Result: Sendable>(
  configuration: EtcdConfiguration,
  logger: Logger = Logger(label: "etcd-client"),
  _ body: (EtcdClient) async throws -> Result
) async throws -> Result {
  let client = try EtcdClient(configuration: configuration, logger: logger)
  return try await withThrowingTaskGroup(of: Void.self) { group in
    group.addTask { try await client.run() }
    do {
      let result = try await body(client)
      client.shutdown()
      try await group.waitForAll()
      return result
    } catch {
      client.shutdown()
      group.cancelAll()
      try? await group.waitForAll()
      throw error
    }
  }
}

/// Holds the auth token; fetches it on first use and again after etcd rejects it.
final class TokenStore: Sendable {
  private let credentials: EtcdConfiguration.Credentials?
  private let current = Mutex<String?>(nil)

  init(credentials: EtcdConfiguration.Credentials?) {
    self.credentials = credentials
  }

  func token(client: EtcdClient, member: MemberConnection) async throws -> String? {
    guard let credentials else { return nil }
    if let token = current.withLock({ $0 }) { return token }
    var request = Etcdserverpb_AuthenticateRequest()
    request.name = credentials.username
    request.password = credentials.password
    var options = CallOptions.defaults
    options.timeout = client.configuration.dialTimeout
    options.waitForReady = false
    do {
      let response = try await member.auth.authenticate(request, options: options)
      current.withLock { $0 = response.token }
      return response.token
    } catch let error as RPCError {
      var mapped = EtcdError(rpcError: error, endpoint: member.endpoint, call: "Auth.Authenticate")
      if mapped.code == .invalidArgument || mapped.code == .authenticationFailed {
        mapped.code = .authenticationFailed
        mapped.message = "user \"\(credentials.username)\" could not log in: \(error.message)"
      }
      throw mapped
    }
  }

  func invalidate(_ token: String) {
    current.withLock { if $0 == token { $0 = nil } }
  }
}
