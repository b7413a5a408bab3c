import EtcdClient
import Foundation
import Logging
import SwitchyardTestSupport
import Testing

/// Runs `body` with a client on the given endpoints, with settings that make failures show up
/// quickly in tests.
func withTestClient<T: Sendable>(
  endpoints: [String],
  configure: (inout EtcdConfiguration) -> Void = { _ in },
  _ body: (EtcdClient) async throws -> T
) async throws -> T {
  var configuration = try EtcdConfiguration(endpoints: endpoints.joined(separator: ","))
  configuration.dialTimeout = .seconds(2)
  configuration.requestTimeout = .seconds(10)
  configuration.backoff = Backoff(initial: .milliseconds(50), maximum: .milliseconds(500))
  configure(&configuration)
  var logger = Logger(label: "etcd-client-test")
  logger.logLevel = ProcessInfo.processInfo.environment["TEST_LOG"] == nil ? .critical : .trace
  return try await withEtcdClient(configuration: configuration, logger: logger, body)
}

/// Reads watch responses into an array until `done` says enough, or fails after `timeout`.
func collect(
  _ watch: WatchSequence,
  timeout: Duration = .seconds(30),
  until done: @escaping @Sendable ([WatchEvent]) -> Bool
) async throws -> [WatchEvent] {
  try await withThrowingTaskGroup(of: [WatchEvent]?.self) { group in
    group.addTask {
      var events: [WatchEvent] = []
      for try await response in watch {
        events += response.events
        if done(events) { return events }
      }
      return events
    }
    group.addTask {
      try await Task.sleep(for: timeout)
      return nil
    }
    defer { group.cancelAll() }
    guard let result = try await group.next(), let events = result else {
      Issue.record("watch did not deliver the expected events within \(timeout)")
      throw CancellationError()
    }
    return events
  }
}
