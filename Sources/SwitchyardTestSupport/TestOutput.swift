import Foundation

/// Where tests write what a person looks at afterwards (screenshots): `$SWITCHYARD_TEST_OUTPUT/<name>` when
/// that variable is set, else `.build/test-output/<name>` in the package's directory.
public enum TestOutput {
  /// The directory for `name` (`dashboard`), created if missing.
  public static func directory(_ name: String) throws -> String {
    let root: String
    if let configured = ProcessInfo.processInfo.environment["SWITCHYARD_TEST_OUTPUT"], !configured.isEmpty {
      root = configured
    } else {
      root = packageDirectory.appendingPathComponent(".build/test-output").path
    }
    let directory = "\(root)/\(name)"
    try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
    return directory
  }

  /// The package's directory: three levels above this file (`Sources/SwitchyardTestSupport/TestOutput.swift`).
  public static let packageDirectory: URL = URL(fileURLWithPath: #filePath)
    .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
}
