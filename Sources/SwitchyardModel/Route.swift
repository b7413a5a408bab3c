import Foundation

/// A route's name: the `<name>` in `/switchyard/routes/<name>`.
///
/// The same characters as a service name (letters, digits, `-`, `_`, `.`), so it can be an etcd key
/// segment, a log field and part of an HAProxy name without escaping. There is deliberately no
/// string-literal conversion: every name from outside goes through `init(validating:)`.
public struct RouteName: Sendable, Hashable, Comparable, CustomStringConvertible {
  /// The name; only letters, digits, `-`, `_` and `.`.
  public let rawValue: String

  /// Longest accepted name, in bytes.
  public static let maxLength = 128

  /// Validates `text`; errors have code `.invalidName` and field `name`.
  public init(validating text: String) throws(RegistrationError) {
    if let problem = SafeName.problem(text, maxLength: Self.maxLength) {
      throw RegistrationError(code: .invalidName, field: "name", reason: problem)
    }
    rawValue = text
  }

  /// The name.
  public var description: String { rawValue }

  /// Orders by name (byte order, so the same on every machine).
  public static func < (lhs: RouteName, rhs: RouteName) -> Bool { lhs.rawValue < rhs.rawValue }
}

/// A route: requests for these hosts (any host when there are none) whose path starts with
/// ``pathPrefix`` go to ``service``.
///
/// Routes are kept in etcd under `/switchyard/routes/<name>` as JSON,
/// `{"hosts":["api.example.com"],"path_prefix":"/api","service":"api","strip_prefix":true}`: a keyspace
/// that registrars never write, so only operators decide where traffic goes. Hosts and prefix become
/// HAProxy map keys and Runtime API arguments, so both are validated strictly, and unknown JSON
/// fields are refused: a typo such as `path_prefx` must not silently route every path.
public struct Route: Sendable, Hashable {
  /// Every route lives under this prefix.
  public static let root = "/switchyard/routes/"
  /// Largest accepted value, in bytes.
  public static let maxValueBytes = 4096
  /// Most hosts in one route.
  public static let maxHosts = 32
  /// Longest accepted path prefix, in bytes.
  public static let maxPathPrefixBytes = 256
  /// Most segments in a path prefix.
  public static let maxPathSegments = 16
  /// Longest accepted HSTS max-age, in seconds: two years, what HSTS preload lists ask for.
  public static let maxHSTSMaxAge = 63_072_000

  /// The route's name, from its key.
  public let name: RouteName
  /// Where matching requests go.
  public let service: ServiceName
  /// Sorted, without duplicates; empty means any host.
  public let hosts: [HostPattern]
  /// Normalized: starts with `/`, no trailing `/` unless it is `/` itself; `/` is the default.
  public let pathPrefix: String
  /// Whether the prefix is removed from the path before the request goes on; the rest keeps a
  /// leading `/` (`/api/users` with prefix `/api` → `/users`, `/api` → `/`). Always `false` when the
  /// prefix is `/`, which has nothing to remove.
  public let stripPrefix: Bool
  /// Whether a plain HTTP request is redirected to HTTPS (308, same host, path and query); only on
  /// nodes that serve HTTPS.
  public let redirectHTTPS: Bool
  /// The `max-age` of the `Strict-Transport-Security` header sent on HTTPS answers, in seconds
  /// (0…``maxHSTSMaxAge``; 0 tells browsers to forget the policy); `nil` sends no header. Never sent
  /// over plain HTTP (RFC 6797, section 7.2).
  public let hstsMaxAge: Int?
  /// Whether the HSTS header says `includeSubDomains`; only with ``hstsMaxAge``.
  public let hstsIncludeSubdomains: Bool
  /// Whether the cluster asks an ACME CA for a certificate for the route's hosts (HTTP-01, so only
  /// exact hosts: at least one, no wildcard).
  public let acme: Bool
  /// The etcd revision of its last change (0 when unknown).
  public let modRevision: Int64

  /// Creates a route. Hosts are sorted and deduplicated (at most ``maxHosts`` remain); the prefix is
  /// checked by ``pathPrefixProblem(_:)`` and normalized (`/api/` → `/api`). Errors have code
  /// `.invalidField` and field `hosts`, `path_prefix`, `hsts_max_age`, `hsts_include_subdomains` or
  /// `acme`.
  public init(
    name: RouteName,
    service: ServiceName,
    hosts: [HostPattern] = [],
    pathPrefix: String = "/",
    stripPrefix: Bool = false,
    redirectHTTPS: Bool = false,
    hstsMaxAge: Int? = nil,
    hstsIncludeSubdomains: Bool = false,
    acme: Bool = false,
    modRevision: Int64 = 0
  ) throws(RegistrationError) {
    let unique = Array(Set(hosts)).sorted()
    guard unique.count <= Self.maxHosts else {
      throw RegistrationError(
        code: .invalidField, field: "hosts", reason: "has \(unique.count) hosts; at most \(Self.maxHosts) are accepted")
    }
    guard let normalized = Self.normalizedPathPrefix(pathPrefix) else {
      let problem = Self.pathPrefixProblem(pathPrefix) ?? "is not a valid path prefix"
      throw RegistrationError(code: .invalidField, field: "path_prefix", reason: problem)
    }
    if let hstsMaxAge, !(0...Self.maxHSTSMaxAge).contains(hstsMaxAge) {
      throw RegistrationError(
        code: .invalidField, field: "hsts_max_age", reason: "\(hstsMaxAge) is outside 0–\(Self.maxHSTSMaxAge) seconds")
    }
    if hstsIncludeSubdomains, hstsMaxAge == nil {
      throw RegistrationError(
        code: .invalidField, field: "hsts_include_subdomains", reason: "needs \"hsts_max_age\" to be set")
    }
    if acme {
      if unique.isEmpty {
        throw RegistrationError(
          code: .invalidField, field: "acme",
          reason: "needs at least one host: ACME issues certificates for named hosts, not for any host")
      }
      if let wildcard = unique.first(where: { $0.kind == .wildcard }) {
        throw RegistrationError(
          code: .invalidField, field: "acme",
          reason: "cannot be used with the wildcard host \(wildcard.text): ACME HTTP-01 cannot prove a wildcard")
      }
    }
    self.name = name
    self.service = service
    self.hosts = unique
    self.pathPrefix = normalized
    self.stripPrefix = stripPrefix && normalized != "/"
    self.redirectHTTPS = redirectHTTPS
    self.hstsMaxAge = hstsMaxAge
    self.hstsIncludeSubdomains = hstsIncludeSubdomains
    self.acme = acme
    self.modRevision = modRevision
  }

  /// The etcd key of the route named `name`: `/switchyard/routes/<name>`.
  public static func path(for name: RouteName) -> String { root + name.rawValue }

  /// The etcd key.
  public var path: String { Self.path(for: name) }

  /// Number of segments of the prefix: `/` → 0, `/api` → 1, `/api/v1` → 2; what orders routes from
  /// the most specific prefix to the least.
  public var pathSegments: Int { Self.segments(of: pathPrefix).count }

  /// Whether a request path (without its query) matches the prefix, whole segments only: `/api`
  /// matches `/api`, `/api/` and `/api/x`, not `/apix`; `/` matches every path. Pure, for tests and
  /// docs; bytes are compared, never Unicode-equivalent characters.
  public func matchesPath(_ path: String) -> Bool {
    if pathPrefix == "/" { return true }
    let bytes = Array(path.utf8)
    let prefix = Array(pathPrefix.utf8)
    guard bytes.starts(with: prefix) else { return false }
    return bytes.count == prefix.count || bytes[prefix.count] == UInt8(ascii: "/")
  }

  /// The path the service receives for a request path, or `nil` when the route does not match it:
  /// the path itself, or with ``stripPrefix`` the rest after the prefix, always starting with `/`.
  public func forwardedPath(_ path: String) -> String? {
    guard matchesPath(path) else { return nil }
    guard stripPrefix else { return path }
    let rest = path.utf8.dropFirst(pathPrefix.utf8.count)
    return rest.isEmpty ? "/" : String(decoding: rest, as: UTF8.self)
  }

  // MARK: - Path prefix rules

  /// Why `prefix` cannot be a path prefix, or `nil` (public so the CLI validates before it writes).
  ///
  /// A prefix starts with `/`, is at most ``maxPathPrefixBytes`` bytes and ``maxPathSegments``
  /// segments, and holds only `A–Z a–z 0–9 - . _ ~ ! $ & ( ) * + , = : @ /` and `%` followed by two
  /// hex digits: nothing that could end a map key or a Runtime API argument. No empty segment
  /// (`//`), no `.` or `..` segment (also not percent-encoded); one trailing `/` is allowed and
  /// removed by normalization.
  public static func pathPrefixProblem(_ prefix: String) -> String? {
    guard prefix.hasPrefix("/") else { return "\(quoted(prefix)) does not start with \"/\"" }
    guard prefix.utf8.count <= maxPathPrefixBytes else { return "is longer than \(maxPathPrefixBytes) bytes" }
    if prefix.contains("//") { return "has an empty segment (\"//\")" }
    let scalars = Array(prefix.unicodeScalars)
    for (index, scalar) in scalars.enumerated() {
      if scalar == "%" {
        let hex = scalars.dropFirst(index + 1).prefix(2)
        guard hex.count == 2, hex.allSatisfy({ $0.properties.isASCIIHexDigit }) else {
          return "has \"%\" not followed by two hex digits"
        }
      } else if !isPathCharacter(scalar) {
        return
          "contains \(describe(scalar)); only letters, digits, \"%XX\" and - . _ ~ ! $ & ( ) * + , = : @ / are allowed"
      }
    }
    let segments = segments(of: trimmingTrailingSlash(prefix))
    guard segments.count <= maxPathSegments else {
      return "has \(segments.count) segments; at most \(maxPathSegments) are accepted"
    }
    for segment in segments {
      let decoded = segment.replacingOccurrences(of: "%2e", with: ".", options: .caseInsensitive)
      if decoded == "." || decoded == ".." { return "has a \".\" or \"..\" segment (also when percent-encoded)" }
    }
    return nil
  }

  /// `prefix` normalized (`/api/` → `/api`), or `nil` when ``pathPrefixProblem(_:)`` has an objection.
  public static func normalizedPathPrefix(_ prefix: String) -> String? {
    pathPrefixProblem(prefix) == nil ? trimmingTrailingSlash(prefix) : nil
  }

  private static func trimmingTrailingSlash(_ prefix: String) -> String {
    prefix.count > 1 && prefix.hasSuffix("/") ? String(prefix.dropLast()) : prefix
  }

  /// The segments of a normalized prefix: none for `/`.
  private static func segments(of prefix: String) -> [Substring] {
    prefix == "/" ? [] : prefix.dropFirst().split(separator: "/", omittingEmptySubsequences: false)
  }

  private static func isPathCharacter(_ scalar: Unicode.Scalar) -> Bool {
    switch scalar {
    case "a"..."z", "A"..."Z", "0"..."9", "-", ".", "_", "~", "!", "$", "&", "(", ")", "*", "+", ",", "=", ":", "@",
      "/":
      true
    default: false
    }
  }

  // MARK: - etcd

  /// Parses one etcd entry under ``root``. The key must be exactly `/switchyard/routes/<name>`; the
  /// value a JSON object with `service` (required), `hosts` (or one `host`), `path_prefix`,
  /// `strip_prefix`, `redirect_https`, `hsts_max_age`, `hsts_include_subdomains` and `acme`, and
  /// nothing else. Errors carry the key (made readable if it is not UTF-8).
  public static func parse(key: [UInt8], value: [UInt8], modRevision: Int64 = 0) throws(RegistrationError) -> Route {
    let keyText = String(decoding: key, as: UTF8.self)
    do throws(RegistrationError) {
      let segment = try ModelJSON.keySegment(key, under: root, placeholder: "<name>")
      let name: RouteName
      do { name = try RouteName(validating: segment) } catch { throw error.at(key: keyText, code: .invalidKey) }
      let object = try ModelJSON.object(
        from: value, maxBytes: maxValueBytes, example: #"{"service":"api","path_prefix":"/api"}"#)
      try object.rejectUnknown(known: [
        "acme", "host", "hosts", "hsts_include_subdomains", "hsts_max_age", "path_prefix", "redirect_https",
        "service", "strip_prefix",
      ])
      guard let serviceText = try object.string("service") else { throw object.failure("service", "is missing") }
      let service = try ServiceName(validating: serviceText)
      return try Route(
        name: name,
        service: service,
        hosts: try hosts(in: object, value: value),
        pathPrefix: try object.string("path_prefix") ?? "/",
        stripPrefix: try object.bool("strip_prefix") ?? false,
        redirectHTTPS: try object.bool("redirect_https") ?? false,
        hstsMaxAge: try object.integer("hsts_max_age", in: 0...maxHSTSMaxAge),
        hstsIncludeSubdomains: try object.bool("hsts_include_subdomains") ?? false,
        acme: try object.bool("acme") ?? false,
        modRevision: modRevision
      )
    } catch {
      throw error.key == nil ? error.at(key: keyText) : error
    }
  }

  /// `hosts` (an array of strings) or `host` (one string), never both.
  private static func hosts(in object: ModelJSON.Object, value: [UInt8]) throws(RegistrationError) -> [HostPattern] {
    if let single = try object.string("host") {
      guard object.members["hosts"] == nil else {
        throw object.failure("host", "cannot be given together with \"hosts\"")
      }
      do { return [try HostPattern(validating: single)] } catch { throw object.failure("host", error.reason) }
    }
    guard let list = object.members["hosts"] else { return [] }
    guard case .array = list else { throw object.failure("hosts", "must be an array of strings, not \(list.kind)") }
    let elements = try ModelJSON.array("hosts", in: value)
    guard elements.count <= maxHosts else {
      throw object.failure("hosts", "has \(elements.count) entries; at most \(maxHosts) are accepted")
    }
    var patterns: [HostPattern] = []
    for (index, element) in elements.enumerated() {
      guard case .string(let text) = element else {
        throw object.failure("hosts", "entry \(index) must be a string, not \(element.kind)")
      }
      patterns.append(try HostPattern(validating: text))
    }
    return patterns
  }

  /// The value to write: compact JSON with sorted keys, without `hosts` when empty, `path_prefix`
  /// when `/`, the booleans when false or `hsts_max_age` when unset:
  /// `{"hosts":["api.example.com"],"path_prefix":"/api","service":"api","strip_prefix":true}`.
  public func encoded() -> [UInt8] {
    let wire = Wire(
      acme: acme ? true : nil,
      hosts: hosts.isEmpty ? nil : hosts.map(\.text),
      hstsIncludeSubdomains: hstsIncludeSubdomains ? true : nil,
      hstsMaxAge: hstsMaxAge,
      pathPrefix: pathPrefix == "/" ? nil : pathPrefix,
      redirectHTTPS: redirectHTTPS ? true : nil,
      service: service.rawValue,
      stripPrefix: stripPrefix ? true : nil
    )
    return ModelJSON.encode(wire)
  }

  private struct Wire: Encodable {
    var acme: Bool?
    var hosts: [String]?
    var hstsIncludeSubdomains: Bool?
    var hstsMaxAge: Int?
    var pathPrefix: String?
    var redirectHTTPS: Bool?
    var service: String
    var stripPrefix: Bool?

    enum CodingKeys: String, CodingKey {
      case acme
      case hosts
      case hstsIncludeSubdomains = "hsts_include_subdomains"
      case hstsMaxAge = "hsts_max_age"
      case pathPrefix = "path_prefix"
      case redirectHTTPS = "redirect_https"
      case service
      case stripPrefix = "strip_prefix"
    }
  }
}
