import GRPCCore

/// A granted lease.
public struct Lease: Sendable, Hashable {
  /// The lease ID, used to attach keys (`PutOptions(lease:)`).
  public var id: Int64
  /// The TTL etcd granted, in seconds.
  public var ttl: Int64

  /// Creates a lease value.
  public init(id: Int64, ttl: Int64) {
    self.id = id
    self.ttl = ttl
  }
}

/// What etcd knows about a lease.
public struct LeaseTimeToLive: Sendable, Hashable {
  /// The lease ID.
  public var id: Int64
  /// Seconds left; -1 when the lease has expired or does not exist.
  public var ttl: Int64
  /// The TTL the lease was granted with.
  public var grantedTTL: Int64
  /// Keys attached to the lease, when asked for.
  public var keys: [[UInt8]]
}

extension EtcdClient {
  /// Grants a lease of `ttl` seconds; etcd picks the ID unless one is given.
  public func grantLease(ttl: Int64, id: Int64 = 0) async throws -> Lease {
    let request = Etcdserverpb_LeaseGrantRequest.with {
      $0.ttl = ttl
      $0.id = id
    }
    let response = try await unary("Lease.LeaseGrant", policy: id == 0 ? .mutation : .idempotent) {
      member,
      metadata,
      options in
      try await member.lease.leaseGrant(request, metadata: metadata, options: options)
    }
    guard response.error.isEmpty else {
      throw EtcdError(code: .server, message: response.error, call: "Lease.LeaseGrant")
    }
    return Lease(id: response.id, ttl: response.ttl)
  }

  /// Revokes a lease; every key attached to it is deleted.
  public func revokeLease(_ id: Int64) async throws {
    let request = Etcdserverpb_LeaseRevokeRequest.with { $0.id = id }
    _ = try await unary("Lease.LeaseRevoke") { member, metadata, options in
      try await member.lease.leaseRevoke(request, metadata: metadata, options: options)
    }
  }

  /// Asks etcd how long a lease has left.
  public func timeToLive(lease id: Int64, keys: Bool = false) async throws -> LeaseTimeToLive {
    let request = Etcdserverpb_LeaseTimeToLiveRequest.with {
      $0.id = id
      $0.keys = keys
    }
    let response = try await unary("Lease.LeaseTimeToLive") { member, metadata, options in
      try await member.lease.leaseTimeToLive(request, metadata: metadata, options: options)
    }
    return LeaseTimeToLive(
      id: response.id,
      ttl: response.ttl,
      grantedTTL: response.grantedTtl,
      keys: response.keys.map { Array($0) }
    )
  }

  /// Lists the IDs of every live lease.
  public func leases() async throws -> [Int64] {
    let response = try await unary("Lease.LeaseLeases") { member, metadata, options in
      try await member.lease.leaseLeases(Etcdserverpb_LeaseLeasesRequest(), metadata: metadata, options: options)
    }
    return response.leases.map(\.id)
  }

  /// Keeps a lease alive for as long as the returned sequence is iterated.
  ///
  /// A renewal is sent every TTL/3 on the client's shared keepalive stream, which moves to another
  /// member when its connection breaks. Each reply is delivered as an element. The sequence ends by
  /// throwing ``EtcdError`` with code ``EtcdError/Code/leaseExpired`` when etcd reports the lease
  /// gone, or ``EtcdError/Code/leaseRenewalDeadlinePassed`` when no reply arrived within the TTL
  /// (the lease may be lost; check with ``timeToLive(lease:keys:)`` once etcd answers). Stop
  /// iterating (or cancel the task) to stop renewing.
  public func keepAlive(_ lease: Lease) -> LeaseKeepAliveSequence {
    LeaseKeepAliveSequence(manager: keepAlives, lease: lease)
  }
}

/// A renewal acknowledged by etcd.
public struct LeaseRenewal: Sendable, Hashable {
  /// The lease.
  public var id: Int64
  /// The lease's TTL after the renewal, in seconds.
  public var ttl: Int64
  /// The store revision of the reply.
  public var revision: Int64
}

/// The renewals of one lease; see ``EtcdClient/keepAlive(_:)``.
public struct LeaseKeepAliveSequence: AsyncSequence, Sendable {
  public typealias Element = LeaseRenewal
  public typealias Failure = any Error

  let manager: KeepAliveManager
  let lease: Lease

  /// Starts renewing and returns the iterator of replies.
  public func makeAsyncIterator() -> AsyncIterator {
    let (stream, continuation) = AsyncThrowingStream<LeaseRenewal, any Error>.makeStream()
    let token = manager.add(lease: lease, continuation: continuation)
    continuation.onTermination = { [manager] _ in manager.remove(token) }
    return AsyncIterator(base: stream.makeAsyncIterator())
  }

  /// Iterates renewals.
  public struct AsyncIterator: AsyncIteratorProtocol {
    var base: AsyncThrowingStream<LeaseRenewal, any Error>.AsyncIterator

    /// The next renewal; throws when the lease is expired or may be lost.
    public mutating func next() async throws -> LeaseRenewal? {
      try await base.next()
    }
  }
}
