/// The processes of a master-worker HAProxy, as the master CLI's `show proc` lists them.
public struct ProcessList: Sendable, Hashable {
  /// One line of `show proc`.
  public struct Entry: Sendable, Hashable {
    /// The process ID.
    public var pid: Int32
    /// `master`, `worker`, or a program's name.
    public var type: String
    /// For the master, how often it was reloaded; for a worker, how many reloads it has survived.
    public var reloads: Int
    /// The uptime as HAProxy prints it, such as `0d00h02m07s`.
    public var uptime: String
    /// The HAProxy version (`-` for programs).
    public var version: String
  }

  /// The master process.
  public var master: Entry
  /// How many reloads failed since the last successful one (`[failed: N]`): HAProxy 2.6 resets it to 0 on
  /// a successful reload.
  public var failedReloads: Int
  /// The current workers, started by the latest successful (re)load.
  public var workers: [Entry]
  /// Workers of earlier generations that are still finishing their connections.
  public var oldWorkers: [Entry]
  /// Programs that the master runs (`program` sections).
  public var programs: [Entry]

  /// The master's PID.
  public var masterPID: Int32 { master.pid }
  /// How often the master was reloaded, successfully or not.
  public var reloads: Int { master.reloads }

  /// Parses the reply to `show proc`.
  ///
  /// ```
  /// #<PID>          <type>          <reloads>       <uptime>        <version>
  /// 32717           master          1 [failed: 0]   0d00h00m04s     2.6.12-1+deb12u4
  /// # workers
  /// 32721           worker          0               0d00h00m01s     2.6.12-1+deb12u4
  /// # old workers
  /// 32719           worker          1               0d00h00m04s     2.6.12-1+deb12u4
  /// # programs
  /// ```
  ///
  /// - Throws: ``HAProxyError/Code/unexpectedReply`` if there is no master line or a line cannot be read.
  public static func parse(_ reply: String) throws -> ProcessList {
    enum Section { case master, workers, oldWorkers, programs }
    var section = Section.master
    var master: (Entry, failed: Int)?
    var workers: [Entry] = []
    var oldWorkers: [Entry] = []
    var programs: [Entry] = []
    for line in reply.nonEmptyLines() {
      let trimmed = line.trimmedWhitespace
      if trimmed.hasPrefix("#") {
        switch trimmed.dropFirst().trimmedWhitespace {
        case "workers": section = .workers
        case "old workers": section = .oldWorkers
        case "programs": section = .programs
        default: break  // The column header, or a section that a later version adds.
        }
        continue
      }
      let words = trimmed.whitespaceSeparated()
      switch section {
      case .master:
        // 32717 master 1 [failed: 0] 0d00h00m04s 2.6.12-1+deb12u4
        guard words.count >= 7, words[3] == "[failed:", words[4].hasSuffix("]"),
          let failed = Int(words[4].dropLast())
        else { throw HAProxyError(.unexpectedReply, "show proc: cannot read the master line: \(line)") }
        let entry = try Self.entry(pid: words[0], type: words[1], reloads: words[2], rest: words[5...], line: line)
        master = (entry, failed)
      case .workers, .oldWorkers, .programs:
        guard words.count >= 4 else {
          throw HAProxyError(.unexpectedReply, "show proc: cannot read the line: \(line)")
        }
        let entry = try Self.entry(pid: words[0], type: words[1], reloads: words[2], rest: words[3...], line: line)
        switch section {
        case .workers: workers.append(entry)
        case .oldWorkers: oldWorkers.append(entry)
        default: programs.append(entry)
        }
      }
    }
    guard let master else { throw HAProxyError(.unexpectedReply, "show proc: no master line") }
    return ProcessList(
      master: master.0, failedReloads: master.failed, workers: workers, oldWorkers: oldWorkers, programs: programs)
  }

  private static func entry(
    pid: Substring,
    type: Substring,
    reloads: Substring,
    rest: ArraySlice<Substring>,
    line: Substring
  ) throws -> Entry {
    guard let pid = Int32(pid), let reloads = Int(reloads) else {
      throw HAProxyError(.unexpectedReply, "show proc: cannot read PID and reloads in: \(line)")
    }
    return Entry(
      pid: pid,
      type: String(type),
      reloads: reloads,
      uptime: rest.first.map(String.init) ?? "",
      version: rest.dropFirst().joined(separator: " ")
    )
  }
}
