import Foundation
import Hummingbird
import NIOCore
import SwitchyardDashboard

/// The admin server's request context: Hummingbird's basic one, plus the connection, so that an event
/// stream ends as soon as its browser goes.
public struct AdminRequestContext: RequestContext {
  /// Hummingbird's part.
  public var coreContext: CoreRequestContextStorage
  /// The connection the request came on.
  public let channel: any Channel

  /// Creates the context of one request.
  public init(source: ApplicationRequestContextSource) {
    coreContext = .init(source: source)
    channel = source.channel
  }
}

extension Dashboard {
  /// Adds the node's own endpoints (`/state/changes`, `/traffic`, `/state/dashboard`; no login, like
  /// `/state`) and the dashboard's (`/`, its files, `/api/cluster`, `/api/events`; behind the login when
  /// there is one) to `router`.
  func addRoutes(to router: Router<AdminRequestContext>) {
    router.get("/state/changes") { _, _ -> Response in
      Self.json(
        ChangesDocument(node: self.configuration.nodeID, changes: self.status.recentChanges.records), pretty: true)
    }
    router.get("/traffic") { _, _ -> Response in
      guard let traffic = await self.currentTraffic() else {
        return Self.text("HAProxy did not answer show stat\n", status: .serviceUnavailable)
      }
      return Self.json(traffic, pretty: true)
    }
    router.get("/state/dashboard") { _, _ -> Response in
      Self.json(await self.feed(), pretty: false)
    }
    for asset in DashboardPage.assets {
      let body = ByteBuffer(string: asset.body)
      router.get(RouterPath(asset.path)) { request, _ -> Response in
        if let refused = self.refusal(request) { return refused }
        return Response(
          status: .ok, headers: Self.headers(contentType: asset.contentType), body: .init(byteBuffer: body))
      }
    }
    router.get("/api/cluster") { request, _ -> Response in
      if let refused = self.refusal(request) { return refused }
      guard let data = await self.snapshot() else {
        return Self.text("the controller is stopping\n", status: .serviceUnavailable)
      }
      return Response(
        status: .ok, headers: Self.headers(contentType: "application/json"),
        body: .init(byteBuffer: ByteBuffer(data: data)))
    }
    router.get("/api/events") { request, context -> Response in
      if let refused = self.refusal(request) { return refused }
      return self.eventStream(closing: context.channel.closeFuture)
    }
  }

  /// `{"node":…,"changes":[…]}`, `/state/changes`.
  struct ChangesDocument: Encodable {
    var node: String
    var changes: [ChangeRecord]
  }

  /// The 401 a request without the login gets, or `nil` when it may pass.
  private func refusal(_ request: Request) -> Response? {
    guard let login = configuration.login, !login.admits(authorization: request.headers[.authorization]) else {
      return nil
    }
    var headers = Self.headers(contentType: "text/plain; charset=utf-8")
    headers[.wwwAuthenticate] = DashboardLogin.challenge
    return Response(
      status: .unauthorized, headers: headers, body: .init(byteBuffer: ByteBuffer(string: "login required\n")))
  }

  /// Server-sent events: `event: cluster` with the snapshot whenever it changed (at most every 500 ms),
  /// a comment every 10 s while nothing changes, until the browser goes or the controller stops.
  private func eventStream(closing: EventLoopFuture<Void>) -> Response {
    let subscriber = subscribe()
    closing.whenComplete { _ in self.unsubscribe(subscriber) }
    var headers = Self.headers(contentType: "text/event-stream")
    headers[HTTPFields.Element.Name("X-Accel-Buffering")!] = "no"
    return Response(
      status: .ok, headers: headers,
      body: ResponseBody { writer in
        let heartbeat = Task {
          while !Task.isCancelled {
            try? await Task.sleep(for: Self.heartbeat)
            subscriber.wake()
          }
        }
        defer {
          heartbeat.cancel()
          self.unsubscribe(subscriber)
        }
        try await writer.write(ByteBuffer(string: "retry: 2000\n\n"))
        var lastEvent: ContinuousClock.Instant?
        var lastWrite = ContinuousClock.now
        for await _ in subscriber.signals {
          if subscriber.hasPending {
            if let lastEvent, lastEvent.duration(to: .now) < Self.minimumInterval {
              try? await Task.sleep(until: lastEvent.advanced(by: Self.minimumInterval))
            }
            guard let data = subscriber.take() else { continue }
            var event = ByteBuffer()
            event.reserveCapacity(data.count + 32)
            event.writeString("event: cluster\ndata: ")
            event.writeBytes(data)
            event.writeString("\n\n")
            try await writer.write(event)
            lastEvent = .now
            lastWrite = .now
          } else if lastWrite.duration(to: .now) >= Self.heartbeat - .milliseconds(500) {
            try await writer.write(ByteBuffer(string: ": heartbeat\n\n"))
            lastWrite = .now
          }
        }
        try await writer.finish(nil)
      })
  }

  /// A comment goes out after this long without an event, so that proxies keep the stream open.
  static let heartbeat: Duration = .seconds(10)
  /// Snapshots go out at most this often to each browser.
  static let minimumInterval: Duration = .milliseconds(500)

  private static func headers(contentType: String) -> HTTPFields {
    var headers = HTTPFields()
    headers[.contentType] = contentType
    for (name, value) in DashboardPage.securityHeaders {
      if let field = HTTPFields.Element.Name(name) { headers[field] = value }
    }
    return headers
  }

  private static func json(_ value: some Encodable, pretty: Bool) -> Response {
    let encoder = JSONEncoder()
    encoder.outputFormatting =
      pretty ? [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes] : [.withoutEscapingSlashes]
    var headers = HTTPFields()
    headers[.contentType] = "application/json"
    guard let data = try? encoder.encode(value) else {
      return text("could not encode the answer\n", status: .internalServerError)
    }
    return Response(status: .ok, headers: headers, body: .init(byteBuffer: ByteBuffer(data: data)))
  }

  private static func text(_ body: String, status: HTTPResponse.Status) -> Response {
    var headers = HTTPFields()
    headers[.contentType] = "text/plain; charset=utf-8"
    return Response(status: status, headers: headers, body: .init(byteBuffer: ByteBuffer(string: body)))
  }
}
