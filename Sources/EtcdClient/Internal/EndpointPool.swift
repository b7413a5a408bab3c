import GRPCCore
import GRPCNIOTransportHTTP2
import Logging
import NIOCore
import NIOPosix
import Synchronization

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
  let members: [MemberConnection]
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
    let group = MultiThreadedEventLoopGroup.singleton
    for (index, endpoint) in configuration.endpoints.enumerated() {
      // Each member's connections live on one event loop, known in advance, so that its calls can
      // run on that loop too.
      let eventLoop = group.next()
      let transport: Transport
      do {
        transport = try Transport(
          target: Self.target(for: endpoint),
          transportSecurity: try Self.security(for: endpoint, configuration: configuration),
          config: Self.transportConfig(configuration: configuration) { channel in
            channels.set(channel, for: index)
          },
          eventLoopGroup: eventLoop
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
      members.append(
        MemberConnection(
          index: index,
          endpoint: endpoint,
          grpc: GRPCClient(transport: transport),
          executor: EventLoopTaskExecutor(eventLoop: eventLoop)
        )
      )
    }
    self.members = members
    self.state = Mutex(State(preferred: Int.random(in: 0..<members.count, using: &generator)))
  }

  /// Runs every member's connection until ``shutdown()``.
  func run() async throws {
    try await withThrowingDiscardingTaskGroup { group in
      for member in members {
        group.addTask { try await member.grpc.runConnections() }
      }
    }
  }

  func shutdown() {
    for member in members { member.grpc.beginGracefulShutdown() }
  }

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
    if isIPv4Literal(host) {
      return .ipv4(address: host, port: endpoint.port)
    } else if host.contains(":") {
      return .ipv6(address: host, port: endpoint.port)
    }
    return .dns(host: host, port: endpoint.port)
  }

  private static func isIPv4Literal(_ host: String) -> Bool {
    let parts = host.split(separator: ".", omittingEmptySubsequences: false)
    return parts.count == 4 && parts.allSatisfy { UInt8($0) != nil }
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
