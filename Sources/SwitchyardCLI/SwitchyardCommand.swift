import ArgumentParser

/// The `switchyard` command: service discovery with etcd and HAProxy.
public struct SwitchyardCommand: AsyncParsableCommand {
  /// Describes the command tree.
  public static let configuration = CommandConfiguration(
    commandName: "switchyard",
    abstract: "Service-discovery load balancing: etcd v3 as the source of truth, HAProxy as the data plane.",
    subcommands: [
      UpCommand.self, ScaleCommand.self, StatusCommand.self, LogsCommand.self, StopCommand.self, StartCommand.self,
      DownCommand.self, ControllerCommand.self, BackendCommand.self, RegisterCommand.self, EtcdCommand.self,
      BenchCommand.self, HealthcheckCommand.self, DrainCommand.self, DisableCommand.self, EnableCommand.self,
      RouteCommand.self, ServiceCommand.self, CertCommand.self, LocalTLSCommand.self,
    ]
  )

  /// Creates the command (used by ArgumentParser).
  public init() {}
}
