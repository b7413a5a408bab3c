import AsyncHTTPClient
import Foundation
import NIOCore
import NIOHTTP1

/// An error answer from a WebDriver server: the W3C error code (`no such element`, `javascript error`,
/// `timeout`, …) and its message, with the command that got it.
public struct WebDriverError: Error, Sendable, CustomStringConvertible {
  /// `POST /session/…/execute/sync` and the like.
  public var command: String
  /// The W3C error code, or `http <status>` when the answer was not a WebDriver error.
  public var error: String
  /// The server's message.
  public var message: String

  public var description: String { "WebDriver \(command): \(error): \(message)" }
}

/// The W3C WebDriver wire protocol over HTTP, to a WebDriver server on loopback (chromedriver): one JSON
/// command, one JSON answer whose `value` is the result or an error.
///
/// Requests go through AsyncHTTPClient's shared client, each with its own deadline; a command that the
/// server does not answer in time fails instead of hanging the test.
struct WebDriverClient: Sendable {
  /// `http://127.0.0.1:<port>`, no trailing slash.
  let baseURL: String

  /// The largest answer read: a full-page screenshot of a long page is a few MB of base64.
  static let maximumAnswerSize = 256 * 1024 * 1024

  /// Sends `method path` with `body` as JSON and returns the answer's `value`.
  ///
  /// - Throws: ``WebDriverError`` when the server answers with an error; AsyncHTTPClient's error when
  ///   there is no answer within `timeout`.
  func send(
    _ method: HTTPMethod,
    _ path: String,
    _ body: WebDriverValue? = nil,
    timeout: Duration = .seconds(30)
  ) async throws -> WebDriverValue {
    var request = HTTPClientRequest(url: baseURL + path)
    request.method = method
    request.headers.add(name: "Accept", value: "application/json")
    if let body {
      request.headers.add(name: "Content-Type", value: "application/json; charset=utf-8")
      request.body = .bytes(ByteBuffer(bytes: try JSONEncoder().encode(body)))
    } else if method == .POST {
      request.headers.add(name: "Content-Type", value: "application/json; charset=utf-8")
      request.body = .bytes(ByteBuffer(string: "{}"))
    }
    let command = "\(method.rawValue) \(path)"
    let response = try await HTTPClient.shared.execute(request, timeout: TimeAmount(timeout))
    let bytes = try await response.body.collect(upTo: Self.maximumAnswerSize)
    let answer = try? JSONDecoder().decode(WebDriverValue.self, from: Data(bytes.readableBytesView))
    let value = answer?["value"] ?? .null
    guard response.status == .ok else {
      throw WebDriverError(
        command: command,
        error: value["error"].string ?? "http \(response.status.code)",
        message: value["message"].string ?? String(buffer: bytes).prefix(500).description
      )
    }
    guard answer != nil else {
      throw WebDriverError(
        command: command, error: "invalid answer", message: String(buffer: bytes).prefix(500).description)
    }
    return value
  }
}
