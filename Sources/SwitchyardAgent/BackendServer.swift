import Foundation
import Hummingbird
import Logging
import NIOCore

/// The sample backend's HTTP application: `GET /` answers `Hello from <instance-id>`, `/healthz`
/// answers `ok` for health checks, and `/registration` says what its registrar is doing (JSON: phase,
/// lease, and during an instance id conflict the other holder's lease and how long it has lasted).
///
/// As a `Service` it finishes in-flight requests on graceful shutdown.
public enum BackendServer {
  /// Builds the application.
  ///
  /// - Parameters:
  ///   - instanceID: Printed in every greeting, so a client can tell backends apart.
  ///   - host: Address to listen on.
  ///   - port: Port to listen on (0 picks a free one; `onListening` tells which).
  ///   - registration: What `/registration` reports; without it the route is not there.
  ///   - onListening: Called with the bound port once the server accepts connections.
  public static func makeApplication(
    instanceID: String,
    host: String,
    port: Int,
    logger: Logger,
    registration: (@Sendable () -> Registrar.Status)? = nil,
    onListening: @escaping @Sendable (Int) async -> Void = { _ in }
  ) -> some ApplicationProtocol {
    let router = Router()
    router.get("/") { _, _ in
      "Hello from \(instanceID)\n"
    }
    router.get("/healthz") { _, _ in
      "ok\n"
    }
    if let registration {
      router.get("/registration") { _, _ -> Response in
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        let body = (try? encoder.encode(registration())) ?? Data("{}".utf8)
        return Response(
          status: .ok, headers: [.contentType: "application/json"], body: .init(byteBuffer: ByteBuffer(bytes: body)))
      }
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
