/// A server in one HAProxy backend: `svc_backend/backend-1`.
public struct ServerRef: Sendable, Hashable, Comparable, CustomStringConvertible {
  /// The backend (proxy) name.
  public let backend: String
  /// The server name.
  public let server: String

  /// Creates a reference.
  public init(backend: String, server: String) {
    self.backend = backend
    self.server = server
  }

  /// `backend/server`, as the Runtime API writes it.
  public var description: String { "\(backend)/\(server)" }

  /// Orders by backend, then server.
  public static func < (lhs: ServerRef, rhs: ServerRef) -> Bool {
    (lhs.backend, lhs.server) < (rhs.backend, rhs.server)
  }
}

/// A server's administrative state, as set through the Runtime API.
public enum ServerAdminState: String, Sendable, Hashable, CaseIterable {
  /// Takes traffic (when its health check passes).
  case ready
  /// Keeps its connections, takes no new ones.
  case drain
  /// Takes no traffic; only a server in maintenance can be deleted.
  case maint
}

/// One server as HAProxy reports it.
public struct ObservedServer: Sendable, Hashable {
  /// The server name.
  public var name: String
  /// Its numeric id in the backend (`srv_id`), when known: servers to add get ids above these.
  public var id: Int?
  /// Its address, as HAProxy prints it; `nil` when it has none (an unresolved host name).
  public var address: String?
  /// Its port.
  public var port: Int?
  /// Its current (user) weight.
  public var weight: Int
  /// Its administrative state.
  public var adminState: ServerAdminState
  /// Connections in use.
  public var activeConnections: Int
  /// Idle connections kept for reuse.
  public var idleConnections: Int
  /// Whether the connection counts were observed (`show servers conn`); a pass asks for them only in
  /// backends with servers leaving, and otherwise they read 0 without meaning it.
  public var connectionsObserved: Bool
  /// Whether its health check passes (or it has none).
  public var isUp: Bool
  /// Whether its health check runs. False for a server added at runtime whose `enable health` never
  /// came (the controller died or timed out in between), or one whose check an operator disabled.
  public var isCheckEnabled: Bool
  /// Whether HAProxy connects to it over TLS (`srv_use_ssl`); `nil` when not reported.
  public var usesTLS: Bool?
  /// The TLS server name (SNI, `verifyhost`) it was given, when the controller knows it
  /// (``tlsServerNameKnown``): HAProxy does not report it, so ``RuntimeBelief`` remembers what it added
  /// and installed.
  public var tlsServerName: String?
  /// Whether ``tlsServerName`` is known; when not, it is taken to be the one desired.
  public var tlsServerNameKnown: Bool = false

  /// Creates an observed server.
  public init(
    name: String,
    address: String?,
    port: Int?,
    weight: Int,
    adminState: ServerAdminState,
    activeConnections: Int = 0,
    idleConnections: Int = 0,
    isUp: Bool = true,
    isCheckEnabled: Bool = true,
    id: Int? = nil,
    connectionsObserved: Bool = false,
    usesTLS: Bool? = nil
  ) {
    self.name = name
    self.id = id
    self.address = address
    self.port = port
    self.weight = weight
    self.adminState = adminState
    self.activeConnections = activeConnections
    self.idleConnections = idleConnections
    self.connectionsObserved = connectionsObserved
    self.isUp = isUp
    self.isCheckEnabled = isCheckEnabled
    self.usesTLS = usesTLS
  }
}

/// What HAProxy runs: the servers of each backend, by backend name.
public struct ObservedState: Sendable, Hashable {
  /// Servers by backend name. A backend with no servers may be missing.
  public var backends: [String: [ObservedServer]]
  /// The numeric id of each backend (`be_id`) HAProxy reported a server of.
  public var backendIDs: [String: Int]

  /// Creates an observed state.
  public init(backends: [String: [ObservedServer]] = [:], backendIDs: [String: Int] = [:]) {
    self.backends = backends
    self.backendIDs = backendIDs
  }
}
