import ArgumentParser
import EtcdClient
import Foundation
import Logging

/// The options every command that talks to etcd takes.
///
/// `--etcd-endpoints` defaults to the `ETCD_ENDPOINTS` environment variable, else `127.0.0.1:2379`.
public struct EtcdOptions: ParsableArguments, Sendable {
  @Option(
    name: .customLong("etcd-endpoints"),
    help: ArgumentHelp(
      "Comma-separated etcd members: host:port, http://host:port or https://host:port.",
      discussion: "Default: $ETCD_ENDPOINTS, else 127.0.0.1:2379.",
      valueName: "endpoints"
    )
  )
  var endpoints: String?

  @Option(name: .customLong("user"), help: "etcd user name (auth enabled clusters).")
  var user: String?

  @Option(
    name: .customLong("password-file"),
    help: "File whose first line is the etcd user's password.",
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

    switch (user, passwordFile) {
    case (nil, nil):
      break
    case (.some, nil):
      throw ValidationError("--user needs --password-file")
    case (nil, .some):
      throw ValidationError("--password-file needs --user")
    case (.some(let user), .some(let path)):
      guard !user.isEmpty, !user.contains(where: \.isNewline) else {
        throw ValidationError("--user must be a non-empty name")
      }
      configuration.credentials = .init(username: user, password: try Self.readPassword(path))
    }

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

  private static func readPassword(_ path: String) throws -> String {
    guard let data = FileManager.default.contents(atPath: path) else {
      throw ValidationError("--password-file: cannot read \(path)")
    }
    guard let text = String(data: data, encoding: .utf8) else {
      throw ValidationError("--password-file: \(path) is not UTF-8 text")
    }
    let line = text.split(separator: "\n", maxSplits: 1, omittingEmptySubsequences: false).first ?? ""
    let password = line.hasSuffix("\r") ? String(line.dropLast()) : String(line)
    guard !password.isEmpty else { throw ValidationError("--password-file: \(path) is empty") }
    return password
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
