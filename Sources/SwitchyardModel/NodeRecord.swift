/// One load-balancer node as it announces itself in etcd, under `/switchyard/nodes/<node-id>`, as JSON
/// with a lease, so that a node that dies disappears within the lease's TTL:
/// `{"admin_url":"http://127.0.0.1:9101","applied_revision":42,"haproxy_version":"2.6.12",
/// "listen":"127.0.0.1:8001","started":1796000000,"stats":"127.0.0.1:8401","switchyard_version":"0.26.0"}`.
///
/// Each node writes only its own key (in a secure cluster its etcd role allows nothing else); readers
/// (`switchyard status`, every node's dashboard) list them all. A value from etcd is untrusted: ``parse``
/// validates every field, refuses unknown ones, and its errors never repeat the input raw.
public struct NodeRecord: Sendable, Hashable {
  /// Every node's record lives under this prefix.
  public static let root = "/switchyard/nodes/"
  /// Largest accepted value, in bytes.
  public static let maxValueBytes = 2048
  /// Longest accepted version text.
  public static let maxVersionLength = 64
  /// The lease TTL nodes register with, in seconds.
  public static let ttl: Int64 = 10

  /// The node's id, as its controller's `--node-id`.
  public var node: InstanceID
  /// Where HAProxy accepts client traffic.
  public var listen: HostPort
  /// Where HAProxy serves its stats page (and `/metrics`).
  public var stats: HostPort
  /// The controller's admin address: `http://host:port` or `https://host:port`, no path.
  public var adminURL: String
  /// The Switchyard version the controller runs.
  public var switchyardVersion: String
  /// The HAProxy version the node runs, once known.
  public var haproxyVersion: String?
  /// The etcd revision HAProxy was last brought in step with, as of the last write (a node writes it at
  /// most every few seconds; its `/state` has the live figure).
  public var appliedRevision: Int64
  /// When the controller started, in seconds since 1970.
  public var started: Int64

  /// The key of node `node`.
  public static func key(of node: InstanceID) -> String { root + node.rawValue }

  /// Creates a record; `adminURL` and the versions are validated as ``parse`` does.
  public init(
    node: InstanceID,
    listen: HostPort,
    stats: HostPort,
    adminURL: String,
    switchyardVersion: String,
    haproxyVersion: String? = nil,
    appliedRevision: Int64 = 0,
    started: Int64
  ) throws(RegistrationError) {
    if let problem = Self.adminURLProblem(adminURL) {
      throw RegistrationError(code: .invalidField, field: "admin_url", reason: problem)
    }
    for (field, version) in [("switchyard_version", switchyardVersion), ("haproxy_version", haproxyVersion)] {
      if let version, let problem = Self.versionProblem(version) {
        throw RegistrationError(code: .invalidField, field: field, reason: problem)
      }
    }
    guard appliedRevision >= 0 else {
      throw RegistrationError(code: .invalidField, field: "applied_revision", reason: "must not be negative")
    }
    guard started >= 0 else {
      throw RegistrationError(code: .invalidField, field: "started", reason: "must not be negative")
    }
    self.node = node
    self.listen = listen
    self.stats = stats
    self.adminURL = adminURL
    self.switchyardVersion = switchyardVersion
    self.haproxyVersion = haproxyVersion
    self.appliedRevision = appliedRevision
    self.started = started
  }

  /// Why `url` is not an admin address (`http://host:port` or `https://host:port`), or nil.
  public static func adminURLProblem(_ url: String) -> String? {
    let rest: Substring
    if url.hasPrefix("http://") {
      rest = url.dropFirst("http://".count)
    } else if url.hasPrefix("https://") {
      rest = url.dropFirst("https://".count)
    } else {
      return "must start with http:// or https://"
    }
    do {
      _ = try HostPort(parsing: String(rest))
    } catch {
      return "must be http(s)://host:port with nothing after the port (\(error.reason))"
    }
    return nil
  }

  /// Why `version` is not a version text (1 to 64 of letters, digits, `.`, `-`, `+`, `_` and `~`), or nil.
  public static func versionProblem(_ version: String) -> String? {
    guard !version.isEmpty else { return "is empty" }
    guard version.utf8.count <= maxVersionLength else {
      return "is \(version.utf8.count) bytes; at most \(maxVersionLength) are accepted"
    }
    for scalar in version.unicodeScalars {
      let allowed =
        ("a"..."z").contains(scalar) || ("A"..."Z").contains(scalar) || ("0"..."9").contains(scalar)
        || ".-+_~".unicodeScalars.contains(scalar)
      if !allowed { return "contains \(describe(scalar)); only letters, digits, \".\", \"-\", \"+\", \"_\" and \"~\"" }
    }
    return nil
  }

  /// The JSON fields of a record; anything else is refused.
  static let fields = [
    "admin_url", "applied_revision", "haproxy_version", "listen", "started", "stats", "switchyard_version",
  ]

  private struct Encoded: Encodable {
    var adminURL: String
    var appliedRevision: Int64
    var haproxyVersion: String?
    var listen: String
    var started: Int64
    var stats: String
    var switchyardVersion: String

    enum CodingKeys: String, CodingKey {
      case adminURL = "admin_url"
      case appliedRevision = "applied_revision"
      case haproxyVersion = "haproxy_version"
      case listen, started, stats
      case switchyardVersion = "switchyard_version"
    }
  }

  /// The value to write: compact JSON with sorted keys.
  public func encoded() -> [UInt8] {
    ModelJSON.encode(
      Encoded(
        adminURL: adminURL, appliedRevision: appliedRevision, haproxyVersion: haproxyVersion,
        listen: listen.description, started: started, stats: stats.description,
        switchyardVersion: switchyardVersion))
  }

  /// Parses one etcd entry under ``root``: the key must be exactly `/switchyard/nodes/<node-id>`, the value
  /// a JSON object of the fields ``encoded()`` writes and nothing else. Errors carry the key (made readable
  /// if it is not UTF-8) and name the field.
  public static func parse(key: [UInt8], value: [UInt8]) throws(RegistrationError) -> NodeRecord {
    let keyText = String(decoding: key, as: UTF8.self)
    do throws(RegistrationError) {
      let segment = try ModelJSON.keySegment(key, under: root, placeholder: "<node-id>")
      let node: InstanceID
      do { node = try InstanceID(validating: segment) } catch { throw error.at(key: keyText, code: .invalidKey) }
      let object = try ModelJSON.object(
        from: value, maxBytes: maxValueBytes, example: #"{"listen":"127.0.0.1:8001",…}"#)
      try object.rejectUnknown(known: fields)
      func required<T>(_ name: String, _ value: T?) throws(RegistrationError) -> T {
        guard let value else { throw object.failure(name, "is missing") }
        return value
      }
      func hostPort(_ name: String) throws(RegistrationError) -> HostPort {
        let text = try required(name, try object.string(name))
        do { return try HostPort(parsing: text) } catch { throw object.failure(name, error.reason) }
      }
      let revision = try object.integer("applied_revision", in: 0...Int.max) ?? 0
      let started = try required("started", try object.integer("started", in: 0...Int.max))
      return try NodeRecord(
        node: node,
        listen: try hostPort("listen"),
        stats: try hostPort("stats"),
        adminURL: try required("admin_url", try object.string("admin_url")),
        switchyardVersion: try required("switchyard_version", try object.string("switchyard_version")),
        haproxyVersion: try object.string("haproxy_version"),
        appliedRevision: Int64(revision),
        started: Int64(started)
      )
    } catch {
      throw error.key == nil ? error.at(key: keyText) : error
    }
  }
}

/// The version of Switchyard this binary is.
public enum SwitchyardVersion {
  /// `0.26.0`: the minor number follows the last issue the release contains.
  public static let current = "0.26.0"
}
