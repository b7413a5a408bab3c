import Foundation
import SwitchyardProcess

#if canImport(Glibc)
  import Glibc
#elseif canImport(Darwin)
  import Darwin
#endif

/// An HAProxy release, as `haproxy -v` (`HAProxy version 3.0.11-1+deb13u4 2026/10/15 - …`) and the Runtime
/// API's `show info` (`Version: 3.0.11-1+deb13u4`) print it.
///
/// Releases compare by major, minor and patch number; what follows (`-1+deb13u4`, `-dev5`) is kept in
/// ``text`` only.
public struct HAProxyVersion: Sendable, Hashable, Comparable, CustomStringConvertible {
  /// The major number: 3 in 3.0.11.
  public var major: Int
  /// The minor number: 0 in 3.0.11.
  public var minor: Int
  /// The patch number: 11 in 3.0.11; 0 when the version has none (`3.1-dev5`).
  public var patch: Int
  /// The version as HAProxy printed it, with a distribution's suffix (`3.0.11-1+deb13u4`).
  public var text: String

  /// The oldest release Switchyard supports: 2.6 brought `option idle-close-on-response`, which keeps
  /// reloads from closing idle keep-alive connections under a client, and dynamic servers that can be
  /// deleted (`del server`), which the Runtime API path needs.
  public static let oldestSupported = HAProxyVersion(major: 2, minor: 6, patch: 0)

  /// Creates a version from its numbers.
  public init(major: Int, minor: Int, patch: Int = 0, text: String? = nil) {
    self.major = major
    self.minor = minor
    self.patch = patch
    self.text = text ?? "\(major).\(minor).\(patch)"
  }

  /// Reads a version from `haproxy -v` output, a `show info` reply, or the version alone
  /// (`2.6.12-1+deb12u2`); `nil` when none of them holds one.
  public init?(parsing output: String) {
    for line in output.split(whereSeparator: \.isNewline) {
      let words = line.split(separator: " ")
      let candidate: Substring?
      if let index = words.firstIndex(where: { $0.lowercased() == "version" }), index + 1 < words.count,
        words.first?.lowercased() == "haproxy"
      {
        candidate = words[index + 1]  // `HAProxy version 3.0.11-1+deb13u4 2026/10/15 - https://haproxy.org/`
      } else if words.first == "Version:", words.count >= 2 {
        candidate = words[1]  // `Version: 3.0.11-1+deb13u4` (show info)
      } else if words.count == 1 {
        candidate = words[0]
      } else {
        candidate = nil
      }
      if let candidate, let version = Self.numbers(candidate) {
        self = version
        return
      }
    }
    return nil
  }

  /// `3.0.11-1+deb13u4` → 3.0.11; `3.1-dev5` → 3.1.0; `nil` unless it starts with `<major>.<minor>`.
  private static func numbers(_ word: Substring) -> HAProxyVersion? {
    let release = word.prefix { $0.isNumber || $0 == "." }
    let parts = release.split(separator: ".", omittingEmptySubsequences: false).map { Int($0) }
    guard parts.count >= 2, parts.count <= 3, let major = parts[0], let minor = parts[1] else { return nil }
    let patch = parts.count == 3 ? parts[2] : 0
    guard let patch else { return nil }
    return HAProxyVersion(major: major, minor: minor, patch: patch, text: String(word))
  }

  /// `major.minor`, the release series (`3.0`).
  public var series: String { "\(major).\(minor)" }

  /// Whether Switchyard supports this release (``oldestSupported`` or newer).
  public var isSupported: Bool { self >= Self.oldestSupported }

  /// The version as HAProxy printed it.
  public var description: String { text }

  public static func < (lhs: HAProxyVersion, rhs: HAProxyVersion) -> Bool {
    (lhs.major, lhs.minor, lhs.patch) < (rhs.major, rhs.minor, rhs.patch)
  }

  public static func == (lhs: HAProxyVersion, rhs: HAProxyVersion) -> Bool {
    (lhs.major, lhs.minor, lhs.patch) == (rhs.major, rhs.minor, rhs.patch)
  }

  public func hash(into hasher: inout Hasher) {
    hasher.combine(major)
    hasher.combine(minor)
    hasher.combine(patch)
  }

  /// The version of the HAProxy executable `executable` (`haproxy -v`), run with its output in
  /// `stateDirectory`.
  ///
  /// - Throws: ``HAProxyError/Code/processFailed`` if it cannot run or prints no version;
  ///   ``HAProxyError/Code/unsupportedVersion`` if it is older than ``oldestSupported``.
  public static func of(executable: String, stateDirectory: StateDirectory) async throws -> HAProxyVersion {
    let outputPath = stateDirectory.path(".version-\(UUID().uuidString.prefix(8)).out")
    defer { unlink(outputPath) }
    let child = try ChildProcess.haproxy(executable, arguments: ["-v"], outputPath: outputPath, newSession: false)
    let status = await child.waitForExit(timeout: .seconds(10))
    if status == nil { child.kill() }
    let output = FileManager.default.contents(atPath: outputPath).map { String(decoding: $0, as: UTF8.self) } ?? ""
    guard status?.isSuccess == true, let version = HAProxyVersion(parsing: output) else {
      throw HAProxyError(
        .processFailed, "\(executable) -v printed no HAProxy version (\(status?.description ?? "did not finish"))",
        details: output.split(separator: "\n").prefix(5).map(String.init))
    }
    try version.checkSupported(what: executable)
    return version
  }

  /// Throws ``HAProxyError/Code/unsupportedVersion`` unless this release is supported; `what` names the
  /// executable or process it belongs to.
  public func checkSupported(what: String) throws {
    guard isSupported else {
      throw HAProxyError(
        .unsupportedVersion,
        "\(what) is HAProxy \(text); Switchyard needs HAProxy \(Self.oldestSupported.series) or newer "
          + "(tested with 2.6 and 3.0)")
    }
  }
}
