import Foundation
import SwitchyardTestSupport
import Testing

#if canImport(Glibc)
  import Glibc
#elseif canImport(Darwin)
  import Darwin
#endif

@Suite("EtcdCluster against real etcd", .serialized)
struct EtcdClusterTests {
  @Test("a 3-member cluster answers with a member stopped; the member rejoins; shutdown leaves nothing")
  func threeMembers() async throws {
    var pids: [Int32] = []
    let directory = try await EtcdCluster.with(members: 3) { cluster in
      pids = cluster.members.indices.compactMap(cluster.pid(of:))
      #expect(pids.count == 3)
      #expect(Set(cluster.endpoints).count == 3)
      #expect(cluster.endpoint(of: 1) == "127.0.0.1:\(cluster.members[1].clientPort)")
      #expect(cluster.clientURL(of: 2) == "http://\(cluster.endpoint(of: 2))")
      #expect(try await cluster.etcdctl(["member", "list"]).split(separator: "\n").count == 3)
      try await cluster.etcdctl(["put", "/k", "v1"])
      #expect(try await cluster.etcdctl(["get", "/k", "--print-value-only"]) == "v1\n")

      let stopped = try #require(cluster.pid(of: 0))
      try await cluster.stop(member: 0)
      #expect(!isAlive(stopped))
      #expect(!cluster.isRunning(member: 0))
      try await cluster.etcdctl(["put", "/k", "v2"], members: [1, 2])
      #expect(try await cluster.etcdctl(["get", "/k", "--print-value-only"], members: [2]) == "v2\n")
      await #expect(throws: TestSupportError.self) { try await cluster.stop(member: 0) }

      try await cluster.start(member: 0)
      pids.append(try #require(cluster.pid(of: 0)))
      // A linearizable read through the restarted member sees what was written while it was down.
      #expect(try await cluster.etcdctl(["get", "/k", "--print-value-only"], members: [0]) == "v2\n")
      return cluster.directory
    }
    for pid in pids { #expect(!isAlive(pid), "etcd pid \(pid) outlived shutdown") }
    #expect(!FileManager.default.fileExists(atPath: directory.path))
  }

  @Test("a killed member restarts from its data directory and catches up")
  func killAndRestart() async throws {
    try await EtcdCluster.with(members: 3) { cluster in
      let killed = try #require(cluster.pid(of: 2))
      try cluster.kill(member: 2)
      #expect(!isAlive(killed))
      // If etcd3 led, a write forwarded to it before the others noticed would wait out its deadline.
      try await cluster.waitHealthy(member: 0)
      for index in 1...20 { try await cluster.etcdctl(["put", "/n", "\(index)"]) }
      try await cluster.start(member: 2)
      #expect(try await cluster.etcdctl(["get", "/n", "--print-value-only"], members: [2]) == "20\n")
      #expect(try await cluster.etcdctl(["member", "list"]).split(separator: "\n").count == 3)
    }
  }

  @Test("a single member keeps its data across a restart")
  func singleMemberRestart() async throws {
    try await EtcdCluster.with(members: 1) { cluster in
      try await cluster.etcdctl(["put", "/kept", "yes"])
      try await cluster.stop(member: 0)
      try await cluster.start(member: 0)
      #expect(try await cluster.etcdctl(["get", "/kept", "--print-value-only"]) == "yes\n")
      await #expect(throws: TestSupportError.self) { try await cluster.start(member: 0) }
    }
  }

  @Test("with TLS, etcdctl works with the client certificate and fails without one")
  func tls() async throws {
    let directory = try TemporaryDirectory()
    defer { directory.remove() }
    let files = try TLSFiles.generate(in: directory.path)
    try await EtcdCluster.with(members: 1, options: .init(tls: files)) { cluster in
      #expect(cluster.clientURL(of: 0) == "https://\(cluster.endpoint(of: 0))")
      try await cluster.etcdctl(["put", "/tls", "yes"])
      #expect(try await cluster.etcdctl(["get", "/tls", "--print-value-only"]) == "yes\n")
      let error = await #expect(throws: TestSupportError.self) {
        try await ManagedProcess.run(
          "etcdctl",
          arguments: [
            "--endpoints=\(cluster.endpoint(of: 0))", "--cacert=\(files.caCertificate)",
            "--dial-timeout=1s", "--command-timeout=2s", "get", "/tls",
          ]
        )
      }
      #expect(error?.code == .commandFailed)
    }
  }

  @Test("with auth enabled, etcdctl works as root or another user and fails without a user")
  func authentication() async throws {
    try await EtcdCluster.with(members: 1) { cluster in
      try await cluster.enableAuth(rootPassword: "s3cret")
      let root = EtcdCluster.Credentials(user: "root", password: "s3cret")
      try await cluster.etcdctl(["put", "/auth", "ok"], user: root)
      #expect(try await cluster.etcdctl(["get", "/auth", "--print-value-only"], user: root) == "ok\n")

      let anonymous = await #expect(throws: TestSupportError.self) { try await cluster.etcdctl(["get", "/auth"]) }
      #expect(anonymous?.message.contains("user name is empty") == true)
      let wrong = await #expect(throws: TestSupportError.self) {
        try await cluster.etcdctl(["get", "/auth"], user: .init(user: "root", password: "wrong"))
      }
      #expect(wrong?.message.contains("authentication failed") == true)
      #expect(wrong?.message.contains("s3cret") == false)

      try await cluster.addUser(name: "alice", password: "a:b c", roles: ["root"])
      let alice = EtcdCluster.Credentials(user: "alice", password: "a:b c")
      #expect(try await cluster.etcdctl(["get", "/auth", "--print-value-only"], user: alice) == "ok\n")
      // Health checks use the root password, so members restart with auth enabled.
      try await cluster.stop(member: 0)
      try await cluster.start(member: 0)
    }
  }

  @Test("a member that cannot start fails fast with its log, and nothing is left running")
  func startupFailure() async throws {
    let clock = ContinuousClock()
    let started = clock.now
    let error = await #expect(throws: TestSupportError.self) {
      try await EtcdCluster.start(members: 1, options: .init(extraArguments: ["--no-such-flag"]))
    }
    #expect(error?.code == .notHealthy)
    #expect(error?.message.contains("no-such-flag") == true)
    #expect(started.duration(to: clock.now) < .seconds(10))
  }

  @Test("with(members:) shuts the cluster down when the body throws")
  func shutdownOnError() async throws {
    struct Expected: Error {}
    var pid: Int32?
    var directory: TemporaryDirectory?
    await #expect(throws: Expected.self) {
      try await EtcdCluster.with(members: 1) { cluster in
        pid = cluster.pid(of: 0)
        directory = cluster.directory
        throw Expected()
      }
    }
    #expect(pid.map(isAlive) == false)
    #expect(directory.map { FileManager.default.fileExists(atPath: $0.path) } == false)
  }
}

/// Whether `pid` is a live process (a zombie is not): whether an etcd we started is still around.
func isAlive(_ pid: Int32) -> Bool {
  #if os(Linux)
    guard let stat = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8),
      let end = stat.lastIndex(of: ")"),
      let state = stat[end...].dropFirst(2).first
    else { return false }
    return state != "Z" && state != "X"
  #else
    return kill(pid, 0) == 0
  #endif
}

/// Not Sendable: `with(members:)` must let the body use and return it.
private final class Counter {
  var value = 0
}

@Test("with(members:) runs the body in the caller's isolation, with non-Sendable state")
@MainActor
func bodyKeepsIsolation() async throws {
  let counter = Counter()
  let result = try await EtcdCluster.with(members: 1) { cluster in
    MainActor.assertIsolated()
    counter.value += cluster.members.count
    return counter
  }
  #expect(result.value == 1)
}
