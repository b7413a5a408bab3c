import ArgumentParser
import EtcdClient
import Foundation
import Logging
import ServiceLifecycle
import SwitchyardAgent
import SwitchyardModel

/// `switchyard backend`: the sample backend of the original demo, registering itself in etcd.
struct BackendCommand: AsyncParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "backend",
    abstract: "Run the sample HTTP backend and keep it registered in etcd.",
    discussion: """
      Answers GET / with "Hello from <id>" and GET /healthz with "ok". Registers
      /services/<service>/<id> under a lease and keeps it alive; on SIGTERM or SIGINT it marks
      itself draining, waits --drain-seconds, deregisters, finishes in-flight requests and exits 0.
      """
  )

  @OptionGroup var etcd: EtcdOptions
  @OptionGroup var logging: LoggingOptions
  @OptionGroup var registration: RegistrationOptions

  @Option(help: "Instance id (letters, digits, -, _, .). Default: host name and port.")
  var id: String?

  @Option(help: "Address to listen on, host:port.")
  var listen: String = "127.0.0.1:8080"

  @Option(
    help: ArgumentHelp(
      "Address to register, host:port, when it differs from --listen.",
      discussion: """
        Default: the --listen address; when that is 0.0.0.0 or [::] (every address, as in a container), this \
        host's only address other than loopback and link-local, with the --listen port.
        """
    )
  )
  var advertise: String?

  func validate() throws {
    _ = try parsed()
  }

  private func parsed() throws -> (listen: HostPort, advertise: HostPort, key: RegistrationKey, value: Registration) {
    let listenAddress = try parseHostPort(listen, flag: "--listen")
    let advertised = try advertise.map { try parseHostPort($0, flag: "--advertise") } ?? thisHost(listenAddress)
    let instance = id ?? defaultInstanceID(port: listenAddress.port)
    let key = try registration.key(instance: instance)
    let value = try registration.registration(for: advertised, checkPath: "/healthz")
    return (listenAddress, advertised, key, value)
  }

  func run() async throws {
    let (listenAddress, _, key, value) = try parsed()
    let logger = logging.makeLogger(label: "switchyard.backend")
    let client = try EtcdClient(configuration: try etcd.makeConfiguration(), logger: logger)
    let registrar = registration.makeRegistrar(client: client, key: key, value: value, logger: logger)
    let app = BackendServer.makeApplication(
      instanceID: key.instance.rawValue,
      host: listenAddress.address.text,
      port: listenAddress.port,
      logger: logger,
      registration: { registrar.status }
    )
    // Shutdown runs in reverse: deregister (drain, revoke), then stop serving, then close etcd.
    let group = ServiceGroup(
      configuration: .init(
        services: [.init(service: EtcdClientService(client: client)), .init(service: app), .init(service: registrar)],
        gracefulShutdownSignals: [.sigterm, .sigint],
        logger: logger
      )
    )
    try await group.run()
  }
}

/// The registration flags shared by `backend` and `register`.
struct RegistrationOptions: ParsableArguments {
  @Option(help: "Service to register under (/services/<service>/<id>).")
  var service: String = "backend"

  @Option(help: "Lease TTL in seconds: how long the registration outlives a crashed process.")
  var ttl: Int64 = 10

  @Option(name: .customLong("drain-seconds"), help: "Seconds to stay registered as draining before deregistering.")
  var drainSeconds: Double = 2

  @Option(help: "Relative share of traffic, 0–256.")
  var weight: Int = 100

  @Flag(help: "Load balancers connect to the instance over TLS and verify its certificate against their --backend-ca.")
  var tls = false

  @Option(
    name: .customLong("tls-server-name"),
    help: "With --tls: the DNS name sent as SNI and checked against the instance's certificate.")
  var tlsServerName: String?

  func validate() throws {
    guard (1...3600).contains(ttl) else { throw ValidationError("--ttl must be from 1 to 3600 seconds") }
    guard drainSeconds >= 0, drainSeconds <= 3600, drainSeconds.isFinite else {
      throw ValidationError("--drain-seconds must be from 0 to 3600")
    }
    guard (0...256).contains(weight) else { throw ValidationError("--weight must be from 0 to 256") }
    if tlsServerName != nil, !tls { throw ValidationError("--tls-server-name needs --tls") }
    _ = try serviceName()
  }

  func serviceName() throws -> ServiceName {
    do {
      return try ServiceName(validating: service)
    } catch {
      throw ValidationError("--service: \(error.reason)")
    }
  }

  func key(instance: String) throws -> RegistrationKey {
    do {
      return RegistrationKey(service: try serviceName(), instance: try InstanceID(validating: instance))
    } catch let error as RegistrationError {
      throw ValidationError("--id: \(error.reason)")
    }
  }

  func registration(for address: HostPort, checkPath: String?) throws -> Registration {
    do {
      return try Registration(
        address: address.address, port: address.port, weight: weight, checkPath: checkPath, tls: tls,
        tlsServerName: tlsServerName)
    } catch {
      throw ValidationError(error.field == "tls_server_name" ? "--tls-server-name: \(error.reason)" : "\(error)")
    }
  }

  func makeRegistrar(client: EtcdClient, key: RegistrationKey, value: Registration, logger: Logger) -> Registrar {
    Registrar(
      client: client,
      key: key.path,
      value: value.encoded(),
      ttl: ttl,
      drainPeriod: .milliseconds(Int64(drainSeconds * 1000)),
      drainingValue: { bytes in
        (try? Registration.parse(bytes))?.with(state: .drain).encoded() ?? bytes
      },
      endpoint: { bytes in (try? Registration.parse(bytes))?.hostPort },
      logger: logger
    )
  }
}

/// `listen` itself, or for a listen address of `0.0.0.0` or `::` this host's one address that load
/// balancers can reach, with the same port.
func thisHost(_ listen: HostPort) throws -> HostPort {
  guard listen.address.isUnspecified else { return listen }
  do {
    let address = try AdvertisedAddress.choose(
      from: AdvertisedAddress.interfaceAddresses(),
      ipv6: listen.address.kind == .ipv6
    )
    return try HostPort(parsing: address.hostPort(listen.port))
  } catch {
    throw ValidationError("--advertise: \(error)")
  }
}

/// Parses a `host:port` flag value with an error that names the flag.
func parseHostPort(_ text: String, flag: String) throws -> HostPort {
  do {
    return try HostPort(parsing: text)
  } catch {
    throw ValidationError(
      "\(flag): \"\(text)\" is not host:port (\(error.field.map { "\($0): " } ?? "")\(error.reason))")
  }
}

/// `<hostname>-<port>`, reduced to the characters instance ids allow.
func defaultInstanceID(port: Int) -> String {
  let host = ProcessInfo.processInfo.hostName.split(separator: ".").first.map(String.init) ?? "backend"
  let safe = String(host.unicodeScalars.map { SafeCharacters.allows($0) ? Character($0) : "-" })
  return "\(safe.isEmpty ? "backend" : safe)-\(port)"
}

enum SafeCharacters {
  static func allows(_ scalar: Unicode.Scalar) -> Bool {
    switch scalar {
    case "a"..."z", "A"..."Z", "0"..."9", "-", "_", ".": true
    default: false
    }
  }
}
