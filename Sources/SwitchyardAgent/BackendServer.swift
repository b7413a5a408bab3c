import Hummingbird
import Logging
import NIOCore

/// The sample backend's HTTP application: `GET /` answers `Hello from <instance-id>`, and
/// `/healthz` answers `ok` for health checks.
///
/// As a `Service` it finishes in-flight requests on graceful shutdown.
public enum BackendServer {
  /// Builds the application.
  ///
  /// - Parameters:
  ///   - instanceID: Printed in every greeting, so a client can tell backends apart.
  ///   - host: Address to listen on.
  ///   - port: Port to listen on (0 picks a free one; `onListening` tells which).
  ///   - onListening: Called with the bound port once the server accepts connections.
  public static func makeApplication(
    instanceID: String,
    host: String,
    port: Int,
    logger: Logger,
    onListening: @escaping @Sendable (Int) async -> Void = { _ in }
  ) -> some ApplicationProtocol {
    let router = Router()
    router.get("/") { _, _ in
      "Hello from \(instanceID)\n"
    }
    router.get("/healthz") { _, _ in
      "ok\n"
    }
    return Application(
      router: router,
      configuration: .init(address: .hostname(host, port: port), serverName: "switchyard-backend"),
      onServerRunning: { channel in
        await onListening(channel.localAddress?.port ?? port)
      },
      logger: logger
    )
  }
}
