import EtcdClient
import SwitchyardTestSupport
import Testing

@Suite("Leases against a real etcd", .serialized)
struct LeaseIntegrationTests {
  @Test("a key without keepalive is gone after its TTL; with keepalive it outlives 3×TTL")
  func keepAliveKeepsKeys() async throws {
    try await EtcdCluster.with(members: 1) { cluster in
      try await withTestClient(endpoints: cluster.endpoints) { etcd in
        let ttl: Int64 = 2
        let unkept = try await etcd.grantLease(ttl: ttl)
        let kept = try await etcd.grantLease(ttl: ttl)
        #expect(unkept.ttl == ttl)
        try await etcd.put("/lease/unkept", value: "x", options: PutOptions(lease: unkept.id))
        try await etcd.put("/lease/kept", value: "x", options: PutOptions(lease: kept.id))
        #expect(Set(try await etcd.leases()).isSuperset(of: [unkept.id, kept.id]))

        let renewals = Task {
          var count = 0
          for try await renewal in etcd.keepAlive(kept) {
            #expect(renewal.id == kept.id && renewal.ttl == ttl)
            count += 1
          }
          return count
        }
        try await Task.sleep(for: .seconds(Double(ttl) * 3 + 0.5))
        #expect(try await etcd.value(of: "/lease/unkept") == nil)
        #expect(try await etcd.value(of: "/lease/kept") != nil)
        let info = try await etcd.timeToLive(lease: kept.id, keys: true)
        #expect(info.ttl > 0 && info.grantedTTL == ttl)
        #expect(info.keys.map { String(decoding: $0, as: UTF8.self) } == ["/lease/kept"])
        #expect(try await etcd.timeToLive(lease: unkept.id).ttl == -1)
        renewals.cancel()
        let count = try? await renewals.value
        // TTL/3 cadence over 3×TTL is about nine renewals.
        #expect((count ?? 0) >= 6)
      }
    }
  }

  @Test("revoking a lease deletes its keys and ends its keepalive with leaseExpired")
  func revoke() async throws {
    try await EtcdCluster.with(members: 1) { cluster in
      try await withTestClient(endpoints: cluster.endpoints) { etcd in
        let lease = try await etcd.grantLease(ttl: 5)
        try await etcd.put("/revoke/a", value: "x", options: PutOptions(lease: lease.id))
        try await etcd.put("/revoke/b", value: "x", options: PutOptions(lease: lease.id))
        let keepAlive = Task {
          for try await _ in etcd.keepAlive(lease) {}
        }
        try await Task.sleep(for: .milliseconds(300))
        try await etcd.revokeLease(lease.id)
        #expect(try await etcd.get(.prefix("/revoke/")).count == 0)
        do {
          try await keepAlive.value
          Issue.record("keepalive of a revoked lease ended without an error")
        } catch let error as EtcdError {
          #expect(error.code == .leaseExpired)
          #expect(error.leaseID == lease.id)
        }
        do {
          try await etcd.revokeLease(lease.id)
          Issue.record("revoking twice succeeded")
        } catch let error as EtcdError {
          #expect(error.code == .leaseNotFound)
        }
      }
    }
  }

  @Test("expiry is reported when the member is down longer than the TTL")
  func expiryReportedDuringOutage() async throws {
    try await EtcdCluster.with(members: 1) { cluster in
      try await withTestClient(endpoints: cluster.endpoints) { etcd in
        let lease = try await etcd.grantLease(ttl: 2)
        let clock = ContinuousClock()
        let keepAlive = Task { () -> (EtcdError?, ContinuousClock.Instant) in
          do {
            for try await _ in etcd.keepAlive(lease) {}
            return (nil, clock.now)
          } catch {
            return (error as? EtcdError, clock.now)
          }
        }
        try await Task.sleep(for: .milliseconds(500))
        let stoppedAt = clock.now
        try await cluster.stop(member: 0)
        let (error, endedAt) = await keepAlive.value
        #expect(error?.code == .leaseRenewalDeadlinePassed)
        #expect(error?.leaseID == lease.id)
        // Reported within the TTL (plus scheduling slack) of the last renewal, not hidden.
        #expect(stoppedAt.duration(to: endedAt) < .seconds(4))
        try await cluster.start(member: 0)
      }
    }
  }
}
