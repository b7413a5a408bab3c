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

  private func refusal(id: Int64 = -1, reason: String) -> Etcdserverpb_WatchResponse {
    var message = response(id: id, revision: 30, created: true)
    message.canceled = true
    message.cancelReason = reason
    return message
  }

  private func openStream(_ manager: WatchManager) -> AsyncStream<Etcdserverpb_WatchRequest> {
    let (requests, continuation) = AsyncStream<Etcdserverpb_WatchRequest>.makeStream()
    manager.beginStream(on: EtcdEndpoint(host: "127.0.0.1", port: 2379), requests: continuation)
    return requests
  }

  private func outcome(of stream: AsyncThrowingStream<WatchResponse, any Error>) async -> (
    responses: [WatchResponse], error: EtcdError?
  ) {
    var responses: [WatchResponse] = []
    do {
      for try await response in stream { responses.append(response) }
      return (responses, nil)
    } catch let error as EtcdError {
      return (responses, error)
    } catch {
      Issue.record("unexpected error \(error)")
      return (responses, nil)
    }
  }

  @Test("a refused create (id -1, created and canceled) ends the oldest pending watch; a bare -1 is progress")
  func refusedCreateMatchesInOrder() async throws {
    let manager = WatchManager(logger: Logger(label: "test"))
    let (denied, deniedContinuation) = AsyncThrowingStream<WatchResponse, any Error>.makeStream()
    let (allowed, allowedContinuation) = AsyncThrowingStream<WatchResponse, any Error>.makeStream()
    let first = manager.add(
      range: .prefix("/secret/"), options: WatchOptions(startRevision: 5), continuation: deniedContinuation)
    let second = manager.add(
      range: .prefix("/open/"), options: WatchOptions(startRevision: 5), continuation: allowedContinuation)
    _ = openStream(manager)

    #expect(manager.handle(refusal(reason: "etcdserver: permission denied")) == .proceed)
    manager.handle(response(id: second, revision: 30, created: true))
    manager.handle(response(id: second, revision: 31, events: [("/open/a", 31)]))
    manager.requestProgress()
    manager.handle(response(id: -1, revision: 32))
    manager.shutdown()

    let deniedOutcome = await outcome(of: denied)
    #expect(deniedOutcome.responses.isEmpty)
    #expect(deniedOutcome.error?.code == .permissionDenied)
    #expect(deniedOutcome.error?.message.contains("permission denied") == true)
    let allowedOutcome = await outcome(of: allowed)
    #expect(allowedOutcome.responses.map(\.events.count) == [1, 0])
    #expect(allowedOutcome.responses.last?.isProgressNotification == true)
    #expect(allowedOutcome.error?.code == .cancelled)
    _ = first
  }

  @Test("with credentials, an auth refusal asks for a new token once; the second refusal ends the watch")
  func authRefusalRetriesOnce() async throws {
    let manager = WatchManager(logger: Logger(label: "test"), hasCredentials: true)
    let (stream, continuation) = AsyncThrowingStream<WatchResponse, any Error>.makeStream()
    _ = manager.add(range: .prefix("/a/"), options: WatchOptions(startRevision: 2), continuation: continuation)
    _ = openStream(manager)
    #expect(manager.handle(refusal(reason: "etcdserver: permission denied")) == .refreshToken)
    // The stream is reopened with a new token; the watch is created again and refused again.
    _ = openStream(manager)
    #expect(manager.handle(refusal(reason: "etcdserver: permission denied")) == .proceed)
    let result = await outcome(of: stream)
    #expect(result.error?.code == .permissionDenied)
  }

  @Test("a refusal for another reason ends the watch with watchCanceled and etcd's reason")
  func otherRefusal() async throws {
    let manager = WatchManager(logger: Logger(label: "test"), hasCredentials: true)
    let (stream, continuation) = AsyncThrowingStream<WatchResponse, any Error>.makeStream()
    let id = manager.add(range: .prefix("/a/"), options: WatchOptions(startRevision: 2), continuation: continuation)
    _ = openStream(manager)
    manager.handle(refusal(id: id, reason: "etcdserver: mvcc: required revision is a future revision"))
    let result = await outcome(of: stream)
    #expect(result.error?.code == .watchCanceled)
    #expect(result.error?.message.contains("future revision") == true)
  }

  @Test("a watch from now resumes at the created revision, so a write racing the creation is delivered")
  func fromNowResumesAtCreatedRevision() async throws {
    let manager = WatchManager(logger: Logger(label: "test"))
    let (stream, continuation) = AsyncThrowingStream<WatchResponse, any Error>.makeStream()
    let id = manager.add(range: .prefix("/a/"), options: WatchOptions(notifyCreated: true), continuation: continuation)
    _ = openStream(manager)
    // etcd registered the watch, then a write landed at revision 10 before it read its revision.
    manager.handle(response(id: id, revision: 10, created: true))
    manager.handle(response(id: id, revision: 10, events: [("/a/raced", 10)]))
    // After a reconnect, the create asks for revision 11 onwards.
    var requests = openStream(manager).makeAsyncIterator()
    let create = await requests.next()
    #expect(create?.createRequest.startRevision == 11)
    manager.shutdown()
    let result = await outcome(of: stream)
    #expect(result.responses.first?.isCreated == true)
    #expect(result.responses.first?.isProgressNotification == false)
    #expect(result.responses.dropFirst().map { $0.events.map(\.kv.keyString) } == [["/a/raced"]])
  }
}

@Suite("Endpoint preference (no I/O)")
struct EndpointPoolTests {
  private func configuration() throws -> EtcdConfiguration {
    try EtcdConfiguration(endpoints: "127.0.0.1:1,127.0.0.1:2,127.0.0.1:3")
  }

  @Test("clients start on a random member, so that many clients spread over the cluster")
  func randomFirstChoice() throws {
    var firsts: Set<Int> = []
    for _ in 0..<60 {
      let pool = try EndpointPool(configuration: configuration())
      firsts.insert(pool.preferred().index)
    }
    #expect(firsts == [0, 1, 2])
  }

  @Test("after a failure the preference skips members that failed recently")
  func preferAnsweringMember() throws {
    var generator = FixedFirstChoice()
    let pool = try EndpointPool(configuration: configuration(), using: &generator)
    #expect(pool.preferred().index == 0)
    pool.markFailed(pool.members[1])
    pool.markFailed(pool.members[0])
    #expect(pool.preferred().index == 2)
    pool.markSucceeded(pool.members[1])
    pool.markFailed(pool.members[2])
    #expect(pool.preferred().index == 1)
  }

  /// A generator whose draws pick the lowest value of a small range (an all-zero generator would
  /// make `Int.random(in:using:)` draw forever).
  struct FixedFirstChoice: RandomNumberGenerator {
    mutating func next() -> UInt64 { 1 }
  }
}
