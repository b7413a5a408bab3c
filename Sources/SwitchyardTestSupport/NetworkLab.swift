import Foundation
import SwitchyardLab
import SwitchyardProcess
import Synchronization

/// A test network of separate hosts, made of Linux network namespaces, for fault tests that cut hosts off
/// from each other.
///
/// Every host is a network namespace with one interface, `eth0`, on a private /24 that exists only inside
/// the lab: a veth pair joins it to a bridge that lives in a namespace of its own (the switch). The test
/// process's own namespace joins the bridge too, as the client host (address `.254`), so a test reaches
/// every host directly. Processes run on a host through `ip netns exec` (``command(on:_:_:)``).
///
/// Faults:
/// - ``cutOff(_:)`` / ``reconnect(_:)``: the host's link to the switch goes down: nothing reaches it or
///   leaves it, while its processes keep running.
/// - ``partition(_:_:)`` / ``heal(_:_:)``: blackhole routes on both hosts: those two cannot talk, everything
///   else still can.
///
/// Needs root and the `ip` tool (iproute2); ``isAvailable`` says whether this process can build one. The
/// subnet is drawn from 10.213.0.0/16 among those this machine does not use. ``shutdown()`` deletes every
/// namespace and interface; so does `deinit`, and a lab whose process died is removed by the next
/// ``create(hosts:)`` (names carry the creating PID).
public final class NetworkLab: Sendable {
  /// One host of the lab.
  public struct Host: Sendable, Hashable, CustomStringConvertible {
    /// The name the test gave it, such as `etcd1`.
    public let name: String
    /// Its network namespace.
    public let namespace: String
    /// Its IPv4 address on the lab network.
    public let address: String
    /// The switch-side end of its veth pair.
    let switchPort: String

    /// `name (address)`.
    public var description: String { "\(name) (\(address))" }
  }

  /// The hosts, in the order they were asked for.
  public let hosts: [Host]
  /// The address of the test process itself on the lab network.
  public let clientAddress: String
  private let prefix: String
  private let subnet: String
  private let switchNamespace: String
  private let clientInterface: String
  private let isShutDown = Mutex(false)

  /// Whether `address` is a host or the client of a lab alive in this process: the only addresses besides
  /// loopback that test traffic may go to.
  public static func isLabAddress(_ address: String) -> Bool {
    LabAddresses.contains(address)
  }

  /// Whether this process can build a lab: it runs as root and `ip netns` works.
  public static var isAvailable: Bool { getuid() == 0 && ipPath != nil }

  /// Where iproute2's `ip` is.
  private static let ipPath = ["/usr/sbin/ip", "/sbin/ip", "/usr/bin/ip", "/bin/ip"].first {
    FileManager.default.isExecutableFile(atPath: $0)
  }

  private init(prefix: String, subnet: String, names: [String]) {
    self.prefix = prefix
    self.subnet = subnet
    switchNamespace = "\(prefix)-sw"
    clientInterface = "\(prefix)-c"
    clientAddress = "\(subnet).254"
    hosts = names.enumerated().map { index, name in
      Host(
        name: name,
        namespace: "\(prefix)-\(name)",
        address: "\(subnet).\(index + 1)",
        switchPort: "\(prefix)-p\(index)"
      )
    }
  }

  deinit {
    if !isShutDown.withLock({ $0 }) { Self.removeSynchronously(prefix: prefix) }
    LabAddresses.remove(subnet: subnet)
  }

  /// Builds a lab with one host per name (names: letters, digits and `-`, at most 8 characters).
  public static func create(hosts names: [String]) async throws -> NetworkLab {
    guard isAvailable else { throw TestSupportError(.invalidState, "a network lab needs root and iproute2") }
    guard !names.isEmpty, names.count < 250, Set(names).count == names.count,
      names.allSatisfy({ name in
        !name.isEmpty && name.count <= 8 && name.allSatisfy { $0.isASCII && ($0.isLetter || $0.isNumber || $0 == "-") }
      })
    else {
      throw TestSupportError(.invalidState, "host names must be distinct, 1 to 8 letters, digits or '-': \(names)")
    }
    await removeStale()
    let prefix = "syl\(String(getpid(), radix: 36))"
    let subnet = try await freeSubnet()
    let lab = NetworkLab(prefix: prefix, subnet: subnet, names: names)
    do {
      try await lab.build()
      LabAddresses.add(subnet: subnet)
      return lab
    } catch {
      await lab.shutdown()
      throw error
    }
  }

  /// The host called `name`.
  public func host(_ name: String) -> Host {
    guard let host = hosts.first(where: { $0.name == name }) else { preconditionFailure("no host \(name) in the lab") }
    return host
  }

  /// The executable and arguments that run `executable` with `arguments` on `host`, for ``ManagedProcess``:
  /// `ip netns exec` replaces itself with the program, so the PID is the program's.
  public func command(on host: Host, _ executable: String, _ arguments: [String]) -> (String, [String]) {
    ("ip", ["netns", "exec", host.namespace, executable] + arguments)
  }

  /// Runs a short command on `host` and returns its standard output (see ``ManagedProcess/run``).
  @discardableResult
  public func run(on host: Host, _ executable: String, _ arguments: [String], timeout: Duration = .seconds(30))
    async throws -> String
  {
    let (tool, all) = command(on: host, executable, arguments)
    return try await ManagedProcess.run(tool, arguments: all, timeout: timeout)
  }

  /// Takes `host` off the network: its link to the switch goes down.
  public func cutOff(_ host: Host) async throws {
    try await ip(["-n", switchNamespace, "link", "set", host.switchPort, "down"])
  }

  /// Puts `host` back on the network.
  public func reconnect(_ host: Host) async throws {
    try await ip(["-n", switchNamespace, "link", "set", host.switchPort, "up"])
  }

  /// Stops all traffic between `a` and `b`, both ways; every other path stays.
  public func partition(_ a: Host, _ b: Host) async throws {
    try await ip(["-n", a.namespace, "route", "add", "blackhole", "\(b.address)/32"])
    try await ip(["-n", b.namespace, "route", "add", "blackhole", "\(a.address)/32"])
  }

  /// Undoes ``partition(_:_:)``.
  public func heal(_ a: Host, _ b: Host) async throws {
    try await ip(["-n", a.namespace, "route", "del", "blackhole", "\(b.address)/32"])
    try await ip(["-n", b.namespace, "route", "del", "blackhole", "\(a.address)/32"])
  }

  /// Deletes every namespace and interface of the lab; safe to call more than once. Processes still running
  /// on a host keep their namespace until they exit: stop them first.
  public func shutdown() async {
    isShutDown.withLock { $0 = true }
    LabAddresses.remove(subnet: subnet)
    Self.removeSynchronously(prefix: prefix)
  }

  // MARK: - Building

  private func build() async throws {
    try await ip(["netns", "add", switchNamespace])
    try await ip(["-n", switchNamespace, "link", "set", "lo", "up"])
    try await ip(["-n", switchNamespace, "link", "add", "br0", "type", "bridge"])
    try await ip(["-n", switchNamespace, "link", "set", "br0", "up"])
    for host in hosts {
      try await ip(["netns", "add", host.namespace])
      try await ip(["-n", host.namespace, "link", "set", "lo", "up"])
      // Created inside the host's namespace, with the peer moved to the switch.
      try await ip([
        "-n", host.namespace, "link", "add", "eth0", "type", "veth", "peer", "name", host.switchPort, "netns",
        switchNamespace,
      ])
      try await ip(["-n", host.namespace, "addr", "add", "\(host.address)/24", "dev", "eth0"])
      try await ip(["-n", host.namespace, "link", "set", "eth0", "up"])
      try await ip(["-n", switchNamespace, "link", "set", host.switchPort, "master", "br0"])
      try await ip(["-n", switchNamespace, "link", "set", host.switchPort, "up"])
    }
    let clientPort = "\(prefix)-pc"
    try await ip(["link", "add", clientInterface, "type", "veth", "peer", "name", clientPort, "netns", switchNamespace])
    try await ip(["-n", switchNamespace, "link", "set", clientPort, "master", "br0"])
    try await ip(["-n", switchNamespace, "link", "set", clientPort, "up"])
    try await ip(["addr", "add", "\(clientAddress)/24", "dev", clientInterface])
    try await ip(["link", "set", clientInterface, "up"])
  }

  private func ip(_ arguments: [String]) async throws {
    try await ManagedProcess.run("ip", arguments: arguments, timeout: .seconds(10))
  }

  /// A 10.213.X subnet that no interface or route of this machine uses.
  private static func freeSubnet() async throws -> String {
    let used =
      try await ManagedProcess.run("ip", arguments: ["-4", "addr"])
      + (try await ManagedProcess.run("ip", arguments: ["-4", "route"]))
    for _ in 0..<50 {
      let subnet = "10.213.\(Int.random(in: 1...250))"
      if !used.contains(subnet + ".") && !used.contains(subnet + "/") {
        return subnet
      }
    }
    throw TestSupportError(.invalidState, "no free 10.213.X.0/24 subnet for a network lab")
  }

  /// Removes the namespaces of labs whose creating process is gone.
  private static func removeStale() async {
    guard let list = try? await ManagedProcess.run("ip", arguments: ["netns", "list"]) else { return }
    var prefixes: Set<String> = []
    for line in list.split(separator: "\n") {
      let name = line.split(separator: " ").first.map(String.init) ?? ""
      guard name.hasPrefix("syl"), let dash = name.firstIndex(of: "-") else { continue }
      let prefix = String(name[..<dash])
      guard let pid = Int32(prefix.dropFirst(3), radix: 36), kill(pid, 0) != 0 else { continue }
      prefixes.insert(prefix)
    }
    for prefix in prefixes { removeSynchronously(prefix: prefix) }
  }

  /// Deletes the client interface and every namespace named `<prefix>-…`, with plain `ip` calls that also
  /// work from `deinit`.
  private static func removeSynchronously(prefix: String) {
    func ip(_ arguments: [String]) -> String {
      guard let path = ipPath else { return "" }
      return (try? ManagedProcess.runBlocking(path, arguments: arguments, timeout: .seconds(10))) ?? ""
    }
    _ = ip(["link", "del", "\(prefix)-c"])
    for line in ip(["netns", "list"]).split(separator: "\n") {
      let name = line.split(separator: " ").first.map(String.init) ?? ""
      if name.hasPrefix(prefix + "-") { _ = ip(["netns", "del", name]) }
    }
  }
}
