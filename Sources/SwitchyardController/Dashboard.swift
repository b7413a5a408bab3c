import AsyncHTTPClient
import EtcdClient
import Foundation
import Logging
import NIOCore
import NIOSSL
import ServiceLifecycle
import SwitchyardDashboard
import SwitchyardModel
import Synchronization

/// How a controller serves the dashboard.
public struct DashboardConfiguration: Sendable {
  /// This node's id.
  public var nodeID: String
  /// This node's admin URL as others reach it (`--admin-url`); shown while the node has no record in etcd.
  public var adminURL: String?
  /// The login the dashboard's routes ask for (`--dashboard-auth`); `nil` for none.
  public var login: DashboardLogin?
  /// The PEM file of the CA that signs the other nodes' admin certificates, for `https` admin URLs
  /// (`--admin-cacert`); `nil` trusts the system's roots.
  public var adminCACertificate: String?
  /// HAProxy's admin socket, for `show stat`.
  public var adminSocketPath: String
  /// How often the aggregator asks etcd and every node while someone watches.
  public var tick: Duration = .seconds(1)
  /// How long a node may take to answer before it is shown as not answering.
  public var nodeTimeout: Duration = .milliseconds(900)
  /// How long listing the nodes in etcd may take before the last listing stands in.
  public var etcdTimeout: Duration = .milliseconds(500)

  /// A configuration for node `nodeID`, whose HAProxy answers on `adminSocketPath`.
  public init(
    nodeID: String, adminURL: String? = nil, login: DashboardLogin? = nil, adminCACertificate: String? = nil,
    adminSocketPath: String
  ) {
    self.nodeID = nodeID
    self.adminURL = adminURL
    self.login = login
    self.adminCACertificate = adminCACertificate
    self.adminSocketPath = adminSocketPath
  }
}

/// The live dashboard of one controller: what this node tells others (``feed()``), and, while at least one
/// browser listens (or for one `GET /api/cluster`), the aggregator that asks etcd for the nodes and every
/// node for its feed once a tick and merges them (``ClusterMemory``) into the snapshot it sends.
///
/// Nothing runs while nobody watches: the aggregator starts with the first subscriber and stops with the
/// last; HAProxy's `show stat` is asked only when a feed is (``TrafficCache``). A node that does not answer
/// within ``DashboardConfiguration/nodeTimeout`` is shown as not answering in that tick. The browser talks
/// only to this controller.
///
/// Run it as a `Service` after the admin server in a service group: on graceful shutdown it ends every
/// event stream (so the admin server can stop) and shuts its HTTP client down.
public final class Dashboard: Service, Sendable {
  /// What one browser connection waits on: the newest snapshot not sent yet, and a wake-up.
  final class Subscriber: Sendable {
    private let pending = Mutex<Data?>(nil)
    let signals: AsyncStream<Void>
    private let continuation: AsyncStream<Void>.Continuation

    init() {
      (signals, continuation) = AsyncStream.makeStream(bufferingPolicy: .bufferingNewest(1))
    }

    func offer(_ data: Data) {
      pending.withLock { $0 = data }
      continuation.yield()
    }

    func take() -> Data? { pending.withLock { $0.take() } }
    var hasPending: Bool { pending.withLock { $0 != nil } }
    func wake() { continuation.yield() }
    func finish() { continuation.finish() }
  }

  private struct State {
    var subscribers: [ObjectIdentifier: Subscriber] = [:]
    var loop: Task<Void, Never>?
    var latest: Data?
    var closed = false
    var http: HTTPClient?
  }

  let configuration: DashboardConfiguration
  let status: ControllerStatus
  let traffic: TrafficCache
  private let etcd: EtcdClient
  private let logger: Logger
  private let state = Mutex(State())
  private let memory: Mutex<ClusterMemory>

  /// A dashboard for the node whose status is `status`, listing nodes through `client`.
  public init(configuration: DashboardConfiguration, client: EtcdClient, status: ControllerStatus, logger: Logger) {
    self.configuration = configuration
    self.status = status
    etcd = client
    self.logger = logger
    traffic = TrafficCache(adminSocketPath: configuration.adminSocketPath, logger: logger)
    memory = Mutex(ClusterMemory(selfID: configuration.nodeID, selfAdminURL: configuration.adminURL))
  }

  /// Checks the CA file, so that a bad `--admin-cacert` fails at start.
  public static func checkCACertificate(_ path: String) throws {
    _ = try NIOSSLCertificate.fromPEMFile(path)
  }

  /// Holds the HTTP client for the other nodes until graceful shutdown; then ends every event stream.
  public func run() async throws {
    var tls = TLSConfiguration.makeClientConfiguration()
    if let ca = configuration.adminCACertificate { tls.trustRoots = .file(ca) }
    var http = HTTPClient.Configuration(
      tlsConfiguration: tls, redirectConfiguration: .disallow,
      timeout: .init(connect: .milliseconds(900), read: .milliseconds(900)), decompression: .disabled)
    http.connectionPool.retryConnectionEstablishment = false
    let client = HTTPClient(eventLoopGroup: HTTPClient.defaultEventLoopGroup, configuration: http)
    state.withLock { $0.http = client }
    try? await gracefulShutdown()
    let subscribers = state.withLock { state in
      state.closed = true
      state.http = nil
      state.loop?.cancel()
      state.loop = nil
      return Array(state.subscribers.values)
    }
    for subscriber in subscribers { subscriber.finish() }
    try? await client.shutdown()
  }

  // MARK: - What this node tells others

  /// This node's `/state`, recent changes and traffic.
  public func feed() async -> NodeFeed {
    NodeFeed(state: status.snapshot(), changes: status.recentChanges.records, traffic: await traffic.current())
  }

  /// This node's traffic (`/traffic`); `nil` when HAProxy does not answer.
  public func currentTraffic() async -> NodeTraffic? { await traffic.current() }

  // MARK: - Subscribers

  /// A new subscriber, offered the latest snapshot at once when there is one; starts the aggregator.
  func subscribe() -> Subscriber {
    let subscriber = Subscriber()
    state.withLock { state in
      guard !state.closed else {
        subscriber.finish()
        return
      }
      state.subscribers[ObjectIdentifier(subscriber)] = subscriber
      if let latest = state.latest { subscriber.offer(latest) }
      if state.loop == nil { state.loop = Task { await self.aggregate() } }
    }
    return subscriber
  }

  /// Forgets `subscriber` (again: it does no harm); the aggregator stops with the last one.
  func unsubscribe(_ subscriber: Subscriber) {
    subscriber.finish()
    state.withLock { state in
      state.subscribers[ObjectIdentifier(subscriber)] = nil
      if state.subscribers.isEmpty {
        state.loop?.cancel()
        state.loop = nil
        state.latest = nil
      }
    }
  }

  /// How many browsers (and one-shot requests) are listening.
  public var subscriberCount: Int { state.withLock { $0.subscribers.count } }

  /// One snapshot: the latest when the aggregator runs, else the first of a short run; `nil` when the
  /// dashboard is stopping.
  func snapshot() async -> Data? {
    let subscriber = subscribe()
    defer { unsubscribe(subscriber) }
    for await _ in subscriber.signals {
      if let data = subscriber.take() { return data }
    }
    return nil
  }

  // MARK: - The aggregator

  private func aggregate() async {
    let clock = ContinuousClock()
    var next = clock.now
    while !Task.isCancelled {
      let data = await tick()
      guard !Task.isCancelled else { return }
      let subscribers = state.withLock { state -> [Subscriber] in
        guard data != state.latest else { return [] }
        state.latest = data
        return Array(state.subscribers.values)
      }
      for subscriber in subscribers { subscriber.offer(data) }
      next = max(next.advanced(by: configuration.tick), clock.now)
      try? await Task.sleep(until: next, clock: clock)
    }
  }

  /// Lists the nodes, asks each for its feed, and merges them.
  private func tick() async -> Data {
    let listing = await listNodes()
    let targets = memory.withLock { memory in
      memory.observe(listing, now: RecentChanges.now)
      return memory.targets
    }
    var answers: [String: ClusterMemory.Answer] = [:]
    await withTaskGroup(of: (String, ClusterMemory.Answer).self) { group in
      group.addTask { (self.configuration.nodeID, .feed(await self.feed())) }
      for target in targets {
        group.addTask { (target.node, await self.ask(target)) }
      }
      for await (node, answer) in group { answers[node] = answer }
    }
    let view = memory.withLock { $0.view(feeds: answers, now: RecentChanges.now) }
    let encoder = JSONEncoder()
    // Sorted keys: the same view gives the same bytes, so that an unchanged view is not sent again.
    encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
    do {
      return try encoder.encode(view)
    } catch {
      logger.error("The dashboard's snapshot could not be encoded", metadata: ["error": "\(error)"])
      return Data("{}".utf8)
    }
  }

  private func listNodes() async -> ClusterMemory.Listing {
    let timeout = configuration.etcdTimeout
    let listing = await Self.within(timeout) { [etcd] () -> ClusterMemory.Listing in
      do {
        let result = try await etcd.get(.prefix(NodeRecord.root))
        return .read(
          revision: result.header.revision,
          entries: result.kvs.map { ClusterMemory.Entry(key: $0.key, value: $0.value) })
      } catch {
        return .failed("\(error)")
      }
    }
    return listing ?? .failed("no answer within \(timeout)")
  }

  /// Asks one node for its feed (`/state/dashboard`; `/state` alone from a node that predates it).
  private func ask(_ target: ClusterMemory.Target) async -> ClusterMemory.Answer {
    guard let http = state.withLock({ $0.http }) else { return .failed("the dashboard is stopping") }
    let timeout = configuration.nodeTimeout
    let answer = await Self.within(timeout) { () -> ClusterMemory.Answer in
      do {
        let (code, body) = try await Self.get(http, target.adminURL + "/state/dashboard", timeout: timeout)
        if code == 200 { return .feed(try JSONDecoder().decode(NodeFeed.self, from: body)) }
        guard code == 404 else { return .failed("\(target.adminURL)/state/dashboard answered \(code)") }
        let (stateCode, stateBody) = try await Self.get(http, target.adminURL + "/state", timeout: timeout)
        guard stateCode == 200 else { return .failed("\(target.adminURL)/state answered \(stateCode)") }
        return .feed(
          NodeFeed(state: try JSONDecoder().decode(NodeSnapshot.self, from: stateBody), changes: [], traffic: nil))
      } catch let error as DecodingError {
        return .failed("its answer is not a node's feed (\(error))")
      } catch {
        return .failed(Self.describe(error))
      }
    }
    return answer ?? .failed("no answer within \(timeout)")
  }

  private static func get(_ http: HTTPClient, _ url: String, timeout: Duration) async throws -> (Int, Data) {
    var request = HTTPClientRequest(url: url)
    request.headers.add(name: "User-Agent", value: "switchyard-dashboard")
    let response = try await http.execute(request, timeout: TimeAmount(timeout))
    let body = try await response.body.collect(upTo: 64 * 1024 * 1024)
    return (Int(response.status.code), Data(buffer: body))
  }

  /// A short description of why a node did not answer.
  static func describe(_ error: any Error) -> String {
    let text = "\(error)"
    if text.contains("Connection refused") { return "connection refused" }
    if text.contains("CERTIFICATE_VERIFY_FAILED") {
      return "its TLS certificate is not signed by a CA the dashboard trusts (--admin-cacert): \(text)"
    }
    if text.contains("connectTimeout") || text.contains("deadlineExceeded") || text.contains("readTimeout") {
      return "no answer in time"
    }
    return text
  }

  /// The value of `operation`, or `nil` when it takes longer than `timeout` (it is cancelled then, and its
  /// result ignored). Unlike a task group, returns at the deadline even when the operation ignores its
  /// cancellation.
  static func within<T: Sendable>(_ timeout: Duration, _ operation: @escaping @Sendable () async -> T) async -> T? {
    let waiting = Waiting<T?>()
    return await withCheckedContinuation { continuation in
      waiting.set(continuation)
      let work = Task { waiting.resume(returning: await operation()) }
      Task {
        try? await Task.sleep(for: timeout)
        if waiting.resume(returning: nil) { work.cancel() }
      }
    }
  }
}

/// A continuation resumed once, by whichever of several tasks comes first.
private final class Waiting<T: Sendable>: Sendable {
  private let continuation = Mutex<CheckedContinuation<T, Never>?>(nil)

  func set(_ continuation: CheckedContinuation<T, Never>) {
    self.continuation.withLock { $0 = continuation }
  }

  /// Resumes the continuation with `value` unless it was resumed before; returns whether it did.
  @discardableResult
  func resume(returning value: T) -> Bool {
    guard let continuation = continuation.withLock({ $0.take() }) else { return false }
    continuation.resume(returning: value)
    return true
  }
}
