import Foundation
import Hummingbird
import Logging
import NIOCore

/// The controller's admin HTTP server: `/healthz` (the process answers), `/readyz` (HAProxy runs and the
/// watch is current; 503 with the reasons otherwise), `/metrics` (Prometheus text format) and `/state`
/// (JSON: applied revision, services, servers and their HAProxy states).
public enum AdminServer {
  /// Builds the application; run it as a `Service`.
  public static func makeApplication(
    host: String,
    port: Int,
    status: ControllerStatus,
    metrics: ControllerMetrics,
    logger: Logger
  ) -> some ApplicationProtocol {
    let router = Router()
    router.get("/healthz") { _, _ in "ok\n" }
    router.get("/readyz") { _, _ -> Response in
      let reasons = status.notReadyReasons()
      let body = reasons.isEmpty ? "ready\n" : "not ready: " + reasons.joined(separator: "; ") + "\n"
      return text(body, status: reasons.isEmpty ? .ok : .serviceUnavailable)
    }
    router.get("/metrics") { _, _ -> Response in
      text(metrics.exposition(), contentType: "text/plain; version=0.0.4; charset=utf-8")
    }
    router.get("/state") { _, _ -> Response in
      var headers = HTTPFields()
      headers[.contentType] = "application/json"
      return Response(status: .ok, headers: headers, body: .init(byteBuffer: ByteBuffer(data: status.json())))
    }
    return Application(
      router: router,
      configuration: .init(address: .hostname(host, port: port), serverName: "switchyard-controller"),
      logger: logger
    )
  }

  private static func text(
    _ body: String,
    status: HTTPResponse.Status = .ok,
    contentType: String = "text/plain; charset=utf-8"
  ) -> Response {
    var headers = HTTPFields()
    headers[.contentType] = contentType
    return Response(status: status, headers: headers, body: .init(byteBuffer: ByteBuffer(string: body)))
  }
}
