extension NodeSnapshot {
  /// One certificate as a node serves it. Never holds key material: names, hosts, dates and fingerprints.
  public struct Certificate: Sendable, Hashable, Codable {
    /// The name under `/switchyard/certs/`.
    public var name: String
    /// The hosts it is served for (SNI); the default certificate has none.
    public var hosts: [String]
    /// `served`, `invalid` (the record in etcd was refused; the last good one, if any, stays in force),
    /// `pending` (not yet in HAProxy) or `default`.
    public var state: String
    /// `manual` or `acme`, from the record.
    public var source: String?
    /// When the served certificate expires, in seconds since 1970.
    public var notAfter: Int64?
    /// SHA-256 of the served leaf certificate (DER), hex.
    public var sha256Fingerprint: String?
    /// Why the record in etcd was refused, or why HAProxy does not serve it yet.
    public var problem: String?

    /// Creates an entry.
    public init(
      name: String, hosts: [String], state: String, source: String? = nil, notAfter: Int64? = nil,
      sha256Fingerprint: String? = nil, problem: String? = nil
    ) {
      self.name = name
      self.hosts = hosts
      self.state = state
      self.source = source
      self.notAfter = notAfter
      self.sha256Fingerprint = sha256Fingerprint
      self.problem = problem
    }
  }

  /// What a node's ACME coordinator reports: whether it leads, and each certificate it orders.
  public struct ACME: Sendable, Hashable, Codable {
    /// One certificate that ACME keeps.
    public struct Order: Sendable, Hashable, Codable {
      /// The certificate's name (`acme-<route>`).
      public var name: String
      /// The hosts it is ordered for.
      public var hosts: [String]
      /// `valid`, `ordering`, `renewing`, `backoff` or `waiting`.
      public var state: String
      /// The last error from the CA, in words.
      public var lastError: String?
      /// When the next attempt is due, in seconds since 1970.
      public var nextAttemptAt: Int64?

      /// Creates an entry.
      public init(name: String, hosts: [String], state: String, lastError: String? = nil, nextAttemptAt: Int64? = nil) {
        self.name = name
        self.hosts = hosts
        self.state = state
        self.lastError = lastError
        self.nextAttemptAt = nextAttemptAt
      }
    }

    /// The node that holds the ACME lease now, if known.
    public var leader: String?
    /// Whether this node is it.
    public var isLeader: Bool
    /// The certificates ordered or kept, as the leader last reported them (on other nodes, empty).
    public var orders: [Order]

    /// Creates a report.
    public init(leader: String?, isLeader: Bool, orders: [Order]) {
      self.leader = leader
      self.isLeader = isLeader
      self.orders = orders
    }
  }
}
