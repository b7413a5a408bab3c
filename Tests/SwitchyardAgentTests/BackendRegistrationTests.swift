import EtcdClient
import Foundation
import SwitchyardAgent
import SwitchyardHTTP
import SwitchyardTestSupport
import Testing

#if canImport(FoundationNetworking)
  import FoundationNetworking
#endif

@Suite("switchyard backend: self-registration against real etcd", .serialized)
struct BackendRegistrationTests {
  private func backendArguments(_ cluster: EtcdCluster, id: String, port: Int, ttl: Int = 2) -> [String] {
    [
      "backend", "--etcd-endpoints", cluster.endpoints.joined(separator: ","), "--id", id,
      "--listen", "127.0.0.1:\(port)", "--ttl", "\(ttl)", "--drain-seconds", "1", "--log-level", "debug",
    ]
  }

  @Test("registers with the right key and value, serves, and stays registered past 3×TTL")
  func registersAndStays() async throws {
    let directory = try TemporaryDirectory()
    defer { directory.remove() }
    try await EtcdCluster.with(members: 1) { cluster in
      let port = try FreePort.allocate()
      let backend = try startSwitchyard(
        backendArguments(cluster, id: "b1", port: port), directory: directory, name: "b1")
      defer { backend.kill() }
      try await withClient(cluster) { etcd in
        let appeared = await eventually(timeout: .seconds(10)) {
          try await etcd.value(of: "/services/backend/b1") != nil
        }
        #expect(appeared, "registration did not appear: \(backend.logTail())")
        let value = try #require(try await registration(at: "/services/backend/b1", etcd))
        #expect(value["address"] as? String == "127.0.0.1")
        #expect(value["port"] as? Int == port)
        #expect(value["state"] as? String == "up")
        let lease = try #require(try await etcd.value(of: "/services/backend/b1")).lease
        #expect(lease != 0)
        #expect(try await etcd.timeToLive(lease: lease).grantedTTL == 2)

        let (body, _) = try await URLSession.shared.data(from: URL(string: "http://127.0.0.1:\(port)/")!)
        #expect(String(decoding: body, as: UTF8.self) == "Hello from b1\n")

        try await Task.sleep(for: .seconds(6.5))
        let still = try #require(try await etcd.value(of: "/services/backend/b1"))
        #expect(still.lease == lease, "the same lease keeps the registration")
      }
    }
  }

  @Test("kill -9: the key is gone within TTL + 1 s")
  func killNine() async throws {
    let directory = try TemporaryDirectory()
    defer { directory.remove() }
    try await EtcdCluster.with(members: 1) { cluster in
      let backend = try startSwitchyard(
        backendArguments(cluster, id: "b9", port: try FreePort.allocate()),
        directory: directory,
        name: "b9"
      )
      try await withClient(cluster) { etcd in
        #expect(await eventually(timeout: .seconds(10)) { try await etcd.value(of: "/services/backend/b9") != nil })
        // Let a renewal land so the full TTL is in force at the kill.
        try await Task.sleep(for: .seconds(1))
        let clock = ContinuousClock()
        let killed = clock.now
        backend.kill()
        let gone = await eventually(timeout: .seconds(3), every: .milliseconds(50)) {
          try await etcd.value(of: "/services/backend/b9") == nil
        }
        #expect(gone)
        #expect(killed.duration(to: clock.now) <= .seconds(3), "TTL 2 s + 1 s")
      }
    }
  }

  @Test("SIGTERM: the drain state is seen, then the key is removed, then the process exits 0")
  func gracefulShutdown() async throws {
    let directory = try TemporaryDirectory()
    defer { directory.remove() }
    try await EtcdCluster.with(members: 1) { cluster in
      let backend = try startSwitchyard(
        backendArguments(cluster, id: "bt", port: try FreePort.allocate(), ttl: 10),
        directory: directory,
        name: "bt"
      )
      defer { backend.kill() }
      try await withClient(cluster) { etcd in
        #expect(await eventually(timeout: .seconds(10)) { try await etcd.value(of: "/services/backend/bt") != nil })
        let revision = try await etcd.get(.key("/services/backend/bt")).header.revision
        let watch = etcd.watch(.key("/services/backend/bt"), options: WatchOptions(startRevision: revision + 1))
        let clock = ContinuousClock()
        let observer = Task { () -> [(String, ContinuousClock.Instant)] in
          var seen: [(String, ContinuousClock.Instant)] = []
          for try await response in watch {
            for event in response.events {
              if event.kind == .delete {
                seen.append(("deleted", clock.now))
                return seen
              }
              let state = (try? JSONSerialization.jsonObject(with: Data(event.kv.value)) as? [String: Any])?["state"]
              seen.append(((state as? String) ?? "?", clock.now))
            }
          }
          return seen
        }
        try await Task.sleep(for: .milliseconds(200))
        backend.signal(SIGTERM)
        let status = await backend.waitForExit(timeout: .seconds(15))
        let exited = clock.now
        let events = try await observer.value
        #expect(events.map(\.0) == ["drain", "deleted"], "\(backend.logTail())")
        #expect(status == 0)
        if let deleted = events.last?.1 { #expect(deleted <= exited) }
        if events.count == 2 {
          #expect(events[0].1.duration(to: events[1].1) >= .milliseconds(900), "drain lasts --drain-seconds")
        }
      }
    }
  }

  @Test("etcd down for less than the TTL keeps the lease; longer than the TTL: registered again")
  func etcdOutages() async throws {
    let directory = try TemporaryDirectory()
    defer { directory.remove() }
    try await EtcdCluster.with(members: 1) { cluster in
      let backend = try startSwitchyard(
        // The short outage (stop, 1 s, start, reconnect) must stay well inside the TTL on a loaded machine.
        backendArguments(cluster, id: "bo", port: try FreePort.allocate(), ttl: 6),
        directory: directory,
        name: "bo"
      )
      defer { backend.kill() }
      let lease = try await withClient(cluster) { etcd in
        #expect(await eventually(timeout: .seconds(10)) { try await etcd.value(of: "/services/backend/bo") != nil })
        return try #require(try await etcd.value(of: "/services/backend/bo")).lease
      }
      try await Task.sleep(for: .seconds(1))

      // Short outage.
      try await cluster.stop(member: 0)
      try await Task.sleep(for: .seconds(1))
      try await cluster.start(member: 0)
      try await withClient(cluster) { etcd in
        try await Task.sleep(for: .seconds(4))
        let kv = try #require(try await etcd.value(of: "/services/backend/bo"), "\(backend.logTail())")
        #expect(kv.lease == lease, "the same lease survives a short outage")
      }

      // Long outage: longer than the TTL.
      try await cluster.stop(member: 0)
      try await Task.sleep(for: .seconds(8))
      try await cluster.start(member: 0)
      try await withClient(cluster) { etcd in
        let back = await eventually(timeout: .seconds(10)) {
          guard let kv = try await etcd.value(of: "/services/backend/bo") else { return false }
          return try await etcd.timeToLive(lease: kv.lease).ttl > 0
        }
        #expect(back, "registered again after a long outage: \(backend.logTail())")
        // And it stays: renewals work on whatever lease it holds now.
        try await Task.sleep(for: .seconds(4))
        #expect(try await etcd.value(of: "/services/backend/bo") != nil)
      }
      #expect(backend.isRunning, "the backend kept running through both outages")
    }
  }

  @Test(
    "the same id twice: the second process writes nothing, says so once, leaves the key alone when it stops, and takes the key only once the first's lease is gone"
  )
  func duplicateInstanceID() async throws {
    let directory = try TemporaryDirectory()
    defer { directory.remove() }
    let key = "/services/backend/dup"
    try await EtcdCluster.with(members: 1) { cluster in
      let (firstPort, secondPort) = (try FreePort.allocate(), try FreePort.allocate())
      let first = try startSwitchyard(
        backendArguments(cluster, id: "dup", port: firstPort, ttl: 3), directory: directory, name: "first")
      defer { first.kill() }
      try await withClient(cluster) { etcd in
        #expect(await eventually(timeout: .seconds(10)) { try await etcd.value(of: key) != nil })
        let original = try #require(try await etcd.value(of: key))
        let revision = try await etcd.get(.key("/")).header.revision

        let second = try startSwitchyard(
          backendArguments(cluster, id: "dup", port: secondPort, ttl: 3), directory: directory, name: "second")
        defer { second.kill() }
        let reported = await eventually(timeout: .seconds(10)) {
          second.logTail(bytes: 200_000).contains("instance id conflict:")
        }
        #expect(reported, "\(second.logTail())")
        // Long enough for a write war to flip the key a few times (it did every ~2 s).
        try await Task.sleep(for: .seconds(6))
        #expect(try await etcd.get(.key("/")).header.revision == revision, "the two processes wrote to etcd")
        let during = try #require(try await etcd.value(of: key))
        #expect(during.modRevision == original.modRevision && during.lease == original.lease)
        let log = second.logTail(bytes: 200_000)
        #expect(log.components(separatedBy: "instance id conflict:").count - 1 == 1, "one report per conflict: \(log)")
        #expect(log.contains("127.0.0.1:\(firstPort)") && log.contains("127.0.0.1:\(secondPort)"), "both endpoints")
        // And it says so at /registration.
        let (_, body) = try await HTTPCheck.get("http://127.0.0.1:\(secondPort)/registration")
        let status = try JSONDecoder().decode(Registrar.Status.self, from: Data(body.utf8))
        #expect(status.phase == "conflicted" && status.holderLease == original.lease, "\(body)")
        #expect((status.conflictSeconds ?? 0) >= 5)
        let (_, firstBody) = try await HTTPCheck.get("http://127.0.0.1:\(firstPort)/registration")
        #expect(try JSONDecoder().decode(Registrar.Status.self, from: Data(firstBody.utf8)).lease == original.lease)

        // Its graceful stop does not mark the first's key draining.
        second.signal(SIGTERM)
        #expect(await second.waitForExit(timeout: .seconds(15)) == 0)
        let after = try #require(try await etcd.value(of: key))
        #expect(after.modRevision == original.modRevision, "the duplicate's shutdown touched the key")

        // Another duplicate takes the key once the first is gone and its lease has expired.
        let third = try startSwitchyard(
          backendArguments(cluster, id: "dup", port: secondPort, ttl: 3), directory: directory, name: "third")
        defer { third.kill() }
        #expect(await eventually(timeout: .seconds(10)) { third.logTail().contains("instance id conflict:") })
        first.kill()
        let taken = await Self.eventuallyRegistered(key, port: secondPort, etcd)
        #expect(taken, "\(third.logTail())")
        #expect(third.logTail(bytes: 200_000).contains("instance id conflict over"))
      }
    }
  }

  private static func eventuallyRegistered(_ key: String, port: Int, _ etcd: EtcdClient) async -> Bool {
    await eventually(timeout: .seconds(10)) {
      let value = try await registration(at: key, etcd)
      return value?["port"] as? Int == port
    }
  }

  private static func eventuallyUnder(anotherLeaseThan lease: Int64, _ key: String, _ etcd: EtcdClient) async -> Bool {
    await eventually(timeout: .seconds(10)) {
      guard let now = try await etcd.value(of: key) else { return false }
      return now.lease != lease
    }
  }

  @Test("a restarted instance (same id, same endpoint) takes its key back at once, before its old lease expires")
  func restartTakesItsKeyBack() async throws {
    let directory = try TemporaryDirectory()
    defer { directory.remove() }
    let key = "/services/backend/again"
    try await EtcdCluster.with(members: 1) { cluster in
      let port = try FreePort.allocate()
      let arguments = backendArguments(cluster, id: "again", port: port, ttl: 30)
      let crashed = try startSwitchyard(arguments, directory: directory, name: "crashed")
      defer { crashed.kill() }
      try await withClient(cluster) { etcd in
        #expect(await eventually(timeout: .seconds(10)) { try await etcd.value(of: key) != nil })
        let lease = try #require(try await etcd.value(of: key)).lease
        crashed.kill()
        let restarted = try startSwitchyard(arguments, directory: directory, name: "restarted")
        defer { restarted.kill() }
        let back = await Self.eventuallyUnder(anotherLeaseThan: lease, key, etcd)
        #expect(back, "\(restarted.logTail())")
        #expect(!restarted.logTail(bytes: 200_000).contains("instance id conflict"))
      }
    }
  }

  @Test("an operator revokes the lease: registered again within two seconds")
  func operatorRevokes() async throws {
    let directory = try TemporaryDirectory()
    defer { directory.remove() }
    try await EtcdCluster.with(members: 1) { cluster in
      let backend = try startSwitchyard(
        backendArguments(cluster, id: "br", port: try FreePort.allocate(), ttl: 10),
        directory: directory,
        name: "br"
      )
      defer { backend.kill() }
      try await withClient(cluster) { etcd in
        #expect(await eventually(timeout: .seconds(10)) { try await etcd.value(of: "/services/backend/br") != nil })
        let lease = try #require(try await etcd.value(of: "/services/backend/br")).lease
        try await Self.revokeAndAwaitReregistration(cluster: cluster, etcd: etcd, lease: lease, backend: backend)
      }
    }
  }

  private static func revokeAndAwaitReregistration(
    cluster: EtcdCluster,
    etcd: EtcdClient,
    lease: Int64,
    backend: ManagedProcess
  ) async throws {
    try await cluster.etcdctl(["lease", "revoke", String(lease, radix: 16)])
    let clock = ContinuousClock()
    let revoked = clock.now
    let back = await eventually(timeout: .seconds(2), every: .milliseconds(50)) {
      guard let kv = try await etcd.value(of: "/services/backend/br") else { return false }
      return kv.lease != lease
    }
    #expect(back, "not registered again within 2 s: \(backend.logTail())")
    #expect(revoked.duration(to: clock.now) <= .seconds(2))
  }
}
