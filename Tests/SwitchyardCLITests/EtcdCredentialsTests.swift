import ArgumentParser
import EtcdClient
import Foundation
import Testing

@testable import SwitchyardCLI

/// A file in a fresh temporary directory, removed with it.
final class TemporaryFile: Sendable {
  let directory: String
  let path: String

  init(contents: String, name: String = "secret") throws {
    directory =
      FileManager.default.temporaryDirectory.appendingPathComponent("switchyard-cli-\(UUID().uuidString)").path
    try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
    path = directory + "/" + name
    try contents.write(toFile: path, atomically: true, encoding: .utf8)
  }

  deinit { try? FileManager.default.removeItem(atPath: directory) }
}

@Suite("etcd credentials from flags and the environment")
struct EtcdCredentialsTests {
  static let user = EtcdOptions.userVariable
  static let password = EtcdOptions.passwordVariable

  func credentials(
    user: String? = nil,
    passwordFile: String? = nil,
    _ environment: [String: String] = [:]
  ) throws -> EtcdConfiguration.Credentials? {
    try EtcdOptions.credentials(user: user, passwordFile: passwordFile, environment: environment)
  }

  @Test("the variables are the documented ones")
  func names() {
    #expect(Self.user == "SWITCHYARD_ETCD_USER")
    #expect(Self.password == "SWITCHYARD_ETCD_PASSWORD")
  }

  @Test("no user anywhere means no credentials, and empty variables count as unset")
  func none() throws {
    #expect(try credentials() == nil)
    #expect(try credentials([Self.user: "", Self.password: ""]) == nil)
    #expect(try credentials(["ETCDCTL_USER": "root", "ETCDCTL_PASSWORD": "pw"]) == nil)
  }

  @Test("--user with --password-file reads the file's first line")
  func flags() throws {
    let file = try TemporaryFile(contents: "from-file\nsecond line\n")
    #expect(try credentials(user: "app", passwordFile: file.path) == .init(username: "app", password: "from-file"))
  }

  @Test("the user and password can both come from the environment")
  func environment() throws {
    let found = try credentials([Self.user: "app", Self.password: "from-env"])
    #expect(found == .init(username: "app", password: "from-env"))
  }

  @Test("--user takes the password from the environment, and wins over the user variable")
  func userFlagAndPasswordVariable() throws {
    let found = try credentials(user: "flag-user", [Self.user: "env-user", Self.password: "from-env"])
    #expect(found == .init(username: "flag-user", password: "from-env"))
  }

  @Test("--password-file wins over the password variable, with either source of the user")
  func fileWins() throws {
    let file = try TemporaryFile(contents: "from-file")
    let environment = [Self.user: "env-user", Self.password: "from-env"]
    #expect(try credentials(passwordFile: file.path, environment) == .init(username: "env-user", password: "from-file"))
    #expect(
      try credentials(user: "app", passwordFile: file.path, environment)
        == .init(username: "app", password: "from-file")
    )
  }

  @Test(
    "refuses half a set of credentials, naming what is missing",
    arguments: [
      (nil, false, [Self.password: "pw"], "SWITCHYARD_ETCD_USER"),
      ("app", false, [:], "SWITCHYARD_ETCD_PASSWORD"),
      ("app", false, [:], "--password-file"),
      (nil, false, [Self.user: "app"], "SWITCHYARD_ETCD_PASSWORD"),
      (nil, true, [:], "--user"),
      ("", false, [Self.password: "pw"], "non-empty"),
      ("a\nb", false, [Self.password: "pw"], "control"),
    ] as [(String?, Bool, [String: String], String)]
  )
  func refusesHalfCredentials(user: String?, withFile: Bool, environment: [String: String], mentions: String) throws {
    let file = try TemporaryFile(contents: "pw")
    do {
      let found = try credentials(user: user, passwordFile: withFile ? file.path : nil, environment)
      Issue.record("accepted: \(String(describing: found))")
    } catch let error as ValidationError {
      #expect(error.message.contains(mentions), "\(error.message)")
      #expect(!error.message.contains("pw\n") && !error.message.hasSuffix("pw"))
    }
  }

  @Test("a password file that is missing or empty is an error naming the flag, and never the contents")
  func badFiles() throws {
    let empty = try TemporaryFile(contents: "\nnot-the-password")
    for path in [empty.path, empty.directory + "/missing"] {
      do {
        _ = try credentials(user: "app", passwordFile: path)
        Issue.record("accepted \(path)")
      } catch let error as ValidationError {
        #expect(error.message.hasPrefix("--password-file: "))
        #expect(!error.message.contains("not-the-password"))
      }
    }
  }

  @Test("the parsed flags reach the configuration, with the environment passed in")
  func parsedOptions() throws {
    let file = try TemporaryFile(contents: "from-file")
    let options = try EtcdOptions.parse(["--user", "app", "--password-file", file.path])
    let configuration = try options.makeConfiguration(environment: [Self.password: "from-env"])
    #expect(configuration.credentials == .init(username: "app", password: "from-file"))
    let fromEnvironment = try EtcdOptions.parse([]).makeConfiguration(environment: [
      Self.user: "env-user", Self.password: "from-env",
    ])
    #expect(fromEnvironment.credentials == .init(username: "env-user", password: "from-env"))
    #expect(!String(describing: fromEnvironment).contains("from-env"))
  }
}
