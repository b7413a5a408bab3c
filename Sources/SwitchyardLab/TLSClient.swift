import Crypto
import Foundation
import NIOCore
import NIOPosix
import NIOSSL
import NIOTLS
import Synchronization
import X509

/// The certificate a TLS server presented: what a test or the bench compares to know which one was served.
public struct PeerCertificate: Sendable, Hashable, CustomStringConvertible {
  /// The subject, as swift-certificates prints it (`CN=a.test`).
  public let subject: String
  /// The DNS names of the subject alternative name extension.
  public let dnsNames: [String]
  /// The serial number, lower-case hex.
  public let serialHex: String
  /// SHA-1 of the DER certificate, upper-case hex (what HAProxy's `show ssl cert` prints).
  public let sha1Fingerprint: String
  /// SHA-256 of the DER certificate, upper-case hex.
  public let sha256Fingerprint: String
  /// The end of validity.
  public let notAfter: Date

  /// `CN=a.test (a.test) sha1 EA0E…`.
  public var description: String { "\(subject) (\(dnsNames.joined(separator: ", "))) sha1 \(sha1Fingerprint)" }

  /// Describes a DER certificate.
  public init(der: [UInt8]) throws {
    let certificate = try Certificate(derEncoded: der)
    subject = certificate.subject.description
    dnsNames =
      (try? certificate.extensions.subjectAlternativeNames)??.compactMap { name in
        if case .dnsName(let text) = name { return text }
        return nil
      } ?? []
    serialHex = certificate.serialNumber.bytes.map { String(format: "%02x", $0) }.joined()
    sha1Fingerprint = Insecure.SHA1.hash(data: der).map { String(format: "%02X", $0) }.joined()
    sha256Fingerprint = SHA256.hash(data: der).map { String(format: "%02X", $0) }.joined()
    notAfter = certificate.notValidAfter
  }
}

/// A TLS client on loopback for tests and the bench: full handshakes (a new connection each, no session
/// resumption) that report the server's certificate, and one HTTP/1.1 GET over TLS or plain TCP that
/// reports status, headers and body without following redirects.
public enum TLSClient {
  /// An answer to ``get(host:port:path:hostHeader:serverName:trustRootsPEMFile:tls:timeout:)``.
  public struct Response: Sendable {
    /// The status code.
    public let status: Int
    /// The header fields in their order, names as sent.
    public let headers: [(name: String, value: String)]
    /// The body as text.
    public let body: String
    /// The server's certificate (nil over plain TCP).
    public let certificate: PeerCertificate?

    /// The first value of header `name` (any case).
    public func header(_ name: String) -> String? {
      headers.first { $0.name.lowercased() == name.lowercased() }?.value
    }
  }

  /// A handshake or request that failed.
  public struct Failure: Error, CustomStringConvertible {
    /// What went wrong.
    public let description: String
  }

  /// Makes a client context: verifying the chain against the PEM roots of `trustRootsPEMFile` (host names
  /// are not checked: the caller compares the certificate it gets), or verifying nothing when `nil`. No
  /// session cache: every connection is a full handshake.
  public static func context(trustRootsPEMFile: String?) throws -> NIOSSLContext {
    var configuration = TLSConfiguration.makeClientConfiguration()
    if let trustRootsPEMFile {
      configuration.trustRoots = .file(trustRootsPEMFile)
      configuration.certificateVerification = .noHostnameVerification
    } else {
      configuration.certificateVerification = .none
    }
    configuration.applicationProtocols = ["http/1.1"]
    return try NIOSSLContext(configuration: configuration)
  }

  /// One full TLS handshake with `host:port`, sending `serverName` as SNI (none when `nil`); returns the
  /// certificate the server presented and closes the connection.
  public static func handshake(
    host: String = "127.0.0.1", port: Int, serverName: String?, trustRootsPEMFile: String?,
    timeout: Duration = .seconds(5)
  ) async throws -> PeerCertificate {
    try await handshake(
      host: host, port: port, serverName: serverName, context: context(trustRootsPEMFile: trustRootsPEMFile),
      timeout: timeout)
  }

  /// ``handshake(host:port:serverName:trustRootsPEMFile:timeout:)`` with a context made once.
  public static func handshake(
    host: String = "127.0.0.1", port: Int, serverName: String?, context: NIOSSLContext,
    timeout: Duration = .seconds(5)
  ) async throws -> PeerCertificate {
    let exchange = try await Exchange.open(
      host: host, port: port, tls: (context, serverName), request: nil, timeout: timeout)
    return try await exchange.certificate()
  }

  /// `GET path` with `Host: hostHeader` (the address when `nil`) and `Connection: close`, over TLS with
  /// SNI `serverName` when `tls` is true, else plain; the answer read until the server closes.
  public static func get(
    host: String = "127.0.0.1", port: Int, path: String, hostHeader: String? = nil, serverName: String? = nil,
    trustRootsPEMFile: String? = nil, tls: Bool = true, timeout: Duration = .seconds(5)
  ) async throws -> Response {
    guard path.hasPrefix("/"), !path.contains(where: { $0 == "\r" || $0 == "\n" || $0 == " " }),
      hostHeader?.contains(where: { $0 == "\r" || $0 == "\n" }) != true
    else { throw Failure(description: "refusing a path or Host header that would break the request line") }
    let request =
      "GET \(path) HTTP/1.1\r\nHost: \(hostHeader ?? host)\r\nUser-Agent: switchyard-tls-client\r\n"
      + "Connection: close\r\n\r\n"
    let tlsPart = try tls ? (context(trustRootsPEMFile: trustRootsPEMFile), serverName) : nil
    let exchange = try await Exchange.open(host: host, port: port, tls: tlsPart, request: request, timeout: timeout)
    let certificate = tls ? try await exchange.certificate() : nil
    let raw = try await exchange.response()
    return try parse(raw, certificate: certificate)
  }

  static func parse(_ raw: [UInt8], certificate: PeerCertificate?) throws -> Response {
    let separator: [UInt8] = Array("\r\n\r\n".utf8)
    guard let end = raw.firstRange(of: separator) else {
      throw Failure(description: "no complete response head in \(raw.count) bytes")
    }
    let head = String(decoding: raw[..<end.lowerBound], as: UTF8.self).components(separatedBy: "\r\n")
    let statusWords = head[0].split(separator: " ")
    guard statusWords.count >= 2, let status = Int(statusWords[1]) else {
      throw Failure(description: "not an HTTP status line: \(head[0])")
    }
    let headers = head.dropFirst().compactMap { line -> (name: String, value: String)? in
      guard let colon = line.firstIndex(of: ":") else { return nil }
      return (String(line[..<colon]), line[line.index(after: colon)...].trimmingCharacters(in: .whitespaces))
    }
    var body = Array(raw[end.upperBound...])
    if headers.contains(where: { $0.name.lowercased() == "transfer-encoding" && $0.value.lowercased() == "chunked" }) {
      body = dechunked(body)
    }
    return Response(
      status: status, headers: headers, body: String(decoding: body, as: UTF8.self), certificate: certificate)
  }

  private static func dechunked(_ bytes: [UInt8]) -> [UInt8] {
    var out: [UInt8] = []
    var rest = bytes[...]
    while let lineEnd = rest.firstRange(of: Array("\r\n".utf8)) {
      let sizeText = String(decoding: rest[..<lineEnd.lowerBound], as: UTF8.self).split(separator: ";").first ?? ""
      guard let size = Int(sizeText, radix: 16), size > 0 else { break }
      let start = lineEnd.upperBound
      guard rest.endIndex >= start + size else { break }
      out += rest[start..<start + size]
      rest = rest[min(rest.endIndex, start + size + 2)...]
    }
    return out
  }
}

/// One connection: its handshake's outcome, and the bytes read until the server closes.
private final class Exchange: Sendable {
  let handshakeDone: EventLoopPromise<PeerCertificate?>
  let closed: EventLoopPromise<[UInt8]>
  let channel: any Channel

  private init(
    handshakeDone: EventLoopPromise<PeerCertificate?>, closed: EventLoopPromise<[UInt8]>, channel: any Channel
  ) {
    self.handshakeDone = handshakeDone
    self.closed = closed
    self.channel = channel
  }

  static func open(
    host: String, port: Int, tls: (NIOSSLContext, String?)?, request: String?, timeout: Duration
  ) async throws -> Exchange {
    let eventLoop = MultiThreadedEventLoopGroup.singleton.next()
    let handshake = eventLoop.makePromise(of: PeerCertificate?.self)
    let closed = eventLoop.makePromise(of: [UInt8].self)
    let amount = TimeAmount.nanoseconds(Int64(timeout / .nanoseconds(1)))
    let channel: any Channel
    do {
      channel = try await ClientBootstrap(group: eventLoop)
        .connectTimeout(amount)
        .channelInitializer { channel in
          channel.eventLoop.makeCompletedFuture {
            if let (context, serverName) = tls {
              let handler = try NIOSSLClientHandler(context: context, serverHostname: serverName)
              try channel.pipeline.syncOperations.addHandler(handler)
            }
            try channel.pipeline.syncOperations.addHandler(
              Collector(handshake: handshake, closed: closed, tls: tls != nil, request: request))
          }
        }
        .connect(host: host, port: port)
        .get()
    } catch {
      handshake.fail(error)
      closed.fail(error)
      throw TLSClient.Failure(description: "cannot connect to \(host):\(port): \(error)")
    }
    let timer = eventLoop.scheduleTask(in: amount) {
      let failure = TLSClient.Failure(description: "no complete exchange with \(host):\(port) within \(timeout)")
      handshake.fail(failure)
      closed.fail(failure)
      channel.close(promise: nil)
    }
    closed.futureResult.whenComplete { _ in timer.cancel() }
    return Exchange(handshakeDone: handshake, closed: closed, channel: channel)
  }

  /// The server's certificate; without a request, the connection is closed then.
  func certificate() async throws -> PeerCertificate {
    do {
      guard let certificate = try await handshakeDone.futureResult.get() else {
        throw TLSClient.Failure(description: "the server presented no certificate")
      }
      return certificate
    } catch {
      channel.close(promise: nil)
      throw error
    }
  }

  /// Every byte the server sent until it closed.
  func response() async throws -> [UInt8] { try await closed.futureResult.get() }
}

private final class Collector: ChannelInboundHandler, RemovableChannelHandler {
  typealias InboundIn = ByteBuffer

  private let handshake: EventLoopPromise<PeerCertificate?>
  private let closed: EventLoopPromise<[UInt8]>
  private let tls: Bool
  private let request: String?
  private var bytes: [UInt8] = []

  init(handshake: EventLoopPromise<PeerCertificate?>, closed: EventLoopPromise<[UInt8]>, tls: Bool, request: String?) {
    self.handshake = handshake
    self.closed = closed
    self.tls = tls
    self.request = request
  }

  func channelActive(context: ChannelHandlerContext) {
    if !tls {
      handshake.succeed(nil)
      send(context: context)
    }
    context.fireChannelActive()
  }

  func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
    if let event = event as? TLSUserEvent, case .handshakeCompleted = event {
      let channel = context.channel
      do {
        let handler = try context.pipeline.syncOperations.handler(type: NIOSSLClientHandler.self)
        handshake.succeed(try handler.peerCertificate.map { try PeerCertificate(der: try $0.toDERBytes()) })
      } catch {
        handshake.fail(error)
      }
      if request == nil {
        // Only the handshake was asked for: close once the certificate is read.
        channel.close(promise: nil)
      } else {
        send(context: context)
      }
    }
    context.fireUserInboundEventTriggered(event)
  }

  private func send(context: ChannelHandlerContext) {
    guard let request else { return }
    var buffer = context.channel.allocator.buffer(capacity: request.utf8.count)
    buffer.writeString(request)
    context.writeAndFlush(NIOAny(buffer), promise: nil)
  }

  func channelRead(context: ChannelHandlerContext, data: NIOAny) {
    var buffer = unwrapInboundIn(data)
    bytes += buffer.readBytes(length: buffer.readableBytes) ?? []
  }

  func channelInactive(context: ChannelHandlerContext) {
    handshake.fail(TLSClient.Failure(description: "the connection closed before the handshake completed"))
    closed.succeed(bytes)
    context.fireChannelInactive()
  }

  func errorCaught(context: ChannelHandlerContext, error: any Error) {
    handshake.fail(error)
    // A TLS close without close_notify still ends an HTTP/1.1 answer that the server closed.
    if let sslError = error as? NIOSSLError, case .uncleanShutdown = sslError {
      closed.succeed(bytes)
    } else {
      closed.fail(error)
    }
    context.close(promise: nil)
  }
}

/// Full TLS handshakes by `concurrency` tasks for a while, each on a new connection, counting what
/// happened: successes, failures by reason, and the certificates (by SHA-1 fingerprint) that were served.
public struct TLSHandshakeLoad: Sendable {
  /// What a run saw.
  public struct Result: Sendable, CustomStringConvertible {
    /// Handshakes that completed with a certificate.
    public var succeeded = 0
    /// Failed handshakes by reason.
    public var failures: [String: Int] = [:]
    /// Handshakes per certificate, by SHA-1 fingerprint.
    public var fingerprints: [String: Int] = [:]
    /// How long the run took.
    public var elapsed: Duration = .zero

    /// All failed handshakes.
    public var failed: Int { failures.values.reduce(0, +) }
    /// Completed handshakes per second.
    public var perSecond: Double {
      let seconds = Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18
      return seconds > 0 ? Double(succeeded) / seconds : 0
    }

    /// `1234 handshakes (456.7/s), 0 failed, 2 certificates`.
    public var description: String {
      "\(succeeded) handshakes (\(String(format: "%.1f", perSecond))/s), \(failed) failed"
        + (failures.isEmpty ? "" : " \(failures)") + ", \(fingerprints.count) certificates"
    }
  }

  /// Where to connect.
  public let host: String
  /// The TLS port.
  public let port: Int
  /// The SNI name sent (none when `nil`).
  public let serverName: String?
  /// The roots to verify with (nothing verified when `nil`).
  public let trustRootsPEMFile: String?
  /// Tasks handshaking at once.
  public let concurrency: Int

  /// Describes a load.
  public init(
    host: String = "127.0.0.1", port: Int, serverName: String?, trustRootsPEMFile: String?, concurrency: Int = 8
  ) {
    self.host = host
    self.port = port
    self.serverName = serverName
    self.trustRootsPEMFile = trustRootsPEMFile
    self.concurrency = concurrency
  }

  /// Handshakes for `duration`, then returns the counts.
  public func run(for duration: Duration) async throws -> Result {
    let context = try TLSClient.context(trustRootsPEMFile: trustRootsPEMFile)
    let clock = ContinuousClock()
    let start = clock.now
    let deadline = start + duration
    let (host, port, serverName) = (host, port, serverName)
    var total = Result()
    try await withThrowingTaskGroup(of: Result.self) { group in
      for _ in 0..<max(1, concurrency) {
        group.addTask {
          var result = Result()
          while clock.now < deadline {
            do {
              let certificate = try await TLSClient.handshake(
                host: host, port: port, serverName: serverName, context: context)
              result.succeeded += 1
              result.fingerprints[certificate.sha1Fingerprint, default: 0] += 1
            } catch {
              result.failures["\(error)", default: 0] += 1
            }
          }
          return result
        }
      }
      for try await part in group {
        total.succeeded += part.succeeded
        total.failures.merge(part.failures, uniquingKeysWith: +)
        total.fingerprints.merge(part.fingerprints, uniquingKeysWith: +)
      }
    }
    total.elapsed = clock.now - start
    return total
  }
}
