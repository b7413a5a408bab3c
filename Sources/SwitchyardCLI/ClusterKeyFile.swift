/// Where a command finds the cluster key: `--cluster-key FILE`, else `$SWITCHYARD_CLUSTER_KEY_FILE` (an empty
/// value counts as unset). `switchyard cert add` and `switchyard controller` both read it so.
enum ClusterKeyFile {
  /// The environment variable naming the file when `--cluster-key` is not given.
  static let variable = "SWITCHYARD_CLUSTER_KEY_FILE"

  /// The file, and how it was named (`--cluster-key` or `$SWITCHYARD_CLUSTER_KEY_FILE`, for errors); `nil`
  /// when neither names one.
  static func location(flag value: String?, environment: [String: String]) -> (path: String, source: String)? {
    if let value { return (value, "--cluster-key") }
    guard let path = environment[variable], !path.isEmpty else { return nil }
    return (path, "$\(variable)")
  }
}
