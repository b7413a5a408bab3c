/// What the HAProxy release that runs does differently where planning depends on it. The controller
/// derives it from the version the running worker reports (`show info`); the default is what HAProxy 2.6
/// needs, which is safe on every supported release.
public struct RuntimeFeatures: Sendable, Hashable, CustomStringConvertible {
  /// Servers added with `add server` keep idle backend connections for reuse as the file's servers do
  /// (3.0). On 2.6 they do not unless told (`pool-max-conn -1` on the `add server` line).
  public var addedServersPoolConnections: Bool
  /// `del server` closes the server's idle connections itself (3.0), so a removal need not list the
  /// backend's connections (`show servers conn`, a row per server) to see when they are gone: it puts the
  /// server in maintenance and deletes it in one go; HAProxy refuses the delete while a request still
  /// runs there, and the next pass tries again until the drain timeout ends those requests.
  public var deleteClosesIdleConnections: Bool

  /// Creates a feature set.
  public init(addedServersPoolConnections: Bool = false, deleteClosesIdleConnections: Bool = false) {
    self.addedServersPoolConnections = addedServersPoolConnections
    self.deleteClosesIdleConnections = deleteClosesIdleConnections
  }

  /// The features of HAProxy `major.minor`: 3.0 and later have both; 2.6 and 2.8 neither (2.8 is not
  /// tested here and takes 2.6's way, which is safe on it).
  public init(major: Int, minor: Int) {
    let atLeast30 = (major, minor) >= (3, 0)
    self.init(addedServersPoolConnections: atLeast30, deleteClosesIdleConnections: atLeast30)
  }

  /// What HAProxy 2.6 needs, and the default.
  public static let haproxy26 = RuntimeFeatures()

  /// The names of the features that are on, for logs and `/state`.
  public var description: String {
    var names: [String] = []
    if addedServersPoolConnections { names.append("added-servers-pool-connections") }
    if deleteClosesIdleConnections { names.append("delete-closes-idle-connections") }
    return names.isEmpty ? "none" : names.joined(separator: ",")
  }
}
