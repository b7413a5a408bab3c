import EtcdClient
import Foundation
import HAProxyKit
import Logging
import NIOCore
import NIOPosix
import SwitchyardController
import SwitchyardModel
import SwitchyardTestSupport
import Synchronization
import Testing

// MARK: - Routes, service settings and what HAProxy makes of them

extension LBNode {
  /// `http://127.0.0.1:<listen port>`, without a path.
  var origin: String { "http://127.0.0.1:\(listenPort)" }

  /// One GET of `path` (with its query string) through the node on a new connection, with `host` as the
  /// `Host` header when given (sent as it is: any case, with or without a port).
  func request(_ path: String, host: String? = nil) async throws -> (status: Int, body: String) {
    try await HTTPLoadClient.measuredGet(origin + path, host: host)
  }

  /// The map file of the routes, which HAProxy loads.
  var routesMapPath: String { "\(stateDirectory)/routes.map" }

  /// The routes map as the running HAProxy holds it (`show map`).
  func routesInHAProxy() async throws -> [String: String] {
    let api = RuntimeAPI(socketPath: "\(stateDirectory)/admin.sock", logger: quietLogger)
    return Dictionary(try await api.showMap(routesMapPath).map { ($0.key, $0.value) }, uniquingKeysWith: { $1 })
  }

  /// `show stat`.
  func stats() async throws -> [StatRow] {
    try await RuntimeAPI(socketPath: "\(stateDirectory)/admin.sock", logger: quietLogger).stats()
  }

  /// The installed `haproxy.cfg`.
  func config() throws -> String {
    try String(contentsOfFile: "\(stateDirectory)/haproxy.cfg", encoding: .utf8)
  }

  /// The lines of section `header` (`backend svc_api`, `frontend tcp_cache`) of the installed config,
  /// trimmed; empty when there is no such section.
  func configSection(_ header: String) throws -> [String] {
    let lines = try config().split(separator: "\n", omittingEmptySubsequences: false).map(String.init)
    guard let start = lines.firstIndex(of: header) else { return [] }
    return Array(lines[(start + 1)...].prefix { !$0.isEmpty }.map { $0.trimmingCharacters(in: .whitespaces) })
  }

  /// HAProxy reloads so far, from the master (`show proc`).
  func reloadCount() async throws -> Int { try await showProc().reloads }

  /// Waits until the controller has applied etcd's `revision`.
  func waitApplied(_ revision: Int64, timeout: Duration = .seconds(10)) async throws {
    try await retrying(timeout: timeout, every: .milliseconds(20)) {
      let applied = try await state().appliedRevision
      guard applied >= revision else { throw TestSupportError("\(name) applied \(applied), waiting for \(revision)") }
    }
  }

  /// Waits until a GET of `path` with `host` is answered by the server named `server` (or, with `nil`,
  /// with `status`).
  func waitRouted(
    _ path: String, host: String? = nil, to server: String?, status: Int = 200, timeout: Duration = .seconds(10)
  ) async throws {
    try await retrying(timeout: timeout, every: .milliseconds(20)) {
      let (got, body) = try await request(path, host: host)
      let expected = server.map { "Hello from \($0)\n" }
      guard got == status, expected == nil || body == expected else {
        throw TestSupportError(
          "\(name): GET \(path) Host \(host ?? "-") answered \(got) \(body.debugDescription), expected \(status) \(server ?? "")"
        )
      }
    }
  }
}

extension LBNode {
  /// Waits until GETs of `path` with `host` reach exactly the servers `names` (by their greeting).
  func waitServing(_ names: Set<String>, path: String, host: String?, timeout: Duration = .seconds(10)) async throws {
    try await retrying(timeout: timeout, every: .milliseconds(20)) {
      var seen: Set<String> = []
      for _ in 0..<(names.count * 4 + 2) {
        let (status, body) = try await request(path, host: host)
        guard status == 200, let server = servedBy(body) else {
          throw TestSupportError("\(name): GET \(path) Host \(host ?? "-") answered \(status) \(body.debugDescription)")
        }
        seen.insert(server)
      }
      guard seen == names else {
        throw TestSupportError(
          "\(name): \(path) Host \(host ?? "-") reaches \(seen.sorted()), expected \(names.sorted())")
      }
    }
  }
}

/// The name of the test server that answered `body` (`Hello from <name>\n`), or `nil`.
func servedBy(_ body: String) -> String? {
  guard body.hasPrefix("Hello from "), body.hasSuffix("\n") else { return nil }
  return String(body.dropFirst("Hello from ".count).dropLast())
}

/// Runs `body` with one more LB node on `cluster`, started with `extraArguments` and ready, and stops it
/// however `body` ends.
func withExtraNode(
  _ cluster: EtcdCluster, name: String, extraArguments: [String], _ body: (LBNode) async throws -> Void
) async throws {
  let node = try LBNode(name: name, endpoints: cluster.endpoints, extraArguments: extraArguments)
  do {
    try node.start()
    try await node.waitReady()
    try await body(node)
  } catch {
    Issue.record("\(node.name) log:\n\(node.log())")
    await node.cleanup()
    throw error
  }
  await node.cleanup()
}

extension EtcdClient {
  /// Puts `json` as the value of route `name` (`/switchyard/routes/<name>`), valid or not.
  @discardableResult
  func putRoute(_ name: String, _ json: String) async throws -> Int64 {
    try await put(Route.root + name, value: json).header.revision
  }

  /// Deletes route `name`.
  @discardableResult
  func deleteRoute(_ name: String) async throws -> Int64 {
    try await delete(.key(Route.root + name)).header.revision
  }

  /// Puts `json` as the settings of `service` (`/switchyard/services/<service>`), valid or not.
  @discardableResult
  func putSettings(_ service: String, _ json: String) async throws -> Int64 {
    try await put(ServiceSettings.root + service, value: json).header.revision
  }
}

/// A TCP server on 127.0.0.1 that sends back every byte it receives: a stand-in for a database or cache
/// behind a `tcp` service. It speaks no HTTP, so an HTTP health check of it fails.
final class TCPEchoServer: Sendable {
  let port: Int
  private let channel: any Channel

  private init(port: Int, channel: any Channel) {
    self.port = port
    self.channel = channel
  }

  static func start() async throws -> TCPEchoServer {
    let port = try FreePort.allocate()
    let channel = try await ServerBootstrap(group: MultiThreadedEventLoopGroup.singleton)
      .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
      .childChannelInitializer { channel in
        channel.eventLoop.makeCompletedFuture { try channel.pipeline.syncOperations.addHandler(EchoHandler()) }
      }
      .bind(host: "127.0.0.1", port: port)
      .get()
    return TCPEchoServer(port: port, channel: channel)
  }

  func close() async { try? await channel.close() }

  private final class EchoHandler: ChannelInboundHandler, Sendable {
    typealias InboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
      context.writeAndFlush(data, promise: nil)
    }
  }
}

/// Connects to 127.0.0.1:`port`, sends `message`, and returns what comes back until as many bytes
/// arrived, the peer closed, or `timeout` passed.
func tcpRoundTrip(port: Int, message: String, timeout: Duration = .seconds(3)) async throws -> String {
  let channel = try await ClientBootstrap(group: MultiThreadedEventLoopGroup.singleton)
    .connectTimeout(.seconds(2))
    .connect(host: "127.0.0.1", port: port) { channel in
      channel.eventLoop.makeCompletedFuture {
        try NIOAsyncChannel<ByteBuffer, ByteBuffer>(wrappingChannelSynchronously: channel)
      }
    }
  return try await withThrowingTaskGroup(of: String?.self) { group in
    group.addTask {
      try await channel.executeThenClose { inbound, outbound in
        try await outbound.write(ByteBuffer(string: message))
        var received = ByteBuffer()
        for try await var chunk in inbound {
          received.writeBuffer(&chunk)
          if received.readableBytes >= message.utf8.count { break }
        }
        return String(buffer: received)
      }
    }
    group.addTask {
      try await Task.sleep(for: timeout)
      return nil
    }
    defer { group.cancelAll() }
    guard let answer = try await group.next() ?? nil else {
      throw TestSupportError("no answer from 127.0.0.1:\(port) within \(timeout)")
    }
    return answer
  }
}
