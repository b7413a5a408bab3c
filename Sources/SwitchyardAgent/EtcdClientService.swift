import EtcdClient
import ServiceLifecycle

/// Runs an ``EtcdClient`` as a service: it stops when the service group shuts down, after the
/// services listed after it (which may still need etcd to deregister).
public struct EtcdClientService: Service {
  /// The client.
  public let client: EtcdClient

  /// Wraps a client.
  public init(client: EtcdClient) {
    self.client = client
  }

  /// Runs the client's connections until graceful shutdown.
  public func run() async throws {
    try await withGracefulShutdownHandler {
      try await client.run()
    } onGracefulShutdown: {
      client.shutdown()
    }
  }
}
