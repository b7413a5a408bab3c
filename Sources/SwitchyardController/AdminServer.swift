import Foundation
import Hummingbird
import HummingbirdTLS
import Logging
import NIOCore
import NIOSSL

/// The controller's admin HTTP server: `/healthz` (the process answers), `/readyz` (HAProxy runs and the
/// watch is current; 503 with the reasons otherwise), `/metrics` (Prometheus text format) and `/state`
/// (JSON: applied revision, services, servers and their HAProxy states); with a ``Dashboard``, also the
/// node's recent changes and traffic and the live dashboard of the whole cluster (see ``Dashboard``).
public enum AdminServer {
  /// Builds the application; run it as a `Service`. With `tls`, it serves HTTPS only.
  public static func makeApplication(
    host: String,
    port: Int,
    tls: AdminTLS? = nil,
    status: ControllerStatus,
    metrics: ControllerMetrics,
    dashboard: Dashboard? = nil,
    logger: Logger
  ) throws -> some ApplicationProtocol {
    let router = Router(context: AdminRequestContext.self)
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
    dashboard?.addRoutes(to: router)
    return Application(
      router: router,
      server: try tls.map { try .tls(.http1(), tlsConfiguration: $0.reloadingConfiguration(logger: logger)) }
        ?? .http1(),
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

/// The certificate and key the admin server presents over TLS, loaded and checked when made: a missing
/// file, a file that is not PEM, or a key that does not belong to the certificate fails here, at start-up,
/// and not at the first request.
///
/// The server reads the two files again when they change (see ``reloadingConfiguration(logger:)``): a
/// renewed certificate is served to new connections without a restart.
public struct AdminTLS: Sendable {
  /// The PEM file with the server certificate, then any intermediate certificates.
  public let certificatePath: String
  /// The PEM file with the certificate's private key.
  public let keyPath: String
  /// The pair as loaded at start, and the files' stamps just before.
  let initial: LoadedPair

  /// Loads and checks the pair. Errors are ``AdminTLSError`` naming the file.
  public init(certificatePath: String, keyPath: String) throws(AdminTLSError) {
    self.certificatePath = certificatePath
    self.keyPath = keyPath
    self.initial = try Self.load(certificatePath: certificatePath, keyPath: keyPath)
  }

  /// A certificate chain and its key, checked to belong together, and the stamps of the files they came
  /// from (taken before reading, so that a change while reading is seen at the next check).
  struct LoadedPair: Sendable {
    var chain: [NIOSSLCertificate]
    var key: NIOSSLPrivateKey
    var stamps: FileStamps
  }

  /// Reads the pair and checks that the key belongs to the first certificate.
  static func load(certificatePath: String, keyPath: String) throws(AdminTLSError) -> LoadedPair {
    let stamps = FileStamps(certificatePath: certificatePath, keyPath: keyPath)
    let chain: [NIOSSLCertificate]
    do {
      chain = try NIOSSLCertificate.fromPEMFile(certificatePath)
    } catch {
      throw AdminTLSError(
        .certificate, path: certificatePath, reason: "cannot load a PEM certificate from it (\(error))")
    }
    guard !chain.isEmpty else {
      throw AdminTLSError(.certificate, path: certificatePath, reason: "holds no certificate")
    }
    let key: NIOSSLPrivateKey
    do {
      key = try NIOSSLPrivateKey(file: keyPath, format: .pem)
    } catch {
      throw AdminTLSError(.key, path: keyPath, reason: "cannot load a PEM private key from it (\(error))")
    }
    do {
      // Making a context checks that the key belongs to the certificate.
      _ = try NIOSSLContext(configuration: serverConfiguration(chain: chain, key: key))
    } catch {
      throw AdminTLSError(
        .key, path: keyPath, reason: "does not match the certificate in \(certificatePath) (\(error))")
    }
    return LoadedPair(chain: chain, key: key, stamps: stamps)
  }

  /// A server configuration that presents `chain` and `key`.
  static func serverConfiguration(chain: [NIOSSLCertificate], key: NIOSSLPrivateKey) -> TLSConfiguration {
    TLSConfiguration.makeServerConfiguration(
      certificateChain: chain.map { .certificate($0) },
      privateKey: .privateKey(key)
    )
  }
}

/// A certificate or key for the admin server that cannot be used.
public struct AdminTLSError: Error, Hashable, Sendable, CustomStringConvertible {
  /// Which of the two files is wrong.
  public enum File: Hashable, Sendable {
    /// The certificate file.
    case certificate
    /// The private key file (also when it does not belong to the certificate).
    case key
  }

  /// Which of the two files is wrong.
  public var file: File
  /// The file concerned.
  public var path: String
  /// What is wrong with it.
  public var reason: String

  /// Creates an error.
  public init(_ file: File, path: String, reason: String) {
    self.file = file
    self.path = path
    self.reason = reason
  }

  /// `/etc/switchyard/admin.pem: holds no certificate`
  public var description: String { "\(path): \(reason)" }
}
