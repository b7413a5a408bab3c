import Foundation

#if canImport(Glibc)
  import Glibc
#elseif canImport(Darwin)
  import Darwin
#endif

/// The one reader of Linux's `/proc`: what it tells about a process that is not necessarily our child.
///
/// Every read returns nil (or an empty list) when the process is gone or the file cannot be read; callers
/// decide what an unknown answer means.
public enum ProcFS {
  /// The fields of `/proc/<pid>/stat` that we use.
  public struct Stat: Sendable, Hashable {
    /// The state letter: `R` running, `S` sleeping, `T` stopped, `Z` exited but not reaped yet, …
    public var state: Character
    /// The parent's PID.
    public var parent: Int32
    /// The user and system CPU time used so far.
    public var cpuTime: Duration
  }

  /// `/proc/<pid>/stat`; nil if there is no such process.
  public static func stat(of pid: Int32) -> Stat? {
    guard let text = read("/proc/\(pid)/stat"), let close = text.lastIndex(of: ")") else { return nil }
    // "1234 (name) S …": the fields follow the last ')' (the command name may contain one). State is
    // field 3; utime and stime are fields 14 and 15, in clock ticks.
    let fields = text[text.index(after: close)...].split(separator: " ")
    guard let state = fields.first?.first, fields.count > 12, let parent = Int32(fields[1]),
      let user = Int64(fields[11]), let system = Int64(fields[12])
    else { return nil }
    let ticks = Int64(sysconf(Int32(_SC_CLK_TCK)))
    return Stat(state: state, parent: parent, cpuTime: .nanoseconds((user + system) * 1_000_000_000 / ticks))
  }

  /// The processes whose parent is `pid` (HAProxy's workers, for its master), by PID.
  public static func children(of pid: Int32) -> [Int32] {
    let entries = (try? FileManager.default.contentsOfDirectory(atPath: "/proc")) ?? []
    return entries.compactMap { Int32($0) }.filter { stat(of: $0)?.parent == pid }.sorted()
  }

  /// The user and system CPU time process `pid` has used so far; nil if there is no such process.
  public static func cpuTime(of pid: Int32) -> Duration? {
    stat(of: pid)?.cpuTime
  }

  /// Whether `pid` has exited and waits for its parent to reap it.
  public static func isZombie(_ pid: Int32) -> Bool {
    stat(of: pid)?.state == "Z"
  }

  /// Whether `pid` runs: it exists (signal 0 reaches it, or is refused) and is not a zombie.
  public static func isRunning(_ pid: Int32) -> Bool {
    (kill(pid, 0) == 0 || errno == EPERM) && !isZombie(pid)
  }

  /// The arguments from `/proc/<pid>/cmdline`, the executable first; empty if the process is gone.
  public static func commandLine(of pid: Int32) -> [String] {
    guard let data = FileManager.default.contents(atPath: "/proc/\(pid)/cmdline") else { return [] }
    // Each argument ends with a NUL; an empty argument stays an empty string.
    return data.dropLast(data.last == 0 ? 1 : 0).split(separator: 0, omittingEmptySubsequences: false)
      .map { String(decoding: $0, as: UTF8.self) }
  }

  /// The target of `/proc/<pid>/exe`; nil when it cannot be read.
  public static func executablePath(of pid: Int32) -> String? {
    try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/\(pid)/exe")
  }

  /// The command name from `/proc/<pid>/comm`, such as `haproxy`; nil when it cannot be read.
  public static func command(of pid: Int32) -> String? {
    read("/proc/\(pid)/comm")?.trimmingCharacters(in: .whitespacesAndNewlines)
  }

  /// The peak resident set size (`VmHWM` in `/proc/<pid>/status`) in bytes; nil when it cannot be read.
  public static func peakResidentBytes(of pid: Int32) -> Int? {
    guard let status = read("/proc/\(pid)/status"),
      let line = status.split(separator: "\n").first(where: { $0.hasPrefix("VmHWM:") }),
      let kilobytes = line.split(separator: " ").compactMap({ Int($0) }).first
    else { return nil }
    return kilobytes * 1024
  }

  /// The path of this process's executable (`/proc/self/exe`); nil when it cannot be read.
  public static func ownExecutablePath() -> String? {
    try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe")
  }

  /// The CPU's model name from `/proc/cpuinfo`; nil when it cannot be read.
  public static func cpuModel() -> String? {
    read("/proc/cpuinfo")?.split(separator: "\n").first { $0.hasPrefix("model name") }
      .map { $0.split(separator: ":", maxSplits: 1).last?.trimmingCharacters(in: .whitespaces) ?? "" }
  }

  /// The kernel's release (`/proc/sys/kernel/osrelease`); nil when it cannot be read.
  public static func kernelRelease() -> String? {
    read("/proc/sys/kernel/osrelease")?.trimmingCharacters(in: .whitespacesAndNewlines)
  }

  /// Every process that holds a socket listening on TCP `port` (IPv4 or IPv6), sorted: the sockets'
  /// inodes from `/proc/net/tcp` and `tcp6`, matched against each process's descriptors. An HAProxy
  /// master's workers share theirs. Processes whose descriptors cannot be read are left out.
  public static func listeningSocketOwners(port: Int) -> [Int32] {
    var inodes: Set<String> = []
    for table in ["/proc/net/tcp", "/proc/net/tcp6"] {
      guard let text = read(table) else { continue }
      for line in text.split(separator: "\n").dropFirst() {
        let fields = line.split(separator: " ")
        guard fields.count > 9, fields[3] == "0A",
          let portHex = fields[1].split(separator: ":").last, Int(portHex, radix: 16) == port
        else { continue }
        inodes.insert(String(fields[9]))
      }
    }
    guard !inodes.isEmpty else { return [] }
    var owners: [Int32] = []
    let processes = (try? FileManager.default.contentsOfDirectory(atPath: "/proc")) ?? []
    for entry in processes {
      guard let pid = Int32(entry) else { continue }
      let fds = (try? FileManager.default.contentsOfDirectory(atPath: "/proc/\(entry)/fd")) ?? []
      let listens = fds.contains { fd in
        guard let target = try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/\(entry)/fd/\(fd)")
        else { return false }
        return target.hasPrefix("socket:[") && inodes.contains(String(target.dropFirst(8).dropLast()))
      }
      if listens { owners.append(pid) }
    }
    return owners.sorted()
  }

  /// The descriptors this process has open, from `/proc/self/fd`.
  static func ownDescriptors() -> [Int32] {
    ((try? FileManager.default.contentsOfDirectory(atPath: "/proc/self/fd")) ?? []).compactMap { Int32($0) }
  }

  private static func read(_ path: String) -> String? {
    FileManager.default.contents(atPath: path).map { String(decoding: $0, as: UTF8.self) }
  }
}
