import ArgumentParser
import EtcdClient
import Foundation
import Logging

/// The options every command that talks to etcd takes.
///
/// `--etcd-endpoints` defaults to the `ETCD_ENDPOINTS` environment variable, else `127.0.0.1:2379`.
/// The user comes from `--user`, else `SWITCHYARD_ETCD_USER`; its password from the first line of
/// `--password-file`, else `SWITCHYARD_ETCD_PASSWORD`. A password is never a command-line argument,
/// which any user of the machine could read in the process list.
public struct EtcdOptions: ParsableArguments, Sendable {
  /// The environment variable that names the etcd user when `--user` is not given.
  public static let userVariable = "SWITCHYARD_ETCD_USER"
  /// The environment variable that holds the etcd user's password when `--password-file` is not given.
  public static let passwordVariable = "SWITCHYARD_ETCD_PASSWORD"

  @Option(
    name: .customLong("etcd-endpoints"),
    help: ArgumentHelp(
      "Comma-separated etcd members: host:port, http://host:port or https://host:port.",
      discussion: "Default: $ETCD_ENDPOINTS, else 127.0.0.1:2379.",
      valueName: "endpoints"
    )
  )
  var endpoints: String?

  @Option(
    name: .customLong("user"),
    help: ArgumentHelp(
      "etcd user name (auth enabled clusters).",
      discussion:
        "Default: $SWITCHYARD_ETCD_USER. Its password comes from --password-file or $SWITCHYARD_ETCD_PASSWORD."
    )
  )
  var user: String?

  @Option(
    name: .customLong("password-file"),
    help: ArgumentHelp(
      "File whose first line is the etcd user's password.",
      discussion:
        "Without it, the password is taken from $SWITCHYARD_ETCD_PASSWORD; the file wins when both are given. There is no option that takes the password itself."
    ),
    completion: .file()
  )
  var passwordFile: String?

  @Option(name: .customLong("cacert"), help: "CA certificate (PEM) that signs the etcd members' certificates.")
  var caCertificate: String?

  @Option(name: .customLong("cert"), help: "Client certificate (PEM) for TLS client authentication.")
  var certificate: String?

  @Option(name: .customLong("key"), help: "Private key (PEM) of the client certificate.")
  var key: String?

  @Option(name: .customLong("dial-timeout"), help: "Seconds to wait for an unreachable member before trying the next.")
  var dialTimeout: Double = 2

  @Option(name: .customLong("request-timeout"), help: "Seconds one etcd call may take, retries included.")
  var requestTimeout: Double = 10

  /// Creates options with defaults (used by ArgumentParser).
  public init() {}

  /// Checks the options without touching the network.
  public func validate() throws {
    _ = try makeConfiguration(environment: ProcessInfo.processInfo.environment)
  }

  /// The client configuration these options describe.
  ///
  /// With `localClusterRoot` (operator tools such as `switchyard etcd`, never a part of the system), options
  /// that name no endpoint, user or certificate mean the secure local cluster in the state directory, as
  /// root, when there is one.
  public func makeConfiguration(
    environment: [String: String] = ProcessInfo.processInfo.environment,
    localClusterRoot: Bool = false
  ) throws -> EtcdConfiguration {
    if localClusterRoot, var local = try secureLocalClusterConfiguration(environment: environment) {
      try checkTimeouts()
      local.dialTimeout = .milliseconds(Int64(dialTimeout * 1000))
      local.requestTimeout = .milliseconds(Int64(requestTimeout * 1000))
      return local
    }
    let endpointList = endpoints ?? environment["ETCD_ENDPOINTS"] ?? "127.0.0.1:2379"
    let parsed: [EtcdEndpoint]
    do {
      parsed = try EtcdEndpoint.parseList(endpointList)
    } catch {
      throw ValidationError("--etcd-endpoints: \(error.message)")
    }
    try checkTimeouts()
    var configuration = EtcdConfiguration(
      endpoints: parsed,
      dialTimeout: .milliseconds(Int64(dialTimeout * 1000)),
      requestTimeout: .milliseconds(Int64(requestTimeout * 1000))
    )

    configuration.credentials = try credentials(environment: environment)

    if caCertificate != nil || certificate != nil || key != nil {
      for (flag, path) in [("--cacert", caCertificate), ("--cert", certificate), ("--key", key)] {
        if let path, !FileManager.default.isReadableFile(atPath: path) {
          throw ValidationError("\(flag): cannot read \(path)")
        }
      }
      if (certificate == nil) != (key == nil) {
        throw ValidationError("--cert and --key go together")
      }
      configuration.tls = .init(
        caCertificatePath: caCertificate,
        clientCertificatePath: certificate,
        clientKeyPath: key
      )
    }
    return configuration
  }

  private func checkTimeouts() throws {
    guard dialTimeout > 0, dialTimeout.isFinite else {
      throw ValidationError("--dial-timeout must be a positive number of seconds")
    }
    guard requestTimeout > 0, requestTimeout.isFinite else {
      throw ValidationError("--request-timeout must be a positive number of seconds")
    }
  }

  /// The user and password from the flags, else from the environment; `nil` when neither names a user.
  /// An empty variable counts as unset.
  func credentials(environment: [String: String]) throws -> EtcdConfiguration.Credentials? {
    try Self.credentials(user: user, passwordFile: passwordFile, environment: environment)
  }

  /// The credentials that `--user` (`user`) and `--password-file` (`passwordFile`) describe with the
  /// variables of `environment`.
  static func credentials(
    user: String?,
    passwordFile: String?,
    environment: [String: String]
  ) throws -> EtcdConfiguration.Credentials? {
    let userFromEnvironment = environment[Self.userVariable].flatMap { $0.isEmpty ? nil : $0 }
    let passwordFromEnvironment = environment[Self.passwordVariable].flatMap { $0.isEmpty ? nil : $0 }
    let userSource = user != nil ? "--user" : "$\(Self.userVariable)"
    guard let name = user ?? userFromEnvironment else {
      if passwordFile != nil { throw ValidationError("--password-file needs --user or $\(Self.userVariable)") }
      if passwordFromEnvironment != nil {
        throw ValidationError("$\(Self.passwordVariable) is set, but no user: give --user or $\(Self.userVariable)")
      }
      return nil
    }
    guard !name.isEmpty, !name.unicodeScalars.contains(where: { $0.properties.generalCategory == .control }) else {
      throw ValidationError("\(userSource) must be a non-empty name without control characters")
    }
    if let passwordFile {
      return .init(username: name, password: try readSecretFile(passwordFile, flag: "--password-file"))
    }
    guard let password = passwordFromEnvironment else {
      throw ValidationError("\(userSource) needs a password: --password-file FILE or $\(Self.passwordVariable)")
    }
    return .init(username: name, password: password)
  }

  /// Runs `body` with a connected client, logging through `logger`.
  public func withClient<Result: Sendable>(
    logger: Logger = Logger(label: "switchyard.etcd"),
    localClusterRoot: Bool = false,
    _ body: (EtcdClient) async throws -> Result
  ) async throws -> Result {
    let configuration = try makeConfiguration(localClusterRoot: localClusterRoot)
    return try await withEtcdClient(configuration: configuration, logger: logger, body)
  }
}

/// The first line of `path` (without its line break): a password or another secret that must not be
/// given on the command line. Errors name `flag` and the path, never the contents.
func readSecretFile(_ path: String, flag: String) throws -> String {
  guard let data = FileManager.default.contents(atPath: path) else {
    throw ValidationError("\(flag): cannot read \(path)")
  }
  guard let text = String(data: data, encoding: .utf8) else {
    throw ValidationError("\(flag): \(path) is not UTF-8 text")
  }
  let line = text.split(separator: "\n", maxSplits: 1, omittingEmptySubsequences: false).first ?? ""
  let secret = line.hasSuffix("\r") ? String(line.dropLast()) : String(line)
  guard !secret.isEmpty else { throw ValidationError("\(flag): the first line of \(path) is empty") }
  return secret
}
