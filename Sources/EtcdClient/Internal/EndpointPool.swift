import AddressText
import GRPCCore
import GRPCNIOTransportHTTP2
import Logging
import NIOCore
import NIOPosix
import Synchronization

#if canImport(Glibc)
  import Glibc
#endif

typealias Transport = HTTP2ClientTransport.Posix

/// One gRPC connection to one etcd member, with a typed client for each service.
struct MemberConnection: Sendable {
  let index: Int
  let endpoint: EtcdEndpoint
  let grpc: GRPCClient<Transport>
  /// Runs calls on the event loop of this member's connection (see ``EventLoopTaskExecutor``).
  let executor: EventLoopTaskExecutor

  var kv: Etcdserverpb_KV.Client<Transport> { .init(wrapping: grpc) }
  var watch: Etcdserverpb_Watch.Client<Transport> { .init(wrapping: grpc) }
  var lease: Etcdserverpb_Lease.Client<Transport> { .init(wrapping: grpc) }
  var cluster: Etcdserverpb_Cluster.Client<Transport> { .init(wrapping: grpc) }
  var maintenance: Etcdserverpb_Maintenance.Client<Transport> { .init(wrapping: grpc) }
  var auth: Etcdserverpb_Auth.Client<Transport> { .init(wrapping: grpc) }
}

/// The connections to every configured member and which one calls should prefer.
///
/// Each member gets its own gRPC client so that the client, not a load balancer, decides where a
/// call or stream goes: a failed member is skipped until others have been tried, watches resume on
/// a healthy member, and every error can name the member it came from.
///
/// The first preference is drawn at random, as a balancer would, so that the many clients of one
/// cluster (controllers, backends) spread over its members instead of all hanging on the first
/// one when it fails. After a failure the preference moves to the next member that has not failed
/// recently, so a member that answers wins over one that just hung.
final class EndpointPool: Sendable {
  /// The current connection of each member, by index; replaced when the TLS files change.
  private let connections: Mutex<[MemberConnection]>
  private let configuration: EtcdConfiguration
  /// gRPC clients made after start-up, for ``run()`` to run.
  private let newClients: AsyncStream<GRPCClient<Transport>>
  private let newClientsContinuation: AsyncStream<GRPCClient<Transport>>.Continuation
  private let shutDown = Atomic<Bool>(false)
  private var isShutDown: Bool {
    shutDown.load(ordering: .acquiring)
  }
  private let state: Mutex<State>
  /// The current TCP connection of each member, by index, for keepalive PINGs.
  private let channels: ChannelRegistry
  private let clock = ContinuousClock()
  /// How long a failed member is passed over when another one is available.
  static let failurePenalty: Duration = .seconds(30)

  private struct State {
    var preferred: Int
    /// Members that answered a call since they last failed.
    var healthy: Set<Int> = []
    /// When each member last failed.
    var failedAt: [Int: ContinuousClock.Instant] = [:]
  }

  convenience init(configuration: EtcdConfiguration) throws(EtcdError) {
    var generator = SystemRandomNumberGenerator()
    try self.init(configuration: configuration, using: &generator)
  }

  /// Creates the connections (they connect when ``run()`` starts); the first preferred member is
  /// drawn from `generator`.
  init(configuration: EtcdConfiguration, using generator: inout some RandomNumberGenerator) throws(EtcdError) {
    var members: [MemberConnection] = []
    let channels = ChannelRegistry()
    self.channels = channels
    self.configuration = configuration
    let group = MultiThreadedEventLoopGroup.singleton
    for (index, endpoint) in configuration.endpoints.enumerated() {
      // Each member's connections live on one event loop, known in advance, so that its calls can
      // run on that loop too.
      let executor = EventLoopTaskExecutor(eventLoop: group.next())
      members.append(
        try Self.connection(index: index, endpoint: endpoint, executor: executor, configuration, channels)
      )
    }
    self.connections = Mutex(members)
    self.state = Mutex(State(preferred: Int.random(in: 0..<members.count, using: &generator)))
    (self.newClients, self.newClientsContinuation) = AsyncStream.makeStream()
  }

  private static func connection(
    index: Int,
    endpoint: EtcdEndpoint,
    executor: EventLoopTaskExecutor,
    _ configuration: EtcdConfiguration,
    _ channels: ChannelRegistry
  ) throws(EtcdError) -> MemberConnection {
    let transport: Transport
    do {
      transport = try Transport(
        target: Self.target(for: endpoint),
        transportSecurity: try Self.security(for: endpoint, configuration: configuration),
        config: Self.transportConfig(configuration: configuration) { channel in
          channels.set(channel, for: index)
        },
        eventLoopGroup: executor.eventLoop
      )
    } catch let error as EtcdError {
      throw error
    } catch {
      throw EtcdError(
        code: .invalidArgument,
        message: "cannot set up a connection: \(error)",
        endpoint: endpoint
      )
    }
    return MemberConnection(
      index: index, endpoint: endpoint, grpc: GRPCClient(transport: transport), executor: executor)
  }

  /// Runs every member's connection until ``shutdown()``, and those that a renewed certificate brings.
  func run() async throws {
    try await withThrowingDiscardingTaskGroup { group in
      for member in members {
        group.addTask { try await member.grpc.runConnections() }
      }
      let files = Self.certificateFiles(configuration)
      let watcher = files.isEmpty ? nil : Task { await self.reloadOnChange(of: files) }
      for await client in newClients {
        group.addTask { try await client.runConnections() }
      }
      watcher?.cancel()
    }
  }

  func shutdown() {
    let current = connections.withLock { connections in
      shutDown.store(true, ordering: .releasing)
      return connections
    }
    newClientsContinuation.finish()
    for member in current { member.grpc.beginGracefulShutdown() }
  }

  // MARK: - Renewed certificates

  /// The TLS files whose change means new connections.
  private static func certificateFiles(_ configuration: EtcdConfiguration) -> [String] {
    guard let tls = configuration.tls else { return [] }
    return [tls.caCertificatePath, tls.clientCertificatePath, tls.clientKeyPath].compactMap { $0 }
  }

  /// What identifies a file's content without reading it: inode, size and modification time (a renewal
  /// writes new files and renames them into place).
  private static func stamp(_ files: [String]) -> [String] {
    files.map { path in
      var info = stat()
      guard stat(path, &info) == 0 else { return "\(path): missing" }
      return "\(info.st_ino) \(info.st_size) \(info.st_mtim.tv_sec).\(info.st_mtim.tv_nsec)"
    }
  }

  /// Every `reloadInterval`, compares the TLS files with what the connections were made from; when they
  /// changed (and can still be loaded), replaces every member's gRPC client. Calls already running and
  /// open streams finish on the old client, which then closes; new calls and streams get the new one.
  private func reloadOnChange(of files: [String]) async {
    let interval = configuration.tls?.reloadInterval ?? .seconds(60)
    var loaded = Self.stamp(files)
    var previous = loaded
    while !Task.isCancelled {
      try? await Task.sleep(for: interval)
      let now = Self.stamp(files)
      defer { previous = now }
      // Changed, and the same as one interval ago: a renewal renames the key and the certificate into
      // place one after the other, and a pair read between the two would not match.
      guard now != loaded, now == previous, !Task.isCancelled else { continue }
      do {
        try replaceClients()
        loaded = now
      } catch {
        // A file that cannot be loaded: keep the connections there are, and look again.
        continue
      }
    }
  }

  private func replaceClients() throws(EtcdError) {
    let current = members
    var fresh: [MemberConnection] = []
    for member in current {
      fresh.append(
        try Self.connection(
          index: member.index, endpoint: member.endpoint, executor: member.executor, configuration, channels)
      )
    }
    let replaced = connections.withLock { connections -> Bool in
      guard !isShutDown else { return false }
      connections = fresh
      return true
    }
    guard replaced else { return }
    for member in fresh { newClientsContinuation.yield(member.grpc) }
    for member in current { member.grpc.beginGracefulShutdown() }
  }

  /// Every member's current connection, by index.
  var members: [MemberConnection] { connections.withLock { $0 } }

  /// The member calls should go to now.
  func preferred() -> MemberConnection {
    members[state.withLock { $0.preferred }]
  }

  func isKnownHealthy(_ member: MemberConnection) -> Bool {
    state.withLock { $0.healthy.contains(member.index) }
  }

  func markSucceeded(_ member: MemberConnection) {
    state.withLock { state in
      state.healthy.insert(member.index)
      state.failedAt[member.index] = nil
    }
  }

  /// Records a failure and, if this member was preferred, moves the preference to the next member
  /// that has not failed within ``failurePenalty`` (or simply the next one if all have).
  func markFailed(_ member: MemberConnection) {
    let now = clock.now
    state.withLock { state in
      state.healthy.remove(member.index)
      state.failedAt[member.index] = now
      guard state.preferred == member.index else { return }
      let count = members.count
      let fresh = (1..<count).map { (member.index + $0) % count }.first { candidate in
        guard let failed = state.failedAt[candidate] else { return true }
        return failed.duration(to: now) > Self.failurePenalty
      }
      state.preferred = fresh ?? (member.index + 1) % count
    }
  }

  private static func target(for endpoint: EtcdEndpoint) -> any ResolvableTarget {
    let host = endpoint.host
    if IPLiteral.isIPv4(host) {
      return .ipv4(address: host, port: endpoint.port)
    } else if host.contains(":") {
      return .ipv6(address: host, port: endpoint.port)
    }
    return .dns(host: host, port: endpoint.port)
  }

  private static func security(
    for endpoint: EtcdEndpoint,
    configuration: EtcdConfiguration
  ) throws -> HTTP2ClientTransport.Posix.TransportSecurity {
    guard configuration.tls != nil || endpoint.usesTLS else { return .plaintext }
    let settings = configuration.tls ?? EtcdConfiguration.TLS()
    return .tls { tls in
      if let ca = settings.caCertificatePath {
        tls.trustRoots = .certificates([.file(path: ca, format: .pem)])
      }
      if let cert = settings.clientCertificatePath, let key = settings.clientKeyPath {
        tls.certificateChain = [.file(path: cert, format: .pem)]
        tls.privateKey = .file(path: key, format: .pem)
      }
    }
  }

  /// Sends an HTTP/2 PING on `member`'s connection and waits for its ACK.
  ///
  /// Returns false when no ACK came within `timeout` (the member hangs, or the network to it does)
  /// or the connection closed meanwhile; true when it answered or when there is no connection to
  /// ask (a stream that is open has one).
  func ping(_ member: MemberConnection, timeout: Duration) async -> Bool {
    guard let channel = channels.channel(for: member.index) else { return true }
    do {
      try await PingAckHandler.ping(on: channel, timeout: TimeAmount(timeout)).get()
      return true
    } catch {
      return false
    }
  }

  /// How long one TCP connection attempt may take: just past the kernel's first SYN resend (1 s), or half
  /// the dial timeout when that is longer, and never more than the dial timeout.
  static func connectAttemptLimit(dialTimeout: Duration) -> Duration {
    min(dialTimeout, max(.milliseconds(1_100), dialTimeout / 2))
  }

  private static func transportConfig(
    configuration: EtcdConfiguration,
    onConnection: @escaping @Sendable (any Channel) -> Void
  ) -> Transport.Config {
    .defaults { config in
      config.backoff = HTTP2ClientTransport.Config.Backoff(
        initial: configuration.backoff.initial,
        max: configuration.backoff.maximum,
        multiplier: configuration.backoff.multiplier,
        jitter: configuration.backoff.jitter
      )
      // The transport's keepalive stops for good once a connection has had no open call (see
      // PingAckHandler); the watch stream sends its own PINGs instead.
      config.connection.keepalive = nil
      config.connection.maxIdleTime = nil
      if let hostname = configuration.tls?.serverHostname {
        config.http2.authority = hostname
      }
      // NIO's connect waits up to 10 s, and the kernel resends an unanswered SYN only after 1, 3 and 7 s:
      // a member that comes back (a healed partition) would be found only at the next resend. A connection
      // attempt ends just after the first resend instead, and the transport tries again after its backoff
      // with a fresh SYN.
      let connectLimit = TimeAmount(Self.connectAttemptLimit(dialTimeout: configuration.dialTimeout))
      config.channelDebuggingCallbacks.onCreateTCPConnection = { channel in
        onConnection(channel)
        channel.eventLoop.scheduleTask(in: connectLimit) {
          if !channel.isActive { channel.close(promise: nil) }
        }
        return PingAckHandler.install(on: channel)
      }
    }
  }
}

/// The latest TCP connection of each member.
final class ChannelRegistry: Sendable {
  private let channels = Mutex<[Int: any Channel]>([:])

  func set(_ channel: any Channel, for index: Int) {
    channels.withLock { $0[index] = channel }
  }

  func channel(for index: Int) -> (any Channel)? {
    channels.withLock { $0[index] }
  }
}

/// A flag set from one task and read from another.
final class Flag: Sendable {
  private let value = Atomic(false)

  func set() { value.store(true, ordering: .relaxed) }

  var isSet: Bool { value.load(ordering: .relaxed) }
}
