import ArgumentParser
import EtcdClient
import Logging
import ServiceLifecycle
import SwitchyardAgent
import SwitchyardModel

/// `switchyard register`: a sidecar that registers an existing service, which knows nothing of
/// etcd, and optionally health-checks it.
struct RegisterCommand: AsyncParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "register",
    abstract: "Register an existing service in etcd and keep it registered (a sidecar).",
    discussion: """
      With --check-http or --check-tcp the service is probed every --check-interval seconds; after
      --fall failures its entry is marked maint (or removed, with --on-unhealthy remove) and after
      --rise successes it is restored. On SIGTERM or SIGINT the entry is marked draining, kept for
      --drain-seconds, then deregistered.
      """
  )

  enum UnhealthyAction: String, ExpressibleByArgument, CaseIterable {
    case maint, remove
  }

  @OptionGroup var etcd: EtcdOptions
  @OptionGroup var logging: LoggingOptions
  @OptionGroup var registration: RegistrationOptions

  @Option(help: "Instance id (letters, digits, -, _, .).")
  var id: String

  @Option(help: "The service's address, host:port.")
  var address: String

  @Option(name: .customLong("check-http"), help: "Probe with HTTP GET of this path; 2xx is healthy.")
  var checkHTTP: String?

  @Flag(name: .customLong("check-tcp"), help: "Probe by opening a TCP connection.")
  var checkTCP = false

  @Option(name: .customLong("check-interval"), help: "Seconds between probes.")
  var checkInterval: Double = 2

  @Option(help: "Successful probes needed to become healthy.")
  var rise: Int = 2

  @Option(help: "Failed probes needed to become unhealthy.")
  var fall: Int = 3

  @Option(name: .customLong("on-unhealthy"), help: "What to do with the entry while unhealthy: maint or remove.")
  var onUnhealthy: UnhealthyAction = .maint

  func validate() throws {
    if checkHTTP != nil && checkTCP { throw ValidationError("--check-http and --check-tcp exclude each other") }
    guard checkInterval > 0, checkInterval <= 3600, checkInterval.isFinite else {
      throw ValidationError("--check-interval must be from 0 to 3600 seconds")
    }
    guard (1...100).contains(rise), (1...100).contains(fall) else {
      throw ValidationError("--rise and --fall must be from 1 to 100")
    }
    _ = try parsed()
  }

  private func parsed() throws -> (key: RegistrationKey, value: Registration, target: HostPort) {
    let target = try parseHostPort(address, flag: "--address")
    let key = try registration.key(instance: id)
    if let checkHTTP, let problem = Registration.checkPathProblem(checkHTTP) {
      throw ValidationError("--check-http: \(problem)")
    }
    let value = try registration.registration(for: target, checkPath: checkHTTP)
    return (key, value, target)
  }

  func run() async throws {
    let (key, value, target) = try parsed()
    let logger = logging.makeLogger(label: "switchyard.register")
    let client = try EtcdClient(configuration: try etcd.makeConfiguration(), logger: logger)
    let registrar = registration.makeRegistrar(client: client, key: key, value: value, logger: logger)
    var services: [ServiceGroupConfiguration.ServiceConfiguration] = [.init(service: EtcdClientService(client: client))]

    let probe: HealthProbe? = checkHTTP.map { .http(path: $0) } ?? (checkTCP ? .tcp : nil)
    if let probe {
      let action = onUnhealthy
      let checker = HealthChecker(
        configuration: .init(
          host: target.address.text,
          port: target.port,
          probe: probe,
          interval: .milliseconds(Int64(checkInterval * 1000)),
          timeout: .milliseconds(Int64(min(checkInterval, 2) * 1000)),
          rise: rise,
          fall: fall
        ),
        logger: logger
      ) { healthy in
        if healthy {
          registrar.update(value: value.encoded())
        } else {
          registrar.update(value: action == .remove ? nil : value.with(state: .maint).encoded())
        }
      }
      services.append(.init(service: checker))
    }
    services.append(.init(service: registrar))
    let group = ServiceGroup(
      configuration: .init(services: services, gracefulShutdownSignals: [.sigterm, .sigint], logger: logger)
    )
    try await group.run()
  }
}
