import EtcdClient
import Foundation
import SwitchyardTestSupport
import Testing

@Suite("switchyard register: the sidecar", .serialized)
struct SidecarTests {
  @Test("health check: the checked service stops, the entry goes to maint; it starts again, up")
  func healthCheck() async throws {
    let directory = try TemporaryDirectory()
    defer { directory.remove() }
    try await EtcdCluster.with(members: 1) { cluster in
      let endpoints = cluster.endpoints.joined(separator: ",")
      let port = try FreePort.allocate()
      // The checked service: a sample backend registered under another service name.
      let serviceArguments = [
        "backend", "--etcd-endpoints", endpoints, "--service", "other", "--id", "plain",
        "--listen", "127.0.0.1:\(port)", "--drain-seconds", "0",
      ]
      var service = try startSwitchyard(serviceArguments, directory: directory, name: "service")
      defer { service.kill() }
      let sidecar = try startSwitchyard(
        [
          "register", "--etcd-endpoints", endpoints, "--service", "web", "--id", "web-1",
          "--address", "127.0.0.1:\(port)", "--check-http", "/healthz", "--check-interval", "0.2",
          "--rise", "2", "--fall", "2", "--ttl", "5",
        ],
        directory: directory,
        name: "sidecar"
      )
      defer { sidecar.kill() }
      try await withClient(cluster) { etcd in
        func state() async throws -> String? {
          try await registration(at: "/services/web/web-1", etcd)?["state"] as? String
        }
        #expect(await eventually(timeout: .seconds(10)) { try await state() == "up" }, "\(sidecar.logTail())")
        let value = try #require(try await registration(at: "/services/web/web-1", etcd))
        #expect((value["check"] as? [String: Any])?["path"] as? String == "/healthz")

        service.kill()
        #expect(await eventually(timeout: .seconds(5)) { try await state() == "maint" }, "\(sidecar.logTail())")

        service = try startSwitchyard(serviceArguments, directory: directory, name: "service2")
        #expect(await eventually(timeout: .seconds(10)) { try await state() == "up" }, "\(sidecar.logTail())")
      }
      sidecar.signal(SIGTERM)
      #expect(await sidecar.waitForExit(timeout: .seconds(10)) == 0)
      let left = try await withClient(cluster) { etcd in
        try await etcd.value(of: "/services/web/web-1")
      }
      #expect(left == nil, "the sidecar deregisters on SIGTERM")
    }
  }

  @Test("--on-unhealthy remove deletes the entry while the service is down")
  func removeWhileUnhealthy() async throws {
    let directory = try TemporaryDirectory()
    defer { directory.remove() }
    try await EtcdCluster.with(members: 1) { cluster in
      let endpoints = cluster.endpoints.joined(separator: ",")
      let port = try FreePort.allocate()
      let sidecar = try startSwitchyard(
        [
          "register", "--etcd-endpoints", endpoints, "--service", "tcp", "--id", "t1",
          "--address", "127.0.0.1:\(port)", "--check-tcp", "--check-interval", "0.2", "--fall", "2",
          "--on-unhealthy", "remove",
        ],
        directory: directory,
        name: "sidecar"
      )
      defer { sidecar.kill() }
      try await withClient(cluster) { etcd in
        // Nothing listens on the port: registered first (assumed healthy), removed after two failures.
        let removed = await eventually(timeout: .seconds(10)) {
          let revision = try await etcd.get(.key("/services/tcp/t1")).header.revision
          return try await etcd.value(of: "/services/tcp/t1") == nil && revision > 1
        }
        #expect(removed, "\(sidecar.logTail())")
        let server = try startSwitchyard(
          ["backend", "--etcd-endpoints", endpoints, "--service", "x", "--id", "x", "--listen", "127.0.0.1:\(port)"],
          directory: directory,
          name: "server"
        )
        defer { server.kill() }
        #expect(await eventually(timeout: .seconds(10)) { try await etcd.value(of: "/services/tcp/t1") != nil })
      }
    }
  }
}

@Suite("Flags are checked before anything starts")
struct FlagValidationTests {
  static let invalid: [([String], String)] = [
    (["backend", "--id", "bad id"], "--id"),
    (["backend", "--id", "a\nb"], "--id"),
    (["backend", "--service", "a/b"], "--service"),
    (["backend", "--listen", "127.0.0.1:70000"], "--listen"),
    (["backend", "--listen", "127.0.0.1"], "--listen"),
    (["backend", "--advertise", "999.1.1.1:80"], "--advertise"),
    (["backend", "--ttl", "0"], "--ttl"),
    (["backend", "--weight", "300"], "--weight"),
    (["backend", "--etcd-endpoints", "ftp://x:1"], "--etcd-endpoints"),
    (["backend", "--user", "root"], "--user"),
    (["backend", "--log-level", "loud"], "--log-level"),
    (["register", "--id", "x", "--address", "127.0.0.1:0"], "--address"),
    (["register", "--id", "x", "--address", "127.0.0.1:80", "--check-http", "healthz"], "--check-http"),
    (["register", "--id", "x", "--address", "127.0.0.1:80", "--check-http", "/a", "--check-tcp"], "--check-tcp"),
    (["register", "--id", "x", "--address", "127.0.0.1:80", "--on-unhealthy", "explode"], "--on-unhealthy"),
    (["register", "--address", "127.0.0.1:80"], "--id"),
  ]

  @Test("invalid flags give a clear error and a non-zero exit", arguments: invalid)
  func invalidFlags(arguments: [String], mentions: String) async throws {
    let (status, output) = try await runSwitchyard(arguments)
    #expect(status != 0)
    #expect(output.contains("Error:"), "\(output)")
    #expect(output.contains(mentions), "\(arguments) → \(output)")
  }
}
