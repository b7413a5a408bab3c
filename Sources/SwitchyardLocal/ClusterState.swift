import Foundation
import HAProxyKit
import SwitchyardProcess

#if canImport(Glibc)
  import Glibc
#endif

/// One started part: its spec and its process.
public struct PartRecord: Sendable, Codable, Hashable {
  /// How it is started.
  public var spec: PartSpec
  /// Its PID when it was last started; `nil` once stopped.
  public var pid: Int32?
  /// Its log file.
  public var logPath: String
}

/// What `up` started, kept in `<home>/cluster.json` so that later commands find the parts.
public struct ClusterState: Sendable, Codable {
  /// Format version.
  public var version = 1
  /// The layout's fixed ports.
  public var ports: ClusterPorts
  /// The `switchyard` executable the parts run.
  public var switchyard: String
  /// The etcd executable.
  public var etcd: String
  /// Every part, etcd members first, then LB nodes, then backends, then the instances of `web`.
  public var parts: [PartRecord]
  /// Whether the cluster was started with `up --secure` (absent in state files from before it existed).
  public var secure: Bool?

  /// Whether the cluster was started with `up --https` (absent in state files from before it existed).
  public var https: Bool?

  /// Whether etcd runs with TLS and authentication.
  public var isSecure: Bool { secure ?? false }

  /// Whether the LB nodes serve HTTPS: started with `--https` or `--secure`.
  public var servesHTTPS: Bool { (https ?? false) || isSecure }

  /// The layout this state was made from.
  public func layout(home: String) -> ClusterLayout {
    ClusterLayout(home: home, switchyard: switchyard, etcd: etcd, ports: ports, secure: isSecure, https: https ?? false)
  }

  /// The part called `name`.
  public func part(_ name: String) -> PartRecord? { parts.first { $0.spec.name == name } }

  /// Parts of one kind, in name order (by number).
  public func parts(_ kind: PartKind) -> [PartRecord] {
    parts.filter { $0.spec.kind == kind }.sorted { $0.spec.index < $1.spec.index }
  }

  static func path(home: String) -> String { "\(home)/cluster.json" }

  /// Reads the state of the cluster in `home`, or `nil` when there is none.
  public static func load(home: String) throws -> ClusterState? {
    let path = path(home: home)
    guard FileManager.default.fileExists(atPath: path) else { return nil }
    do {
      return try JSONDecoder().decode(ClusterState.self, from: Data(contentsOf: URL(fileURLWithPath: path)))
    } catch {
      throw LocalClusterError("\(path) cannot be read (\(error)); remove it, or run `switchyard down --purge`")
    }
  }

  /// Writes the state atomically.
  public func save(home: String) throws {
    let encoder = JSONEncoder()
    encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
    try encoder.encode(self).write(to: URL(fileURLWithPath: Self.path(home: home)), options: .atomic)
  }
}

/// A local-cluster failure, with what to do about it.
public struct LocalClusterError: Error, CustomStringConvertible {
  /// The message.
  public var description: String

  /// Creates an error.
  public init(_ description: String) {
    self.description = description
  }
}

extension PartRecord {
  /// Whether the recorded process still runs this part (its command line is the spec's), so that a reused
  /// PID is never taken for a part.
  var isRunning: Bool {
    guard let pid, DetachedProcess.isRunning(pid) else { return false }
    return Array(DetachedProcess.commandLine(of: pid).dropFirst().filter { !$0.isEmpty }) == spec.arguments
  }
}

/// Holds an exclusive lock on `<home>/.lock` while a command changes the cluster.
final class ClusterLock {
  private let descriptor: Int32

  init(home: String) throws {
    descriptor = open("\(home)/.lock", O_CREAT | O_RDWR | O_CLOEXEC, 0o600)
    guard descriptor >= 0 else {
      throw LocalClusterError("cannot open \(home)/.lock: \(String(cString: strerror(errno)))")
    }
    if flock(descriptor, LOCK_EX | LOCK_NB) != 0 {
      FileHandle.standardError.write(Data("Waiting for another switchyard command on \(home)…\n".utf8))
      flock(descriptor, LOCK_EX)
    }
  }

  deinit {
    flock(descriptor, LOCK_UN)
    close(descriptor)
  }
}

/// Loopback ports: whether one is taken, and by whom (free ones come from ``FreePort``).
enum LoopbackPorts {
  /// Whether something listens on 127.0.0.1:`port` (or on all addresses): a bind attempt fails. With
  /// `SO_REUSEADDR`, as the servers themselves bind, so connections in TIME_WAIT do not count.
  static func isInUse(_ port: Int) -> Bool {
    Loopback.isPortInUse(port)
  }

  /// `pid 1234 (haproxy)` for a process listening on `port`, when /proc tells.
  static func owner(of port: Int) -> String? {
    owners(of: port).first.map(describe)
  }

  /// `pid 1234 (haproxy)`.
  static func describe(_ pid: Int32) -> String {
    let command = ProcFS.command(of: pid) ?? "?"
    return "pid \(pid) (\(command))"
  }

  /// Every process that holds a socket listening on `port` (an HAProxy master's workers share theirs), as far
  /// as /proc tells.
  static func owners(of port: Int) -> [Int32] {
    ProcFS.listeningSocketOwners(port: port)
  }
}
