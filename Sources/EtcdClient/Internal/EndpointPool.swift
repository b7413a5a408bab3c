import GRPCCore
import GRPCNIOTransportHTTP2
import Logging
import Synchronization

typealias Transport = HTTP2ClientTransport.Posix

/// One gRPC connection to one etcd member, with a typed client for each service.
struct MemberConnection: Sendable {
  let index: Int
  let endpoint: EtcdEndpoint
  let grpc: GRPCClient<Transport>

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
final class EndpointPool: Sendable {
  let members: [MemberConnection]
  private let state: Mutex<State>

  private struct State {
    var preferred = 0
    /// Members that answered a call since they last failed.
    var healthy: Set<Int> = []
  }

  init(configuration: EtcdConfiguration) throws(EtcdError) {
    var members: [MemberConnection] = []
    for (index, endpoint) in configuration.endpoints.enumerated() {
      let transport: Transport
      do {
        transport = try Transport(
          target: Self.target(for: endpoint),
          transportSecurity: try Self.security(for: endpoint, configuration: configuration),
          config: Self.transportConfig(configuration: configuration)
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
      members.append(MemberConnection(index: index, endpoint: endpoint, grpc: GRPCClient(transport: transport)))
    }
    self.members = members
    self.state = Mutex(State())
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
    state.withLock { _ = $0.healthy.insert(member.index) }
  }

  /// Records a failure and moves the preference to the next member if this one was preferred.
  func markFailed(_ member: MemberConnection) {
    state.withLock { state in
      state.healthy.remove(member.index)
      if state.preferred == member.index {
        state.preferred = (member.index + 1) % members.count
      }
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

  private static func transportConfig(configuration: EtcdConfiguration) -> Transport.Config {
    .defaults { config in
      config.backoff = HTTP2ClientTransport.Config.Backoff(
        initial: configuration.backoff.initial,
        max: configuration.backoff.maximum,
        multiplier: configuration.backoff.multiplier,
        jitter: configuration.backoff.jitter
      )
      // etcd's server refuses pings more often than every 5 s (grpc-go's default enforcement).
      let interval = max(configuration.keepAliveTimeout / 2, .seconds(10))
      config.connection.keepalive = HTTP2ClientTransport.Config.Keepalive(
        time: interval,
        timeout: configuration.keepAliveTimeout,
        allowWithoutCalls: false
      )
      config.connection.maxIdleTime = nil
      if let hostname = configuration.tls?.serverHostname {
        config.http2.authority = hostname
      }
      config.channelDebuggingCallbacks.onCreateTCPConnection = { channel in
        PingAckHandler.install(on: channel)
      }
    }
  }
}

/// A flag set from one task and read from another.
final class Flag: Sendable {
  private let value = Atomic(false)

  func set() { value.store(true, ordering: .relaxed) }

  var isSet: Bool { value.load(ordering: .relaxed) }
}
