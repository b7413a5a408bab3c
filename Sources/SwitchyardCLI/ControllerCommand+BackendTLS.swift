import ArgumentParser
import Foundation
import SwitchyardController

extension ControllerCommand {
  /// The absolute path of `--backend-ca`, checked: a readable file of PEM certificates (at least one, each
  /// one loading). `nil` without the flag: instances registered with `"tls": true` are then not served.
  func makeBackendCAPath() throws -> String? {
    guard let backendCA else { return nil }
    let path = URL(fileURLWithPath: backendCA).standardizedFileURL.path
    try Self.checkBackendCA(path)
    return path
  }

  /// Throws a `--backend-ca` error naming `path` unless it is a readable file that holds PEM certificates.
  /// The error never quotes the file's content.
  static func checkBackendCA(_ path: String) throws {
    var isDirectory: ObjCBool = false
    guard FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory) else {
      throw ValidationError("--backend-ca: \(path) does not exist")
    }
    guard !isDirectory.boolValue else { throw ValidationError("--backend-ca: \(path) is a directory, not a file") }
    guard let data = FileManager.default.contents(atPath: path) else {
      throw ValidationError("--backend-ca: \(path) cannot be read")
    }
    guard data.range(of: Data("-----BEGIN CERTIFICATE-----".utf8)) != nil else {
      throw ValidationError("--backend-ca: \(path) holds no PEM certificate (-----BEGIN CERTIFICATE-----)")
    }
    do {
      try Dashboard.checkCACertificate(path)
    } catch {
      throw ValidationError("--backend-ca: \(path) holds a PEM certificate that does not load")
    }
  }
}
