import Foundation
import SwitchyardTestSupport
import Testing

/// The container image and compose.yaml, run for real with podman: three etcd containers, two LB nodes,
/// scaled backends and the second sample service `web` behind its routes, through `scripts/container.sh` as
/// the README runs them.
@Suite(
  "Containers: the image and compose.yaml under podman",
  .serialized,
  .enabled(if: ComposeProject.canRun, "needs podman, or root to install it (scripts/container.sh installs it)")
)
struct ComposeTests {
  @Test(
    "Build the Debian 13 image (HAProxy 3.0, etcd 3.5), up with 3 backends and web behind its routes, scale 5 and 2 without a failed request, a crashed backend restarts, lose etcd1 and lb1, down leaves nothing"
  )
  func wholeProject() async throws {
    let project = try ComposeProject()
    do {
      try await run(project)
    } catch {
      print(await project.diagnostics())
      await project.down()
      throw error
    }
  }

  private func run(_ project: ComposeProject) async throws {
    // The image, as `make image` builds it but from a debug build (the release build would double CI's time).
    try await project.script(["image", "--debug", "--tag", project.image], timeout: .seconds(1_800))
    // Debian 13's image: HAProxy 3.0 and etcd 3.5 from its packages, and the binary, built on the host,
    // finds every library it still links dynamically.
    let debian = try await project.inImage("cat", ["/etc/debian_version"])
    #expect(debian.hasPrefix("13."), "/etc/debian_version: \(debian)")
    let haproxy = try await project.inImage("haproxy", ["-v"])
    #expect(haproxy.contains("HAProxy version 3.0."), "haproxy -v: \(haproxy)")
    let etcd = try await project.inImage("etcd", ["--version"])
    #expect(etcd.contains("etcd Version: 3.5."), "etcd --version: \(etcd)")
    let etcdctl = try await project.inImage("etcdctl", ["version"])
    #expect(etcdctl.contains("etcdctl version: 3.5."), "etcdctl version: \(etcdctl)")
    let libraries = try await project.inImage("ldd", ["/usr/local/bin/switchyard"])
    #expect(!libraries.contains("not found"), "ldd switchyard: \(libraries)")

    try await project.script(["up", "3"], timeout: .seconds(300))
    try await project.expectServing(backends: 3, within: .seconds(90))
    // Each LB node hands consecutive requests to the backends in turn.
    for port in [project.lb1Port, project.lb2Port] {
      let bodies = try await project.bodies(port: port, count: 6)
      #expect(Set(bodies).count == 3, "port \(port) served \(bodies)")
      #expect(Dictionary(grouping: bodies, by: { $0 }).values.allSatisfy { $0.count == 2 }, "port \(port): \(bodies)")
    }
    try await project.expectHealthy(["etcd1_1", "etcd2_1", "etcd3_1", "lb1_1", "lb2_1", "backend_1", "web_1"])
    // The one-shot `routes` wrote web's routes: both nodes send /web/ and the host web.localhost to it.
    try await project.expectWebRoutes(within: .seconds(60))
    // The one-shot `tls` made a local CA and stored its certificate in etcd: one HTTPS request per node,
    // verified by that CA, reaches a backend.
    try await project.expectHTTPS(within: .seconds(60))
    // Each LB node announces an admin URL the other containers reach (--admin-url http://lbN:910N): status,
    // run in lb1's container with etcd alone, finds both nodes in etcd and both answer.
    try await retrying(timeout: .seconds(30), every: .seconds(1)) {
      let status = try await project.podman(
        ["exec", project.container("lb1_1"), "/usr/local/bin/switchyard", "status"])
      for (node, port) in [("lb1", 9101), ("lb2", 9102)] {
        let row = status.split(separator: "\n").first { $0.hasPrefix("  \(node) ") } ?? ""
        let columns = row.split(separator: " ")
        guard columns.count > 3, columns[1] == "ready", row.contains("http://\(node):\(port)") else {
          throw TestSupportError(.notHealthy, "\(node) not listed as ready at http://\(node):\(port):\n\(status)")
        }
      }
    }

    // Scaling under load from a client that polls both nodes.
    var load = try project.startLoad(ports: [project.lb1Port, project.lb2Port])
    try await project.script(["scale", "5"], timeout: .seconds(300))
    try await project.expectServing(backends: 5, within: .seconds(60))
    try await project.script(["scale", "2"], timeout: .seconds(300))
    try await project.expectServing(backends: 2, within: .seconds(60))
    var report = await load.stop()
    print("containers: scaling 3 → 5 → 2 under load: \(report)")
    #expect(report.failures == 0, "scaling 3 → 5 → 2: \(report)")
    #expect(report.successes > 100, "scaling 3 → 5 → 2: \(report)")

    // A backend that crashes (SIGKILL from the host) is restarted by its restart policy and serves again.
    let crashed = project.container("backend_1")
    let pid = try await project.podman(["inspect", "--format", "{{.State.Pid}}", crashed])
      .trimmingCharacters(in: .whitespacesAndNewlines)
    let restartsBefore = try await project.restartCount(crashed)
    try await project.podman(["exec", crashed, "true"])  // running before the crash
    guard let hostPID = Int32(pid), hostPID > 1 else {
      throw TestSupportError(.invalidState, "pid of \(crashed): \(pid)")
    }
    #expect(kill(hostPID, SIGKILL) == 0)
    try await retrying(timeout: .seconds(60), every: .seconds(1)) {
      let restarts = try await project.restartCount(crashed)
      guard restarts > restartsBefore else { throw TestSupportError(.notHealthy, "\(crashed) not restarted yet") }
      try await project.podman(["healthcheck", "run", crashed])
    }
    try await project.expectServing(backends: 2, within: .seconds(60))

    // One etcd member stopped: both nodes keep serving, and a new backend still registers and is served.
    load = try project.startLoad(ports: [project.lb1Port, project.lb2Port])
    try await project.podman(["stop", "--time", "10", project.container("etcd1_1")])
    try await project.script(["scale", "3"], timeout: .seconds(300))
    try await project.expectServing(backends: 3, within: .seconds(60), etcdMember: "etcd2_1")
    report = await load.stop()
    print("containers: etcd1 stopped, scaling 2 → 3: \(report)")
    #expect(report.failures == 0, "with etcd1 stopped: \(report)")

    // lb1 stopped: lb2 serves on.
    load = try project.startLoad(ports: [project.lb2Port])
    try await project.podman(["stop", "--time", "15", project.container("lb1_1")])
    let refused = try? await HTTPLoadClient.get("http://127.0.0.1:\(project.lb1Port)/", timeout: .seconds(2))
    #expect(refused == nil, "lb1's port still answers after its container stopped")
    try await Task.sleep(for: .seconds(2))
    report = await load.stop()
    print("containers: lb1 stopped, lb2 serving: \(report)")
    #expect(report.failures == 0 && report.successes > 20, "lb2 with lb1 stopped: \(report)")

    try await project.script(["down"], timeout: .seconds(300))
    let leftovers = try await project.leftovers()
    #expect(leftovers.isEmpty, "left after down: \(leftovers)")
  }
}

/// One compose project of the tests: its own project name, image tag and free host ports, so that it
/// runs beside a user's `make compose-up` and the local cluster.
final class ComposeProject: Sendable {
  /// podman is there, or this process may install it.
  static var canRun: Bool {
    getuid() == 0
      || ["/usr/bin/podman", "/usr/local/bin/podman"].contains { FileManager.default.isExecutableFile(atPath: $0) }
  }

  static let repositoryRoot = URL(fileURLWithPath: #filePath)
    .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent().path

  let name = "switchyardtest\(getpid())"
  let image = "localhost/switchyard:test"
  let lb1Port: Int
  let lb2Port: Int
  /// The host ports of lb1's and lb2's HTTPS listeners.
  let httpsPorts: [Int]
  let environment: [String: String]

  init() throws {
    lb1Port = try FreePort.allocate()
    lb2Port = try FreePort.allocate()
    httpsPorts = try FreePort.allocate(2)
    var environment = ProcessInfo.processInfo.environment
    environment["SWITCHYARD_PROJECT"] = name
    environment["SWITCHYARD_IMAGE"] = image
    environment["SWITCHYARD_LB1_PORT"] = String(lb1Port)
    environment["SWITCHYARD_LB2_PORT"] = String(lb2Port)
    environment["SWITCHYARD_LB1_HTTPS_PORT"] = String(httpsPorts[0])
    environment["SWITCHYARD_LB2_HTTPS_PORT"] = String(httpsPorts[1])
    for variable in ["LB1_STATS", "LB2_STATS", "LB1_ADMIN", "LB2_ADMIN"] {
      environment["SWITCHYARD_\(variable)_PORT"] = String(try FreePort.allocate())
    }
    self.environment = environment
  }

  /// The name podman gives a service's replica, such as `etcd1_1`.
  func container(_ replica: String) -> String { "\(name)_\(replica)" }

  /// Runs `scripts/container.sh` with this project's settings and returns its output.
  @discardableResult
  func script(_ arguments: [String], timeout: Duration) async throws -> String {
    try await Self.run(
      "\(Self.repositoryRoot)/scripts/container.sh", arguments, environment: environment, timeout: timeout)
  }

  /// Runs a podman command and returns its output.
  @discardableResult
  func podman(_ arguments: [String], timeout: Duration = .seconds(60)) async throws -> String {
    try await Self.run("podman", arguments, environment: environment, timeout: timeout)
  }

  /// Runs a command and returns its standard output and standard error.
  ///
  /// The command's end is read from a status file its wrapper writes, not from the child's exit.
  /// Foundation's `Process` on Linux learns of a child's exit when a socket it hands the child closes
  /// (swift-corelibs-foundation issue 4795); podman's conmon, which outlives the command to watch a
  /// container, inherits that socket, so the exit of `podman-compose up` or `podman exec` is never seen
  /// (here the child stayed a zombie until the call timed out).
  static func run(
    _ executable: String,
    _ arguments: [String],
    environment: [String: String],
    timeout: Duration
  ) async throws -> String {
    let directory = try TemporaryDirectory(prefix: "switchyard-compose")
    defer { directory.remove() }
    let statusPath = directory.path("status")
    let logPath = directory.path("output")
    var environment = environment
    environment["SWITCHYARD_SCRIPT_STATUS"] = statusPath
    environment["SWITCHYARD_SCRIPT_OUTPUT"] = logPath
    let wrapper =
      #""$0" "$@" >"$SWITCHYARD_SCRIPT_OUTPUT" 2>&1; echo "$?" >"$SWITCHYARD_SCRIPT_STATUS.new"; "#
      + #"mv "$SWITCHYARD_SCRIPT_STATUS.new" "$SWITCHYARD_SCRIPT_STATUS""#
    let process = try ManagedProcess(
      "/bin/bash",
      arguments: ["-c", wrapper, executable] + arguments,
      environment: environment,
      logPath: directory.path("wrapper.log")
    )
    let command = ([executable] + arguments).joined(separator: " ")
    let deadline = ContinuousClock.now.advanced(by: timeout)
    while !FileManager.default.fileExists(atPath: statusPath) {
      guard ContinuousClock.now < deadline else {
        process.kill()
        let output = (try? String(contentsOfFile: logPath, encoding: .utf8)) ?? ""
        throw TestSupportError(.timedOut, "\(command) did not finish within \(timeout): \(output.suffix(3_000))")
      }
      try await Task.sleep(for: .milliseconds(200))
    }
    let status = try String(contentsOfFile: statusPath, encoding: .utf8).trimmingCharacters(in: .whitespacesAndNewlines)
    let output = (try? String(contentsOfFile: logPath, encoding: .utf8)) ?? ""
    guard status == "0" else {
      throw TestSupportError(.commandFailed, "\(command) exited with \(status): \(output.suffix(3_000))")
    }
    return output
  }

  /// Runs a command in a throwaway container of the project's image, in place of its entrypoint, and
  /// returns its output (ulimits within this host's hard limits, as compose.yaml sets them).
  func inImage(_ executable: String, _ arguments: [String]) async throws -> String {
    try await podman(
      ["run", "--rm", "--ulimit", "nofile=1024:1024", "--ulimit", "nproc=1024:1024", "--entrypoint", executable, image]
        + arguments)
  }

  /// The instance ids registered in etcd, read with etcdctl inside an etcd container.
  func registrations(etcdMember: String) async throws -> Set<String> {
    let keys = try await podman([
      "exec", container(etcdMember), "etcdctl", "get", "/services/backend/", "--prefix",
      "--keys-only",
    ])
    return Set(
      keys.split(separator: "\n").filter { !$0.isEmpty }.map { String($0.dropFirst("/services/backend/".count)) })
  }

  /// `count` bodies from consecutive requests, each on a new connection, without "Hello from ".
  func bodies(port: Int, count: Int) async throws -> [String] {
    var bodies: [String] = []
    for _ in 0..<count {
      let (status, body) = try await HTTPLoadClient.get("http://127.0.0.1:\(port)/", timeout: .seconds(3))
      guard status == 200 else { throw TestSupportError(.commandFailed, "port \(port) answered \(status): \(body)") }
      bodies.append(
        body.trimmingCharacters(in: .whitespacesAndNewlines).replacingOccurrences(of: "Hello from ", with: ""))
    }
    return bodies
  }

  /// Waits until etcd holds `backends` registrations and both running LB nodes serve exactly those.
  func expectServing(backends: Int, within timeout: Duration, etcdMember: String = "etcd1_1") async throws {
    let deadline = ContinuousClock.now.advanced(by: timeout)
    var last = ""
    while ContinuousClock.now < deadline {
      if let registered = try? await registrations(etcdMember: etcdMember), registered.count == backends {
        var agree = true
        for port in [lb1Port, lb2Port] {
          let served = Set((try? await bodies(port: port, count: backends * 3)) ?? [])
          if served != registered {
            agree = false
            last = "etcd has \(registered.sorted()), port \(port) served \(served.sorted())"
          }
        }
        if agree { return }
      } else {
        last = "etcd has \((try? await registrations(etcdMember: etcdMember))?.sorted() ?? [])"
      }
      try await Task.sleep(for: .milliseconds(500))
    }
    throw TestSupportError(.timedOut, "not serving \(backends) backends within \(timeout): \(last)")
  }

  /// Waits until both LB nodes send `/web/` (prefix stripped: `/web/healthz` is web's `/healthz`) and the
  /// host `web.localhost` to web-1.
  func expectWebRoutes(within timeout: Duration) async throws {
    try await retrying(timeout: timeout, every: .milliseconds(500)) {
      for port in [self.lb1Port, self.lb2Port] {
        for (path, host, expected) in [
          ("/web/", nil, "Hello from web-1"), ("/web/healthz", nil, "ok"), ("/", "web.localhost", "Hello from web-1"),
        ] {
          let (status, body) = try await HTTPLoadClient.get(
            "http://127.0.0.1:\(port)\(path)", host: host, timeout: .seconds(3))
          guard status == 200, body.trimmingCharacters(in: .whitespacesAndNewlines) == expected else {
            throw TestSupportError(
              .notHealthy, "port \(port) \(path) (Host \(host ?? "-")) answered \(status) \(body), not \(expected)")
          }
        }
      }
    }
  }

  /// Waits until each LB node answers one HTTPS request, verified by the CA that the one-shot `tls` made
  /// (copied out of lb1's container), with a backend's answer.
  func expectHTTPS(within timeout: Duration) async throws {
    let directory = try TemporaryDirectory(prefix: "switchyard-compose-ca")
    defer { directory.remove() }
    let ca = directory.path("ca.pem")
    try await retrying(timeout: timeout, every: .seconds(1)) {
      let pem = try await self.podman(["exec", self.container("lb1_1"), "cat", "/var/lib/switchyard/tls/pki/ca.pem"])
      try pem.write(toFile: ca, atomically: true, encoding: .utf8)
      for port in self.httpsPorts {
        let response = try await TLSClient.get(
          port: port, path: "/", serverName: "localhost", trustRootsPEMFile: ca, timeout: .seconds(3))
        guard response.status == 200, response.body.hasPrefix("Hello from "),
          response.certificate?.dnsNames == ["localhost"]
        else {
          throw TestSupportError(
            .notHealthy,
            "https port \(port) answered \(response.status) \(response.body) with \(String(describing: response.certificate))"
          )
        }
      }
    }
  }

  /// How often podman has restarted a container (its restart policy at work).
  func restartCount(_ container: String) async throws -> Int {
    let text = try await podman(["inspect", "--format", "{{.RestartCount}}", container])
    guard let count = Int(text.trimmingCharacters(in: .whitespacesAndNewlines)) else {
      throw TestSupportError(.invalidState, "restart count of \(container): \(text)")
    }
    return count
  }

  /// Every container's health check passes (run on demand: podman needs systemd to schedule them).
  func expectHealthy(_ replicas: [String]) async throws {
    for replica in replicas {
      try await retrying(timeout: .seconds(60), every: .seconds(1)) {
        try await self.podman(["healthcheck", "run", self.container(replica)])
      }
    }
  }

  /// A client on each port, each request on a new connection (so every one is routed afresh).
  func startLoad(ports: [Int]) throws -> MultiLoad {
    MultiLoad(
      clients: try ports.map {
        try HTTPLoadClient.start(
          url: "http://127.0.0.1:\($0)/", connections: 1, newConnections: true, pause: .milliseconds(20))
      }
    )
  }

  /// The project's containers, pod, network and volumes that podman still has.
  func leftovers() async throws -> [String] {
    let label = "label=com.docker.compose.project=\(name)"
    let containers = try await podman(["ps", "-a", "--filter", label, "--format", "{{.Names}}"])
    let volumes = try await podman(["volume", "ls", "--filter", label, "--format", "{{.Name}}"])
    let networks = try await podman(["network", "ls", "--format", "{{.Name}}"])
    let pods = try await podman(["pod", "ls", "--format", "{{.Name}}"])
    return (containers + volumes).split(separator: "\n").map(String.init)
      + (networks + pods).split(separator: "\n").map(String.init).filter { $0.contains(name) }
  }

  /// Each container's state and the tail of its log, for a failed run.
  func diagnostics() async -> String {
    var text = (try? await podman(["ps", "-a", "--filter", "label=com.docker.compose.project=\(name)"])) ?? ""
    let names =
      ((try? await podman([
        "ps", "-a", "--filter", "label=com.docker.compose.project=\(name)", "--format", "{{.Names}}",
      ])) ?? "")
    for container in names.split(separator: "\n") {
      text += "\n== \(container) ==\n" + ((try? await podman(["logs", "--tail", "20", String(container)])) ?? "")
    }
    return text
  }

  /// Removes whatever the project left, ignoring errors (for a failed run).
  func down() async {
    _ = try? await script(["down"], timeout: .seconds(300))
  }
}

/// Load clients on several LB nodes, stopped together.
struct MultiLoad {
  let clients: [HTTPLoadClient]

  /// What the clients saw, together.
  struct Report: CustomStringConvertible {
    var successes = 0
    var failures = 0
    var details: [String] = []
    var description: String { "\(successes) answered, \(failures) failed: \(details.joined(separator: "; "))" }
  }

  func stop() async -> Report {
    var total = Report()
    for client in clients {
      let report = await client.stop()
      total.successes += report.successes
      total.failures += report.failures
      total.details.append("\(client.url): \(report)")
    }
    return total
  }
}
