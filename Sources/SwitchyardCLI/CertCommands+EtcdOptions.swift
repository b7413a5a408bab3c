import ArgumentParser

/// The etcd options of `cert add`, whose `--cert` and `--key` name the certificate being added: the etcd
/// client's own certificate and key are `--etcd-cert` and `--etcd-key` there. Everything else is
/// ``EtcdOptions``, which ``etcdOptions()`` builds from these.
struct CertEtcdOptions: ParsableArguments, Sendable {
  @Option(
    name: .customLong("etcd-endpoints"),
    help: ArgumentHelp(
      "Comma-separated etcd members: host:port, http://host:port or https://host:port.",
      discussion: "Default: $ETCD_ENDPOINTS, else 127.0.0.1:2379.", valueName: "endpoints"))
  var endpoints: String?
  @Option(name: .customLong("user"), help: "etcd user name (default: $SWITCHYARD_ETCD_USER).") var user: String?
  @Option(
    name: .customLong("password-file"), help: "File whose first line is the etcd user's password.",
    completion: .file())
  var passwordFile: String?
  @Option(name: .customLong("cacert"), help: "CA certificate (PEM) that signs the etcd members' certificates.")
  var caCertificate: String?
  @Option(name: .customLong("etcd-cert"), help: "Client certificate (PEM) for TLS client authentication to etcd.")
  var certificate: String?
  @Option(name: .customLong("etcd-key"), help: "Private key (PEM) of the etcd client certificate.")
  var key: String?
  @Option(name: .customLong("dial-timeout"), help: "Seconds to wait for an unreachable member before trying the next.")
  var dialTimeout: Double = 2
  @Option(name: .customLong("request-timeout"), help: "Seconds one etcd call may take, retries included.")
  var requestTimeout: Double = 10

  /// The same options as ``EtcdOptions`` (validated there), `--etcd-cert` and `--etcd-key` as its `--cert`
  /// and `--key`.
  func etcdOptions() throws -> EtcdOptions {
    var arguments = ["--dial-timeout", String(dialTimeout), "--request-timeout", String(requestTimeout)]
    let named: [(String, String?)] = [
      ("--etcd-endpoints", endpoints), ("--user", user), ("--password-file", passwordFile),
      ("--cacert", caCertificate), ("--cert", certificate), ("--key", key),
    ]
    for case (let flag, let value?) in named { arguments += [flag, value] }
    do { return try EtcdOptions.parse(arguments) } catch let error as ValidationError {
      throw ValidationError(
        error.message.replacingOccurrences(of: "--cert", with: "--etcd-cert")
          .replacingOccurrences(of: "--key", with: "--etcd-key"))
    }
  }
}
