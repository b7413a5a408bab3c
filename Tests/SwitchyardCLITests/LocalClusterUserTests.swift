import ArgumentParser
import EtcdClient
import Foundation
import Testing

@testable import SwitchyardCLI

/// Which user an operator's command connects to a secure local cluster as, when its options name none:
/// `operator` for commands that manage routes, service settings and overrides, `root` for the rest.
@Suite("local cluster credentials: operator or root")
struct LocalClusterUserTests {
  /// A state directory that looks like one made by `switchyard up --secure`: its state file and the
  /// password files of `users` (no process, no certificate is needed to build a configuration).
  private func secureHome(users: [String]) throws -> TemporaryFile {
    let state = """
      {"etcd":"etcd","parts":[],"ports":{"admin":[9101],"etcdClient":[2379],"etcdPeer":[2380],"lb":[8001],\
      "stats":[8401]},"secure":true,"switchyard":"/usr/local/bin/switchyard","version":1}
      """
    let home = try TemporaryFile(contents: state, name: "cluster.json")
    try FileManager.default.createDirectory(atPath: home.directory + "/secrets", withIntermediateDirectories: true)
    for user in users {
      try "password-of-\(user)\n".write(
        toFile: "\(home.directory)/secrets/\(user).password", atomically: true, encoding: .utf8)
    }
    return home
  }

  private func credentials(
    _ arguments: [String] = [],
    as user: LocalClusterUser,
    home: TemporaryFile
  ) throws -> EtcdConfiguration.Credentials? {
    let options = try EtcdOptions.parse(arguments)
    return try options.makeConfiguration(localCluster: user, environment: ["SWITCHYARD_HOME": home.directory])
      .credentials
  }

  @Test("operator's commands connect as operator, the others as root, over TLS to the cluster's members")
  func operatorAndRoot() throws {
    let home = try secureHome(users: ["root", "operator"])
    #expect(try credentials(as: .operator, home: home) == .init(username: "operator", password: "password-of-operator"))
    #expect(try credentials(as: .root, home: home) == .init(username: "root", password: "password-of-root"))
    let configuration = try EtcdOptions.parse([]).makeConfiguration(
      localCluster: .operator, environment: ["SWITCHYARD_HOME": home.directory])
    #expect(configuration.tls?.clientCertificatePath == "\(home.directory)/pki/operator.pem")
    #expect(configuration.requestTimeout == .seconds(10))
  }

  @Test("a cluster made before the operator user existed: operator's commands connect as root")
  func olderCluster() throws {
    let home = try secureHome(users: ["root"])
    #expect(try credentials(as: .operator, home: home)?.username == "root")
  }

  @Test("credentials given on the command line win; the timeouts are the options' own")
  func explicitOptions() throws {
    let home = try secureHome(users: ["root", "operator"])
    let password = "\(home.directory)/secrets/root.password"
    let given = try credentials(["--user", "alice", "--password-file", password], as: .operator, home: home)
    #expect(given == .init(username: "alice", password: "password-of-root"))
    let configuration = try EtcdOptions.parse(["--request-timeout", "3"]).makeConfiguration(
      localCluster: .operator, environment: ["SWITCHYARD_HOME": home.directory])
    #expect(configuration.requestTimeout == .seconds(3))
    #expect(configuration.credentials?.username == "operator")
    #expect(throws: (any Error).self) {
      try EtcdOptions.parse(["--request-timeout", "0"]).makeConfiguration(
        localCluster: .operator, environment: ["SWITCHYARD_HOME": home.directory])
    }
  }
}
