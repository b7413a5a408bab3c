import EtcdClient
import Synchronization
import Testing

/// Every put and delete of a registration, with the time the test saw it, from a watch the test keeps open
/// during the whole suite.
final class RegistrationEvents: Sendable {
  private let deleted = Mutex<[String]>([])
  private let puts = Mutex<[String: ContinuousClock.Instant]>([:])
  private let task = Mutex<Task<Void, Never>?>(nil)

  func start(_ client: EtcdClient) {
    let watch = Task {
      do {
        for try await response in client.watch(.prefix("/services/backend/")) {
          let now = ContinuousClock.now
          for event in response.events {
            switch event.kind {
            case .delete: self.deleted.withLock { $0.append(event.kv.keyString) }
            case .put: self.puts.withLock { $0[event.kv.keyString] = now }
            }
          }
        }
      } catch {
        if !Task.isCancelled { Issue.record("the registration watch ended: \(error)") }
      }
    }
    task.withLock { $0 = watch }
  }

  /// The keys deleted since the last call.
  func takeDeletions() -> [String] {
    deleted.withLock { list in
      defer { list = [] }
      return list
    }
  }

  /// When `key` was last written, as the watch saw it.
  func lastPut(_ key: String) -> ContinuousClock.Instant? { puts.withLock { $0[key] } }

  func stop() { task.withLock { $0?.cancel() } }
}
