import Foundation
import Logging
import Testing

@testable import EtcdClient

@Suite("Watch response handling (no I/O)")
struct WatchManagerTests {
  private func response(
    id: Int64,
    revision: Int64,
    events: [(String, Int64)] = [],
    created: Bool = false,
    fragment: Bool = false
  ) -> Etcdserverpb_WatchResponse {
    var message = Etcdserverpb_WatchResponse()
    message.watchID = id
    message.header.revision = revision
    message.created = created
    message.fragment = fragment
    message.events = events.map { key, modRevision in
      var event = Mvccpb_Event()
      event.type = .put
      event.kv.key = Data(key.utf8)
      event.kv.modRevision = modRevision
      return event
    }
    return message
  }

  @Test("fragments are merged, resent revisions dropped, and the resume point advances")
  func fragmentsAndDuplicates() async throws {
    let manager = WatchManager(logger: Logger(label: "test"))
    let (stream, continuation) = AsyncThrowingStream<WatchResponse, any Error>.makeStream()
    let id = manager.add(range: .prefix("/a/"), options: WatchOptions(startRevision: 5), continuation: continuation)
    manager.handle(response(id: id, revision: 4, created: true))
    manager.handle(response(id: id, revision: 7, events: [("/a/1", 5), ("/a/2", 6)], fragment: true))
    manager.handle(response(id: id, revision: 7, events: [("/a/3", 7)]))
    // After a reconnect, the server replays from the resume point; an overlap must not repeat.
    manager.handle(response(id: id, revision: 8, events: [("/a/3", 7), ("/a/4", 8)]))
    // Per-watcher progress notifications pass through with no events.
    manager.handle(response(id: id, revision: 9))
    manager.shutdown()

    var delivered: [[String]] = []
    do {
      for try await response in stream { delivered.append(response.events.map(\.kv.keyString)) }
    } catch let error as EtcdError {
      #expect(error.code == .cancelled)
    }
    #expect(delivered == [["/a/1", "/a/2", "/a/3"], ["/a/4"], []])
  }

  @Test("a compaction cancel ends the watch with the compact revision")
  func compaction() async throws {
    let manager = WatchManager(logger: Logger(label: "test"))
    let (stream, continuation) = AsyncThrowingStream<WatchResponse, any Error>.makeStream()
    let id = manager.add(range: .key("/k"), options: WatchOptions(startRevision: 2), continuation: continuation)
    var cancel = response(id: id, revision: 20)
    cancel.canceled = true
    cancel.compactRevision = 15
    manager.handle(cancel)
    do {
      for try await _ in stream { Issue.record("no events expected") }
      Issue.record("the watch should have failed")
    } catch let error as EtcdError {
      #expect(error.code == .compacted && error.compactRevision == 15)
    }
  }
}
