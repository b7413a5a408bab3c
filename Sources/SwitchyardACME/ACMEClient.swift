import AsyncHTTPClient
import Crypto
import Foundation
import Logging
import NIOCore
import NIOHTTP1
import NIOSSL
import SwiftASN1
import X509

/// An ACME (RFC 8555) client for HTTP-01 over AsyncHTTPClient, for one account.
///
/// The CA's certificate is verified against the roots in a PEM file (never switched off); every request has a
/// hard timeout; a `badNonce` answer is retried with the fresh nonce it carries, up to six attempts in all. Call
/// ``shutdown()`` when done.
public actor ACMEClient {
  /// The directory URL, for example Pebble's `https://127.0.0.1:14000/dir`.
  public let directoryURL: String
  /// The account key, which signs every request.
  public let accountKey: P256.Signing.PrivateKey
  /// The account URL once ``newAccount(onlyReturnExisting:)`` has run (or given at creation).
  public private(set) var accountURL: String?
  /// The longest any one request may take.
  public let requestTimeout: Duration

  private let http: HTTPClient
  private let logger: Logger
  private var cachedDirectory: ACMEDirectory?
  private var nonces: [String] = []
  /// How many requests were sent again after a `badNonce` answer.
  public private(set) var badNonceRetries = 0

  /// Creates a client that trusts the certificates in `trustRootsFile` alone.
  ///
  /// - Throws: ``ACMEError`` with code ``ACMEError/Code/invalidInput`` when the file holds no certificate.
  public init(
    directoryURL: String,
    trustRootsFile: String,
    accountKey: P256.Signing.PrivateKey,
    accountURL: String? = nil,
    requestTimeout: Duration = .seconds(10),
    logger: Logger
  ) throws {
    let roots: [NIOSSLCertificate]
    do { roots = try NIOSSLCertificate.fromPEMFile(trustRootsFile) } catch {
      throw ACMEError(.invalidInput, "cannot read the CA roots in \(trustRootsFile): \(error)")
    }
    guard !roots.isEmpty else { throw ACMEError(.invalidInput, "\(trustRootsFile) holds no certificate") }
    var tls = TLSConfiguration.makeClientConfiguration()
    tls.trustRoots = .certificates(roots)
    var configuration = HTTPClient.Configuration(
      tlsConfiguration: tls, redirectConfiguration: .disallow, decompression: .disabled)
    configuration.timeout = .init(connect: .seconds(5), read: .seconds(10))
    // A refused connection or a failed TLS handshake is an answer; the coordinator owns retries and backoff.
    configuration.connectionPool.retryConnectionEstablishment = false
    self.http = HTTPClient(eventLoopGroup: HTTPClient.defaultEventLoopGroup, configuration: configuration)
    self.directoryURL = directoryURL
    self.accountKey = accountKey
    self.accountURL = accountURL
    self.requestTimeout = requestTimeout
    self.logger = logger
  }

  /// Closes the HTTP client's connections.
  public func shutdown() async {
    try? await http.shutdown()
  }

  // MARK: - Resources

  /// The directory, fetched once.
  public func directory() async throws -> ACMEDirectory {
    if let cachedDirectory { return cachedDirectory }
    let response = try await send(HTTPClientRequest(url: directoryURL))
    guard response.status == .ok else { throw Self.failure(response, "GET \(directoryURL)") }
    let directory: ACMEDirectory = try Self.decode(response.body, "the directory")
    cachedDirectory = directory
    return directory
  }

  /// A fresh nonce from `newNonce`.
  public func newNonce() async throws -> String {
    var request = HTTPClientRequest(url: try await directory().newNonce)
    request.method = .HEAD
    let response = try await send(request)
    guard let nonce = response.headers.first(name: "Replay-Nonce"), !nonce.isEmpty else {
      throw ACMEError(.badResponse, "newNonce answered \(response.status.code) without a Replay-Nonce")
    }
    return nonce
  }

  /// Creates the account (terms agreed), or with `onlyReturnExisting` finds the one this key already has;
  /// returns and remembers its URL.
  @discardableResult
  public func newAccount(onlyReturnExisting: Bool = false) async throws -> String {
    var payload: [String: Any] = ["termsOfServiceAgreed": true]
    if onlyReturnExisting { payload = ["onlyReturnExisting": true] }
    let url = try await directory().newAccount
    let response = try await post(
      url, payload: Array(try JSONSerialization.data(withJSONObject: payload)), signer: .jwk)
    guard response.status == .ok || response.status == .created, let location = response.headers.first(name: "Location")
    else { throw Self.failure(response, "newAccount") }
    accountURL = location
    return location
  }

  /// Places an order for `hosts`; returns it with its URL.
  public func newOrder(hosts: [String]) async throws -> (url: String, order: ACMEOrder) {
    let body = try JSONEncoder().encode(["identifiers": hosts.map(ACMEIdentifier.dns)])
    let response = try await post(try await directory().newOrder, payload: Array(body), signer: try kid())
    guard response.status == .created, let location = response.headers.first(name: "Location") else {
      throw Self.failure(response, "newOrder")
    }
    return (location, try Self.decode(response.body, "the order"))
  }

  /// Fetches an order (POST-as-GET); the Retry-After it came with, if any.
  public func order(_ url: String) async throws -> (order: ACMEOrder, retryAfter: Duration?) {
    let response = try await postAsGet(url)
    return (try Self.decode(response.body, "the order"), Self.retryAfter(response))
  }

  /// Fetches an authorization (POST-as-GET); the Retry-After it came with, if any.
  public func authorization(_ url: String) async throws -> (authorization: ACMEAuthorization, retryAfter: Duration?) {
    let response = try await postAsGet(url)
    return (try Self.decode(response.body, "the authorization"), Self.retryAfter(response))
  }

  /// Tells the CA the challenge can be validated now (POST `{}`).
  public func respond(to challengeURL: String) async throws {
    let response = try await post(challengeURL, payload: Array("{}".utf8), signer: try kid())
    guard response.status == .ok else { throw Self.failure(response, "responding to the challenge") }
  }

  /// Sends the CSR (DER) to the order's finalize URL; returns the order as the CA then shows it.
  public func finalize(_ order: ACMEOrder, csr: [UInt8]) async throws -> ACMEOrder {
    let body = try JSONEncoder().encode(["csr": Base64URL.encode(csr)])
    let response = try await post(order.finalize, payload: Array(body), signer: try kid())
    guard response.status == .ok else { throw Self.failure(response, "finalize") }
    return try Self.decode(response.body, "the finalized order")
  }

  /// Downloads the issued chain (PEM, leaf first).
  public func certificateChain(_ url: String) async throws -> String {
    let response = try await postAsGet(url)
    let text = String(decoding: response.body, as: UTF8.self)
    guard text.contains("-----BEGIN CERTIFICATE-----") else {
      throw ACMEError(.badResponse, "the certificate at \(url) is not PEM")
    }
    return text
  }

  /// Polls `url` until `done` says the object is finished, waiting as the server's Retry-After asks (between
  /// `minimumInterval` and 10 s), for at most `timeout`.
  public func poll<Object: Sendable>(
    _ url: String,
    timeout: Duration,
    minimumInterval: Duration = .milliseconds(200),
    fetch: (ACMEClient, String) async throws -> (Object, Duration?),
    done: (Object) -> Bool
  ) async throws -> Object {
    let deadline = ContinuousClock.now.advanced(by: timeout)
    while true {
      let (object, retryAfter) = try await fetch(self, url)
      if done(object) { return object }
      let wait = min(max(retryAfter ?? minimumInterval, minimumInterval), .seconds(10))
      guard ContinuousClock.now.advanced(by: wait) < deadline else {
        throw ACMEError(.timeout, "\(url) was not finished within \(timeout)")
      }
      try await Task.sleep(for: wait)
    }
  }

  // MARK: - Transport

  private func kid() throws -> JWS.Signer {
    guard let accountURL else { throw ACMEError(.invalidInput, "no ACME account yet: call newAccount first") }
    return .kid(accountURL)
  }

  private func postAsGet(_ url: String) async throws -> Response {
    let response = try await post(url, payload: nil, signer: try kid())
    guard response.status == .ok else { throw Self.failure(response, "POST-as-GET \(url)") }
    return response
  }

  /// How often one request is sent at most: `badNonce` is ACME's one answer that asks for a plain resend.
  static let maxAttempts = 6

  /// Signs and sends; a `badNonce` answer is sent again with a fresh nonce (at most ``maxAttempts`` times).
  private func post(_ url: String, payload: [UInt8]?, signer: JWS.Signer) async throws -> Response {
    var attempt = 0
    while true {
      attempt += 1
      let nonce: String
      if let kept = nonces.popLast() { nonce = kept } else { nonce = try await newNonce() }
      let jws = try JWS.sign(payload: payload, url: url, nonce: nonce, signer: signer, key: accountKey)
      var request = HTTPClientRequest(url: url)
      request.method = .POST
      request.headers.add(name: "Content-Type", value: "application/jose+json")
      request.body = .bytes(ByteBuffer(bytes: try JSONEncoder().encode(jws)))
      let response = try await send(request)
      if response.status.code >= 400, let problem = Self.problem(response), problem.isBadNonce,
        attempt < Self.maxAttempts
      {
        badNonceRetries += 1
        logger.debug("ACME badNonce; retrying", metadata: ["acme.url": "\(url)"])
        continue
      }
      return response
    }
  }

  struct Response {
    var status: HTTPResponseStatus
    var headers: HTTPHeaders
    var body: [UInt8]
  }

  private static let maxBody = 1 << 20

  private func send(_ request: HTTPClientRequest) async throws -> Response {
    let timeout = TimeAmount.nanoseconds(
      requestTimeout.components.seconds * 1_000_000_000 + requestTimeout.components.attoseconds / 1_000_000_000)
    let response: HTTPClientResponse
    let body: ByteBuffer
    do {
      response = try await http.execute(request, timeout: timeout, logger: logger)
      body = try await response.body.collect(upTo: Self.maxBody)
    } catch let error as HTTPClientError where error == .deadlineExceeded || error == .readTimeout {
      throw ACMEError(.timeout, "\(request.method) \(request.url) took longer than \(requestTimeout)")
    } catch {
      throw ACMEError(.transport, "\(request.method) \(request.url) failed: \(error)")
    }
    if let nonce = response.headers.first(name: "Replay-Nonce"), !nonce.isEmpty {
      nonces = [nonce]  // the newest is the one most likely still valid
    }
    return Response(status: response.status, headers: response.headers, body: Array(buffer: body))
  }

  private static func problem(_ response: Response) -> ACMEProblem? {
    guard var problem = try? JSONDecoder().decode(ACMEProblem.self, from: Data(response.body)) else { return nil }
    problem.status = Int(response.status.code)
    return problem
  }

  private static func failure(_ response: Response, _ what: String) -> ACMEError {
    if let problem = problem(response) {
      return ACMEError(.problem, "\(what) failed with HTTP \(response.status.code)", problem: problem)
    }
    return ACMEError(.badResponse, "\(what) answered HTTP \(response.status.code)")
  }

  private static func decode<T: Decodable>(_ body: [UInt8], _ what: String) throws -> T {
    do { return try JSONDecoder().decode(T.self, from: Data(body)) } catch {
      throw ACMEError(.badResponse, "cannot read \(what): \(error)")
    }
  }

  /// Retry-After as seconds (RFC 9110 also allows a date; then a second is assumed).
  static func retryAfter(_ response: Response) -> Duration? {
    guard let value = response.headers.first(name: "Retry-After") else { return nil }
    if let seconds = Int(value.trimmingCharacters(in: .whitespaces)), seconds >= 0 {
      return .seconds(min(seconds, 3600))
    }
    return .seconds(1)
  }
}

/// Certificate signing requests for ACME orders.
public enum ACMECSR {
  /// A DER CSR for `hosts` (the first also the common name) signed by `key`.
  public static func der(hosts: [String], key: P256.Signing.PrivateKey) throws -> [UInt8] {
    guard let first = hosts.first else { throw ACMEError(.invalidInput, "a CSR needs at least one host") }
    let names = SubjectAlternativeNames(hosts.map { GeneralName.dnsName($0) })
    let extensions = try Certificate.Extensions { names }
    let csr = try CertificateSigningRequest(
      version: .v1,
      subject: try DistinguishedName { CommonName(first) },
      privateKey: Certificate.PrivateKey(key),
      attributes: CertificateSigningRequest.Attributes([
        try CertificateSigningRequest.Attribute(ExtensionRequest(extensions: extensions))
      ]),
      signatureAlgorithm: .ecdsaWithSHA256
    )
    var serializer = DER.Serializer()
    try serializer.serialize(csr)
    return serializer.serializedBytes
  }
}
