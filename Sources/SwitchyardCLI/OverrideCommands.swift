import ArgumentParser
import EtcdClient
import SwitchyardModel

/// A command that writes an operator's override of one instance: the state it imposes is its only policy.
protocol OverrideWritingCommand: AsyncParsableCommand {
  /// The state the override imposes.
  static var state: InstanceState { get }
  var etcd: EtcdOptions { get }
  var target: OverrideTarget { get }
}

extension OverrideWritingCommand {
  func run() async throws {
    try await target.write(Self.state, etcd: etcd)
  }
}

/// `switchyard drain SERVICE/ID`: no new requests for an instance on any load balancer.
struct DrainCommand: OverrideWritingCommand {
  static let configuration = CommandConfiguration(
    commandName: "drain",
    abstract: "Drain an instance on every load balancer: no new requests, those in flight finish.",
    discussion: """
      Writes an operator's override, /switchyard/overrides/<service>/<id>, a keyspace that backends never \
      write: the instance keeps its own registration (and its lease) and cannot undo the drain. Every \
      controller applies the stricter of the registration's state and the override's. `switchyard enable` \
      ends it.
      """
  )

  static let state = InstanceState.drain

  @OptionGroup var etcd: EtcdOptions
  @OptionGroup var target: OverrideTarget
}

/// `switchyard disable SERVICE/ID`: no traffic at all for an instance.
struct DisableCommand: OverrideWritingCommand {
  static let configuration = CommandConfiguration(
    commandName: "disable",
    abstract: "Take an instance out of service on every load balancer (maintenance: no traffic at all).",
    discussion: """
      Like `drain`, but the servers go to maintenance: HAProxy sends them nothing, and its health checks \
      stop. `switchyard enable` ends it.
      """
  )

  static let state = InstanceState.maint

  @OptionGroup var etcd: EtcdOptions
  @OptionGroup var target: OverrideTarget
}

/// `switchyard enable SERVICE/ID` (or `undrain`): ends an operator's override.
struct EnableCommand: AsyncParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "enable",
    abstract: "End an operator's drain or disable of an instance; its own registration applies again.",
    aliases: ["undrain"]
  )

  @OptionGroup var etcd: EtcdOptions
  @Argument(help: "The instance, as SERVICE/ID: backend/backend-1.") var instance: String

  func run() async throws {
    let key = try OverrideTarget.parse(instance)
    let deleted = try await etcd.withClient(localCluster: .operator) { client in
      try await client.delete(.key(InstanceOverride.path(for: key)))
    }
    if deleted.deleted == 0 {
      print("\(key.service)/\(key.instance): no override was in force")
    } else {
      print("\(key.service)/\(key.instance): override removed (etcd revision \(deleted.header.revision))")
    }
  }
}

/// The instance an override is about, and why.
struct OverrideTarget: ParsableArguments {
  @Argument(help: "The instance, as SERVICE/ID: backend/backend-1.") var instance: String

  @Option(help: "Why, in a few words: shown in the controllers' /state and logs.") var reason: String?

  func validate() throws {
    _ = try Self.parse(instance)
    if let reason, let problem = InstanceOverride.reasonProblem(reason) { throw ValidationError("--reason \(problem)") }
  }

  /// `backend/backend-1` as a key, with an error that names what is wrong.
  static func parse(_ text: String) throws -> RegistrationKey {
    let parts = text.split(separator: "/", omittingEmptySubsequences: false)
    guard parts.count == 2 else {
      throw ValidationError("\"\(RegistrationError.escape(text))\" is not SERVICE/ID, such as backend/backend-1")
    }
    do {
      return RegistrationKey(
        service: try ServiceName(validating: String(parts[0])), instance: try InstanceID(validating: String(parts[1])))
    } catch {
      throw ValidationError("\(error)")
    }
  }

  /// Writes the override and says what it did, and whether the instance is registered.
  func write(_ state: InstanceState, etcd: EtcdOptions) async throws {
    let key = try Self.parse(instance)
    let override = try InstanceOverride(instance: key, state: state, reason: reason)
    let (revision, registered) = try await etcd.withClient(localCluster: .operator) { client in
      let put = try await client.put(override.path, value: override.encoded())
      return (put.header.revision, try await client.value(of: key.path) != nil)
    }
    print("\(key.service)/\(key.instance): \(state.rawValue) (override written at etcd revision \(revision))")
    if !registered {
      print("note: \(key.path) is not registered now; the override applies when it is")
    }
  }
}
