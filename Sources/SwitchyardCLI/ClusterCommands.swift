import ArgumentParser
import Foundation
import ServiceLifecycle
import SwitchyardLocal
import SwitchyardModel
import SwitchyardProcess
import UnixSignals

/// `--home`: the local cluster's state directory.
struct HomeOptions: ParsableArguments {
  @Option(
    name: .customLong("home"),
    help: ArgumentHelp(
      "The local cluster's state directory.",
      discussion: "Default: $SWITCHYARD_HOME, else .switchyard under the current directory.",
      valueName: "dir"
    )
  )
  var home: String?

  func cluster() -> LocalCluster {
    let path = home.map { URL(fileURLWithPath: $0).standardizedFileURL.path } ?? LocalCluster.defaultHome()
    return LocalCluster(home: path) { line in print(line) }
  }
}

/// Runs a cluster operation, turning its errors into a clean exit.
func runClusterOperation(_ body: () async throws -> Void) async throws {
  do {
    try await body()
  } catch let error as LocalClusterError {
    FileHandle.standardError.write(Data("error: \(error)\n".utf8))
    throw ExitCode.failure
  }
}

/// `switchyard up`.
struct UpCommand: AsyncParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "up",
    abstract: "Start the whole system locally: etcd members, LB nodes (controller + HAProxy) and backends.",
    discussion: """
      etcd1..N listen on 127.0.0.1:2379, :22379, :32379 (so plain etcdctl works), lb1, lb2 on :8001, :8002 \
      with stats pages on :8401, :8402 and admin endpoints on :9101, :9102, backends on free ports. Waits \
      until every part is healthy and every LB node routes to every backend, prints what runs where, and \
      returns with the cluster running in the background (see `status`, `logs`, `scale`, `down`).
      """
  )

  @Option(help: "Backends to start.") var backends = 3
  @Option(name: .customLong("lb-nodes"), help: "Load-balancer nodes to start (1–5).") var lbNodes = 2
  @Option(name: .customLong("etcd-members"), help: "etcd members to start (1–5; odd numbers tolerate failures).")
  var etcdMembers = 3
  @Flag(help: "Stay attached and stop everything on Ctrl-C (SIGINT) or SIGTERM.") var foreground = false
  @Flag(
    help: ArgumentHelp(
      "etcd with TLS (client certificates required) and authentication; each part its own etcd user.",
      discussion: """
        A local CA and certificates go to <state dir>/pki, passwords to <state dir>/secrets (0600). Backends \
        get the role registrar (write /services/ only), LB nodes the role controller (read registrations, \
        routes, service settings and overrides); route, service, drain and enable use the role operator. \
        Run again on a running secure cluster, it renews the certificates that expire within 7 days.
        """
    )
  )
  var secure = false
  @Flag(
    help: ArgumentHelp(
      "LB nodes also serve HTTPS (lb1 on 127.0.0.1:8443, lb2 on :8444, …); implied by --secure.",
      discussion: """
        The local CA (<state dir>/pki/ca.pem, made if absent) issues a certificate for localhost, 127.0.0.1 \
        and ::1, kept in etcd as the certificate `local` with its key sealed by the cluster key \
        <state dir>/pki/cluster.key (0600); every node serves it by default. Run again, `up` renews it when \
        it expires within 7 days.
        """
    )
  )
  var https = false
  @Option(
    name: .customLong("certificate-days"),
    help: ArgumentHelp("Validity of the certificates --secure makes (not the CA's).", visibility: .hidden)
  )
  var certificateDays = 365

  @Option(name: .customLong("etcd-client-ports"), help: "Override: comma-separated etcd client ports.")
  var etcdClientPorts: String?
  @Option(name: .customLong("etcd-peer-ports"), help: "Override: comma-separated etcd peer ports.")
  var etcdPeerPorts: String?
  @Option(name: .customLong("lb-ports"), help: "Override: comma-separated LB traffic ports.") var lbPorts: String?
  @Option(name: .customLong("stats-ports"), help: "Override: comma-separated stats-page ports.")
  var statsPorts: String?
  @Option(name: .customLong("admin-ports"), help: "Override: comma-separated controller admin ports.")
  var adminPorts: String?
  @Option(
    name: .customLong("https-ports"), help: "Override: comma-separated LB HTTPS ports (with --https or --secure).")
  var httpsPorts: String?

  @OptionGroup var home: HomeOptions

  func validate() throws {
    _ = try ports()
  }

  func ports() throws -> ClusterPorts {
    let defaults = ClusterPorts.defaults(members: etcdMembers, nodes: lbNodes)
    func list(_ text: String?, _ flag: String, _ fallback: [Int]) throws -> [Int] {
      guard let text else { return fallback }
      let values = text.split(separator: ",").map { Int($0.trimmingCharacters(in: .whitespaces)) }
      guard !values.isEmpty, values.allSatisfy({ $0 != nil }) else {
        throw ValidationError("\(flag): \"\(text)\" is not a comma-separated list of ports")
      }
      return values.compactMap { $0 }
    }
    let ports = ClusterPorts(
      etcdClient: try list(etcdClientPorts, "--etcd-client-ports", defaults.etcdClient),
      etcdPeer: try list(etcdPeerPorts, "--etcd-peer-ports", defaults.etcdPeer),
      lb: try list(lbPorts, "--lb-ports", defaults.lb),
      stats: try list(statsPorts, "--stats-ports", defaults.stats),
      admin: try list(adminPorts, "--admin-ports", defaults.admin),
      https: https || secure
        ? try list(httpsPorts, "--https-ports", ClusterPorts.defaultHTTPSPorts(nodes: lbNodes)) : nil
    )
    if let problem = ports.problem(members: etcdMembers, nodes: lbNodes) { throw ValidationError(problem) }
    return ports
  }

  func run() async throws {
    let cluster = home.cluster()
    try await runClusterOperation {
      let started = try await cluster.up(
        backends: backends,
        lbNodes: lbNodes,
        etcdMembers: etcdMembers,
        ports: try ports(),
        switchyard: currentExecutable(),
        secure: secure,
        https: https,
        certificateDays: certificateDays
      )
      guard started else { return }
      print("")
      print(try await StatusCommand.table(try await cluster.status()))
      print(dashboards(try ports()))
      print(secure ? secureNextSteps(try ports()) : nextSteps(try ports()))
      if foreground {
        print("Running in the foreground; Ctrl-C stops everything.")
        for await _ in await UnixSignalsSequence(trapping: .sigint, .sigterm) { break }
        print("")
        try await cluster.down(purge: false)
      }
    }
  }

  private func nextSteps(_ ports: ClusterPorts) -> String {
    let lb = ports.lb.first ?? 8001
    return """

      Try:
        curl http://127.0.0.1:\(lb)                     # three times: three different backends\(httpsStep(ports))
        curl http://127.0.0.1:\(lb)/web/                # the second service, web, by its route
        curl -H 'Host: web.localhost' http://127.0.0.1:\(lb)/   # the same service, by host
        switchyard route ls                           # the routes in etcd (docs/routing.md)
        switchyard scale backend=5                    # start two more; scale down drains first
        etcdctl get /services/backend --prefix        # the registrations (etcd1 is on :\(ports.etcdClient[0]))
        etcdctl watch /services/backend --prefix      # watch them change
        open \(ports.stats.map { "http://127.0.0.1:\($0)/" }.joined(separator: " and "))   # HAProxy stats pages
        switchyard status                             # pids, health, servers per LB node
        switchyard logs lb1 -f                        # a controller's log
        switchyard stop etcd2 / switchyard start etcd2  # try a fault by hand
        switchyard down                               # stop everything (--purge removes \(home.cluster().home))
      """
  }
}

extension UpCommand {
  /// The line of "Try:" that reaches lb1 over HTTPS, verified by the local CA; empty without HTTPS.
  fileprivate func httpsStep(_ ports: ClusterPorts) -> String {
    guard let port = ports.https?.first else { return "" }
    let ca = LocalSecurity(home: home.cluster().home).caCertificate
    return "\n  curl --cacert \(ca) https://localhost:\(port)/   # HTTPS: the local CA's certificate, from etcd"
  }

  fileprivate func secureNextSteps(_ ports: ClusterPorts) -> String {
    let security = LocalSecurity(home: home.cluster().home)
    let root = security.clientPair(for: AccessPolicy.root)
    let lb = ports.lb.first ?? 8001
    return """

      Try:
        curl http://127.0.0.1:\(lb)                     # three times: three different backends\(httpsStep(ports))
        curl http://127.0.0.1:\(lb)/web/                # the second service, web, by its route
        switchyard route ls                           # as the operator user
        switchyard etcd get /services/backend --prefix   # as root, with the credentials in the state directory
        ETCDCTL_PASSWORD="$(cat \(security.passwordFile(for: AccessPolicy.root)))" \\
          etcdctl --endpoints https://127.0.0.1:\(ports.etcdClient[0]) --cacert \(security.caCertificate) \\
          --cert \(root.certificate) --key \(root.key) --user root get /services/backend --prefix
        switchyard scale backend=5                    # new backends get their own etcd users
        switchyard status                             # reads etcd as the read-only user status
        switchyard down                               # stop everything (--purge removes keys and passwords)
      """
  }
}

/// The absolute path of this executable, so that the cluster's parts run the same build.
func currentExecutable() -> String {
  if let path = ProcFS.ownExecutablePath() { return path }
  return URL(fileURLWithPath: CommandLine.arguments[0]).standardizedFileURL.path
}

/// `switchyard scale backend=N`.
struct ScaleCommand: AsyncParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "scale",
    abstract: "Start or gracefully stop backends to reach a count, and wait until every LB node agrees.",
    discussion: "As `docker compose up --scale backend=N`. Backends that stop drain and deregister first."
  )

  @Argument(help: "backend=N") var target: String
  @OptionGroup var home: HomeOptions

  func count() throws -> Int {
    let parts = target.split(separator: "=", maxSplits: 1)
    guard parts.count == 2, parts[0] == "backend", let count = Int(parts[1]), (0...50).contains(count) else {
      throw ValidationError("expected backend=N with N from 0 to 50, got \"\(target)\"")
    }
    return count
  }

  func validate() throws { _ = try count() }

  func run() async throws {
    try await runClusterOperation { try await home.cluster().scale(backends: try count()) }
  }
}

/// `switchyard logs`.
struct LogsCommand: AsyncParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "logs",
    abstract: "Print the log of one part of the local cluster, or of all of them."
  )

  @Argument(help: "etcd1, lb1, backend-1, …; all parts when left out.") var name: String?
  @Flag(name: [.short, .customLong("follow")], help: "Keep printing what is appended.") var follow = false
  @Flag(
    name: .customLong("access"),
    help: "Print a load-balancer node's access log (HAProxy's requests) instead; every node's when NAME is left out."
  )
  var access = false
  @OptionGroup var home: HomeOptions

  func run() async throws {
    try await runClusterOperation {
      let cluster = try home.cluster()
      let files = access ? try cluster.accessLogFiles(name) : try cluster.logFiles(name)
      var offsets: [String: UInt64] = [:]
      let prefix = files.count > 1
      repeat {
        for file in files {
          guard let handle = FileHandle(forReadingAtPath: file.path) else { continue }
          defer { try? handle.close() }
          try handle.seek(toOffset: offsets[file.path] ?? 0)
          let data = handle.readDataToEndOfFile()
          offsets[file.path] = (offsets[file.path] ?? 0) + UInt64(data.count)
          guard !data.isEmpty else { continue }
          let text = String(decoding: data, as: UTF8.self)
          if prefix {
            for line in text.split(separator: "\n", omittingEmptySubsequences: false).dropLast() {
              print("\(file.name) | \(line)")
            }
          } else {
            FileHandle.standardOutput.write(data)
          }
        }
        if follow { try await Task.sleep(for: .milliseconds(250)) }
      } while follow
    }
  }
}

/// `switchyard stop NAME`.
struct StopCommand: AsyncParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "stop",
    abstract: "Stop one part of the local cluster gracefully (to try a fault by hand)."
  )

  @Argument(help: "etcd1, lb1, backend-1, …") var name: String
  @OptionGroup var home: HomeOptions

  func run() async throws {
    try await runClusterOperation { try await home.cluster().stop(name) }
  }
}

/// `switchyard start NAME…`.
struct StartCommand: AsyncParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "start",
    abstract: "Start stopped parts of the local cluster again.",
    discussion: """
      Waits until they are healthy. etcd members started while etcd has no quorum are waited for until they \
      listen; start several at once (`start etcd1 etcd2 etcd3`) after a full outage. An LB node whose \
      controller crashed gets a controller that adopts the HAProxy it left serving.
      """
  )

  @Argument(help: "etcd1, lb1, backend-1, …") var names: [String]
  @OptionGroup var home: HomeOptions

  func run() async throws {
    try await runClusterOperation { try await home.cluster().start(names) }
  }
}

/// `switchyard down`.
struct DownCommand: AsyncParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "down",
    abstract: "Stop the local cluster in order (backends, LB nodes, etcd) and free every port."
  )

  @Flag(help: "Also remove the state directory (data, logs).") var purge = false
  @OptionGroup var home: HomeOptions

  func run() async throws {
    try await runClusterOperation { try await home.cluster().down(purge: purge) }
  }
}
