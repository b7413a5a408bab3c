import EtcdClient
import SwitchyardTestSupport
import Testing

@Suite("Watch against a real etcd", .serialized)
struct WatchIntegrationTests {
  @Test("PUT and DELETE events with prev_kv, from now and from an old revision")
  func putAndDeleteEvents() async throws {
    try await EtcdCluster.with(members: 1) { cluster in
      try await withTestClient(endpoints: cluster.endpoints) { etcd in
        let before = try await etcd.put("/w/a", value: "0").header.revision
        let watch = etcd.watch(.prefix("/w/"), options: WatchOptions(prevKV: true))
        let collector = Task { try await collect(watch) { $0.count >= 3 } }
        // Give the watch time to be created before writing; "from now" means after creation.
        try await Task.sleep(for: .milliseconds(300))
        try await etcd.put("/w/a", value: "1")
        try await etcd.put("/w/b", value: "2")
        try await etcd.delete(.key("/w/a"))
        let events = try await collector.value
        #expect(events.map(\.kind) == [.put, .put, .delete])
        #expect(events.map(\.kv.keyString) == ["/w/a", "/w/b", "/w/a"])
        #expect(events[0].prevKV?.valueString == "0")
        #expect(events[1].prevKV == nil)
        #expect(events[2].prevKV?.valueString == "1")

        // From the old revision, history is replayed: the first put, then the three above.
        let replay = try await collect(etcd.watch(.prefix("/w/"), options: WatchOptions(startRevision: before))) {
          $0.count >= 4
        }
        #expect(replay.map(\.kv.modRevision) == Array(before...(before + 3)))
        #expect(replay.first?.kv.valueString == "0")

        // Filters: no PUTs leaves only the delete.
        let deletesOnly = try await collect(
          etcd.watch(.prefix("/w/"), options: WatchOptions(startRevision: before, noPut: true))
        ) { $0.count >= 1 }
        #expect(deletesOnly.map(\.kind) == [.delete])
      }
    }
  }

  @Test("a watch from a compacted revision ends with the typed compacted error")
  func compactedWatch() async throws {
    try await EtcdCluster.with(members: 1) { cluster in
      try await withTestClient(endpoints: cluster.endpoints) { etcd in
        var revision: Int64 = 0
        for index in 0..<10 { revision = try await etcd.put("/c/k", value: "\(index)").header.revision }
        try await etcd.compact(revision: revision - 2)
        do {
          for try await _ in etcd.watch(.key("/c/k"), options: WatchOptions(startRevision: revision - 8)) {
            Issue.record("a compacted watch delivered events")
          }
          Issue.record("a compacted watch ended without an error")
        } catch let error as EtcdError {
          #expect(error.code == .compacted)
          #expect(error.compactRevision == revision - 2)
        }
      }
    }
  }

  @Test("a catch-up larger than etcd's message limit arrives in fragments, merged into whole responses")
  func fragments() async throws {
    // With a 100 kB request limit, ten 60 kB values replayed at once exceed one response.
    try await EtcdCluster.with(members: 1, options: .init(extraArguments: ["--max-request-bytes", "100000"])) {
      cluster in
      try await withTestClient(endpoints: cluster.endpoints) { etcd in
        let value = [UInt8](repeating: 0x78, count: 60_000)
        let first = try await etcd.put("/frag/0", value: value).header.revision
        for index in 1..<10 { try await etcd.put("/frag/\(index)", value: value) }
        let events = try await collect(etcd.watch(.prefix("/frag/"), options: WatchOptions(startRevision: first))) {
          $0.count >= 10
        }
        #expect(events.map(\.kv.keyString) == (0..<10).map { "/frag/\($0)" })
        #expect(events.allSatisfy { $0.kv.value == value })
      }
    }
  }

  @Test("progress requests are answered on a quiet watch")
  func progress() async throws {
    try await EtcdCluster.with(members: 1) { cluster in
      try await withTestClient(endpoints: cluster.endpoints) { etcd in
        let revision = try await etcd.put("/p/k", value: "x").header.revision
        var iterator = etcd.watch(.prefix("/p/"), options: WatchOptions(startRevision: revision + 1))
          .makeAsyncIterator()
        try await Task.sleep(for: .milliseconds(300))
        etcd.requestWatchProgress()
        let response = try await iterator.next()
        #expect(response?.isProgressNotification == true)
        #expect((response?.revision ?? 0) >= revision)
      }
    }
  }

  @Test("a watch survives a restart of its member: keys 1...N arrive exactly once, in order")
  func resumeAcrossRestart() async throws {
    try await EtcdCluster.with(members: 1) { cluster in
      try await withTestClient(endpoints: cluster.endpoints) { etcd in
        let total = 60
        let start = try await etcd.put("/resume/start", value: "").header.revision + 1
        let watch = etcd.watch(.prefix("/resume/k/"), options: WatchOptions(startRevision: start))
        let collector = Task { try await collect(watch, timeout: .seconds(60)) { $0.count >= total } }

        let writer = Task {
          for index in 1...total {
            let key = "/resume/k/\(String(index).leftPadded(4))"
            // Create-if-absent keeps a retried write from appearing twice.
            while true {
              do {
                _ = try await etcd.txn(Txn(compare: [.version(key, .equal, 0)], success: [.put(key, "\(index)")]))
                break
              } catch {
                try await Task.sleep(for: .milliseconds(50))
              }
            }
            try await Task.sleep(for: .milliseconds(25))
          }
        }
        try await Task.sleep(for: .milliseconds(500))
        try await cluster.stop(member: 0)
        try await Task.sleep(for: .milliseconds(800))
        try await cluster.start(member: 0)
        try await writer.value
        let events = try await collector.value
        let keys = events.map(\.kv.keyString)
        let expected = (1...total).map { "/resume/k/\(String($0).leftPadded(4))" }
        #expect(keys == expected)
        #expect(events.allSatisfy { $0.kind == .put })
      }
    }
  }
}

extension String {
  func leftPadded(_ width: Int) -> String {
    count >= width ? self : String(repeating: "0", count: width - count) + self
  }
}
