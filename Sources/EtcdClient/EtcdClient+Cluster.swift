/// A member of the etcd cluster.
public struct Member: Sendable, Hashable {
  /// The member's ID.
  public var id: UInt64
  /// The member's name (empty until it has started).
  public var name: String
  /// URLs the member's peers use.
  public var peerURLs: [String]
  /// URLs clients use.
  public var clientURLs: [String]
  /// Whether the member is a non-voting learner.
  public var isLearner: Bool
}

/// One member's view of itself.
public struct MemberStatus: Sendable, Hashable {
  /// Who answered, and the store revision.
  public var header: ResponseHeader
  /// The etcd version.
  public var version: String
  /// Size of the backend database in bytes.
  public var dbSize: Int64
  /// The leader's member ID, 0 when there is none.
  public var leader: UInt64
  /// The current raft index.
  public var raftIndex: UInt64
  /// The current raft term.
  public var raftTerm: UInt64
  /// Alarms and other errors the member reports.
  public var errors: [String]
  /// Whether this member is a learner.
  public var isLearner: Bool
  /// Which endpoint answered.
  public var endpoint: EtcdEndpoint
}

extension EtcdClient {
  /// Lists the cluster's members.
  public func members() async throws -> [Member] {
    let response = try await unary("Cluster.MemberList") { member, metadata, options in
      try await member.cluster.memberList(Etcdserverpb_MemberListRequest(), metadata: metadata, options: options)
    }
    return response.members.map {
      Member(id: $0.id, name: $0.name, peerURLs: $0.peerUrls, clientURLs: $0.clientUrls, isLearner: $0.isLearner)
    }
  }

  /// The status of one configured endpoint (by default the one calls currently prefer). Does not
  /// fail over: a status is about a specific member.
  public func status(of endpoint: EtcdEndpoint? = nil) async throws -> MemberStatus {
    let member: MemberConnection
    if let endpoint {
      guard let found = pool.members.first(where: { $0.endpoint == endpoint }) else {
        throw EtcdError.invalidArgument("\(endpoint) is not one of the configured endpoints")
      }
      member = found
    } else {
      member = pool.preferred()
    }
    let response = try await unary("Maintenance.Status", member: member) {
      member,
      metadata,
      options in
      try await member.maintenance.status(Etcdserverpb_StatusRequest(), metadata: metadata, options: options)
    }
    return MemberStatus(
      header: ResponseHeader(response.header),
      version: response.version,
      dbSize: response.dbSize,
      leader: response.leader,
      raftIndex: response.raftIndex,
      raftTerm: response.raftTerm,
      errors: response.errors,
      isLearner: response.isLearner,
      endpoint: member.endpoint
    )
  }
}
