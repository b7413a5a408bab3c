import Crypto
import EtcdClient
import Foundation
import SwitchyardACME
import SwitchyardCerts
import SwitchyardTestSupport
import Testing

#if canImport(FoundationNetworking)
  import FoundationNetworking
#endif

/// The coordinator against real etcd and Pebble (with dnsmasq), all on loopback.
@Suite(.timeLimit(.minutes(2))) struct CoordinatorTests {
  @Test func issuesForTwoNamesThenRenewsInTheWindow() async throws {
    try await ACMELab.with { lab in
      try await lab.putRoute("shop", hosts: ["b.example.test", "a.example.test"])
      let node = try lab.start(lab.configuration(node: "lb1"))
      let issued = await eventually(timeout: .seconds(20)) { try await lab.certificate("acme-shop") != nil }
      // The report follows the write to etcd.
      _ = await eventually(timeout: .seconds(5)) { node.coordinator.report.orders.map(\.state) == ["valid"] }
      let report = node.coordinator.report
      await node.stop()
      #expect(issued, "no certificate; Pebble said: \(lab.pebble.pebbleLog())")
      let first = try #require(try await lab.certificate("acme-shop"))
      #expect(first.bundle.hosts.map(\.text) == ["a.example.test", "b.example.test"])
      #expect(first.record.source == .acme)
      #expect(try await lab.chainsToPebbleRoot(first.bundle))
      #expect(report.isLeader && report.leader == "lb1")
      #expect(report.orders.map(\.state) == ["valid"])
      #expect(try await lab.etcd.get(.prefix(ACMEChallenge.root)).kvs.isEmpty)
      #expect(try await lab.etcd.value(of: "/switchyard/acme/orders/acme-shop") == nil)
      #expect(lab.responder.served >= 2)
      // The account is in etcd, its key sealed: the raw JSON holds no PEM.
      let account = try #require(try await lab.etcd.value(of: ACMEAccountRecord.key))
      #expect(!account.valueString.contains("PRIVATE KEY"))
      let storedValue = try #require(try await lab.etcd.value(of: "/switchyard/certs/acme-shop")).valueString
      #expect(storedValue.contains("BEGIN CERTIFICATE") && !storedValue.contains("PRIVATE KEY"))

      // A second node with the window forced to the whole lifetime renews with the same account.
      var renewing = lab.configuration(node: "lb2")
      renewing.renewalFraction = 1.0
      let second = try lab.start(renewing)
      let renewed = await eventually(timeout: .seconds(20)) {
        try await lab.certificate("acme-shop").map { $0.bundle.serialHex != first.bundle.serialHex } ?? false
      }
      await second.stop()
      #expect(renewed)
      let after = try #require(try await lab.certificate("acme-shop"))
      #expect(after.bundle.hosts.map(\.text) == ["a.example.test", "b.example.test"])
      #expect(try await lab.etcd.value(of: ACMEAccountRecord.key)?.version == 1)
    }
  }

  @Test func aNewRouteIsServedWithoutWaitingForThePass() async throws {
    try await ACMELab.with { lab in
      var configuration = lab.configuration(node: "lb1")
      configuration.passInterval = .seconds(120)
      let node = try lab.start(configuration)
      #expect(await eventually(timeout: .seconds(10)) { node.coordinator.report.isLeader })
      // Let the first pass (no routes) finish, then add a route and a stale order of a route that is gone.
      try await Task.sleep(for: .milliseconds(500))
      try await lab.etcd.put(
        "/switchyard/acme/orders/acme-gone", value: ACMEOrderRecord(hosts: ["x.example.test"]).encoded())
      try await lab.putRoute("late", hosts: ["late.example.test"])
      let issued = await eventually(timeout: .seconds(15)) { try await lab.certificate("acme-late") != nil }
      await node.stop()
      #expect(issued)
      #expect(try await lab.etcd.value(of: "/switchyard/acme/orders/acme-gone") == nil)
      // The stopped leader revoked its lease: the election key is gone at once.
      #expect(try await lab.etcd.value(of: ACMECoordinator.leaderKey) == nil)
    }
  }

  @Test func theOtherNodeFinishesTheOrderWhenTheLeaderCrashes() async throws {
    let gate = ValidationGate()
    try await ACMELab.with(gate: gate) { lab in
      try await lab.putRoute("web", hosts: ["www.example.test"])
      let nodes = [try lab.start(lab.configuration(node: "lb1")), try lab.start(lab.configuration(node: "lb2"))]
      // Pebble's first validation request arrives: the challenge is published and answered to the CA.
      #expect(await eventually(timeout: .seconds(20)) { gate.hits > 0 })
      let leaderIndex = try #require(nodes.firstIndex { $0.coordinator.report.isLeader })
      let leader = nodes[leaderIndex]
      let other = nodes[1 - leaderIndex]
      #expect(!other.coordinator.report.isLeader)
      #expect(other.coordinator.report.leader == leader.coordinator.configuration.nodeID)
      let published = try await lab.etcd.get(.prefix(ACMEChallenge.root)).kvs
      #expect(published.count == 1)
      let order = try #require(try await lab.etcd.value(of: "/switchyard/acme/orders/acme-web"))
      let started = ContinuousClock.now
      await leader.crash()
      gate.open()
      let landed = await eventually(timeout: .seconds(25)) { try await lab.certificate("acme-web") != nil }
      let tookOver = ContinuousClock.now - started
      #expect(landed, "Pebble said: \(lab.pebble.pebbleLog())")
      #expect(other.coordinator.report.isLeader)
      #expect(tookOver >= .seconds(2), "the other node must wait for the lease to expire (\(tookOver))")
      let stored = try #require(try await lab.certificate("acme-web"))
      #expect(stored.version == 1, "the certificate must land once")
      #expect(stored.bundle.hosts.map(\.text) == ["www.example.test"])
      #expect(
        try await lab.etcd.value(of: ACMECoordinator.leaderKey)?.valueString == other.coordinator.configuration.nodeID)
      // The order record was written once (placed by the crashed leader) and deleted with the certificate's
      // write: the new leader resumed that order and did not place another.
      #expect(order.version == 1)
      #expect(try await lab.etcd.value(of: "/switchyard/acme/orders/acme-web") == nil)
      let beforeDelete = try await lab.etcd.get(
        .key("/switchyard/acme/orders/acme-web"), options: GetOptions(revision: stored.record.modRevision - 1))
      #expect(beforeDelete.kvs.first?.version == 1)
      #expect(beforeDelete.kvs.first?.valueString == order.valueString)
      await other.stop()
    }
  }

  @Test func caErrorsBackOffAndTheNextLeaderHonoursIt() async throws {
    try await ACMELab.with { lab in
      // dnsmasq resolves only example.test: Pebble cannot validate this name.
      try await lab.putRoute("lost", hosts: ["nowhere.unresolved.test"])
      let first = try lab.start(lab.configuration(node: "lb1"))
      var record: ACMEOrderRecord?
      let failed = await eventually(timeout: .seconds(20)) {
        guard let kv = try await lab.etcd.value(of: "/switchyard/acme/orders/acme-lost") else { return false }
        record = try ACMEOrderRecord.parse(kv.value)
        return record?.attempts == 1
      }
      let report = first.coordinator.report
      await first.stop()
      #expect(failed)
      let stored = try #require(record)
      let now = Int64(Date().timeIntervalSince1970)
      #expect((now + 20...now + 31).contains(stored.nextAttemptAt ?? 0))
      #expect(stored.lastError?.isEmpty == false)
      #expect(report.orders.first?.state == "backoff")
      #expect(report.orders.first?.lastError == stored.lastError)
      #expect(try await lab.etcd.get(.prefix(ACMEChallenge.root)).kvs.isEmpty)

      // Another leader reads the backoff from etcd and does not order again before it ends.
      let second = try lab.start(lab.configuration(node: "lb2"))
      #expect(await eventually(timeout: .seconds(10)) { second.coordinator.report.orders.first?.state == "backoff" })
      try await Task.sleep(for: .seconds(1))
      await second.stop()
      let after = try ACMEOrderRecord.parse(
        try #require(try await lab.etcd.value(of: "/switchyard/acme/orders/acme-lost")).value)
      #expect(after.attempts == 1)
      #expect(try await lab.certificate("acme-lost") == nil)
    }
  }

  @Test func aHostileChallengeKeyIsNotServed() async throws {
    try await ACMELab.with { lab in
      let thumbprint = JWK(P256.Signing.PrivateKey().publicKey).thumbprint
      try await lab.etcd.put(ACMEChallenge.root + "ok-token", value: "ok-token.\(thumbprint)")
      try await lab.etcd.put(ACMEChallenge.root + "evil", value: "evil.\(thumbprint)\nadd map /x y")
      try await lab.etcd.put(ACMEChallenge.root + "mismatch", value: "other.\(thumbprint)")
      let base = "http://127.0.0.1:\(lab.pebble.httpPort)/.well-known/acme-challenge/"
      let good = try await URLSession.shared.data(from: URL(string: base + "ok-token")!)
      #expect(String(decoding: good.0, as: UTF8.self) == "ok-token.\(thumbprint)")
      for token in ["evil", "mismatch"] {
        let (_, response) = try await URLSession.shared.data(from: URL(string: base + token)!)
        #expect((response as? HTTPURLResponse)?.statusCode == 404)
      }
      #expect(lab.responder.refused == 2)
    }
  }
}
