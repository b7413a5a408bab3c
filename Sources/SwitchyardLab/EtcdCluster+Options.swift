import Foundation
import SwitchyardProcess

extension EtcdCluster {
  /// How to start a cluster. The defaults suit tests on loopback.
  ///
  /// - `tls` (`TLSFiles?`, default `nil`): serve clients over HTTPS and require client certificates
  ///   (`--client-cert-auth`); ``EtcdCluster/etcdctl(_:members:user:)`` then presents the client certificate.
  ///   Peers always talk plain HTTP, which keeps TLS failures about the client side.
  /// - `extraArguments` (`[String]`, default `[]`): more flags for every member, such as
  ///   `--auto-compaction-retention=1`. They come last, and etcd keeps the last value of a repeated flag, so
  ///   they also override the flags set here.
  /// - `logLevel` (`LogLevel`, default `.info`): what members write to their logs, whose tail failure
  ///   messages show.
  /// - `heartbeatInterval` (`Duration`, default 50 ms) and `electionTimeout` (`Duration`, default 500 ms):
  ///   raft timing. etcd's defaults (100 ms and 1 s) are for real networks; loopback lets elections and
  ///   failover happen twice as fast. etcd requires the election timeout to be at least five heartbeats.
  /// - `startupTimeout` (`Duration`, default 30 s): how long starting or restarting a member may take until
  ///   it is healthy.
  /// - `etcdExecutable` and `etcdctlExecutable` (`String`, default from ``binaryDirectory``, else `"etcd"` and
  ///   `"etcdctl"`): absolute paths, or names looked up in `PATH`.
  public struct Options: Sendable {
    /// Log levels that etcd 3.4 accepts.
    public enum LogLevel: String, Sendable, Hashable {
      case debug, info, warn, error
    }

    /// TLS files for the client port, or `nil` for plain HTTP.
    public var tls: TLSFiles?
    /// Flags added last to every member's command line.
    public var extraArguments: [String]
    /// The members' log level.
    public var logLevel: LogLevel
    /// Raft heartbeat interval (`--heartbeat-interval`), in whole milliseconds.
    public var heartbeatInterval: Duration
    /// Raft election timeout (`--election-timeout`), in whole milliseconds.
    public var electionTimeout: Duration
    /// How long a member may take to become healthy after it is started.
    public var startupTimeout: Duration
    /// The etcd server executable.
    public var etcdExecutable: String
    /// The etcdctl executable.
    public var etcdctlExecutable: String

    /// Creates options; every parameter has the default described on the type.
    public init(
      tls: TLSFiles? = nil,
      extraArguments: [String] = [],
      logLevel: LogLevel = .info,
      heartbeatInterval: Duration = .milliseconds(50),
      electionTimeout: Duration = .milliseconds(500),
      startupTimeout: Duration = .seconds(30),
      etcdExecutable: String = EtcdCluster.defaultExecutable("etcd"),
      etcdctlExecutable: String = EtcdCluster.defaultExecutable("etcdctl")
    ) {
      self.tls = tls
      self.extraArguments = extraArguments
      self.logLevel = logLevel
      self.heartbeatInterval = heartbeatInterval
      self.electionTimeout = electionTimeout
      self.startupTimeout = startupTimeout
      self.etcdExecutable = etcdExecutable
      self.etcdctlExecutable = etcdctlExecutable
    }
  }

  /// The directory named by the environment variable `SWITCHYARD_ETCD_DIR`, which holds the `etcd` and
  /// `etcdctl` that tests start instead of the ones in `PATH`: `make test` runs the etcd client's, the
  /// controller's and the fault suites a second time with it pointing at Debian 13's etcd 3.5
  /// (`scripts/install-debian13.sh`).
  public static var binaryDirectory: String? {
    guard let directory = ProcessInfo.processInfo.environment["SWITCHYARD_ETCD_DIR"], !directory.isEmpty else {
      return nil
    }
    return directory
  }

  /// `tool` in ``binaryDirectory`` when that is set, else the bare name, looked up in `PATH`.
  public static func defaultExecutable(_ tool: String) -> String {
    binaryDirectory.map { "\($0)/\(tool)" } ?? tool
  }

  /// A user name and password for etcd's authentication.
  public struct Credentials: Sendable, Hashable {
    /// The user name.
    public var user: String
    /// The password.
    public var password: String

    /// Creates credentials.
    public init(user: String, password: String) {
      self.user = user
      self.password = password
    }
  }

  /// One member's fixed identity: these stay the same when the member is stopped and started again.
  public struct Member: Sendable, Hashable {
    /// `etcd1` for the member at index 0, `etcd2` for index 1, and so on.
    public let name: String
    /// The client port on 127.0.0.1.
    public let clientPort: Int
    /// The peer port on 127.0.0.1.
    public let peerPort: Int
    /// The data directory, kept across restarts.
    public let dataDirectory: String
    /// The member's log (standard output and standard error, across restarts).
    public let logPath: String

    var peerURL: String { "http://127.0.0.1:\(peerPort)" }
  }
}
