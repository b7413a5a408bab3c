import ArgumentParser
import EtcdClient
import Foundation
import SwitchyardLab
import SwitchyardProcess

/// Prints throughput numbers for the etcd client against a local etcd: puts/s and ranges/s at
/// several concurrency levels with the CPU time this process spent per call, and watch events/s
/// delivered to one watcher while a writer runs flat out. Starts its own single-member etcd unless
/// `--endpoints` names one.
///
/// CPU per call is this process's user + system time (`getrusage`) over a measurement divided by
/// its calls; etcd runs in its own process and is not counted. The harness's own share (building
/// keys and values, reading the clock, the task group) is measured separately with a call that does
/// nothing and printed as `harness`, so it can be told apart from the client's cost.
@main
struct EtcdBenchmark: AsyncParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "etcd-benchmark",
    abstract: "Measure the Switchyard etcd client against a local etcd."
  )

  @Option(help: "Use this etcd instead of starting one (host:port, comma-separated).")
  var endpoints: String?

  @Option(help: "Seconds per measurement.")
  var seconds: Double = 3

  @Option(help: "Concurrency levels to measure.")
  var concurrency: [Int] = [1, 16, 64]

  @Option(help: "What to measure, comma-separated: put, range, watch.")
  var operations: String = "put,range,watch"

  @Flag(
    help: """
      Also measure etcd's Go client on the same etcd: `etcdctl check perf --load l` (500 clients, puts \
      limited to 8,000/s, 60 s), with its CPU per put.
      """)
  var goClient = false

  func run() async throws {
    if let endpoints {
      try await measure(endpoints: endpoints)
    } else {
      try await EtcdCluster.with(members: 1) { cluster in
        try await measure(endpoints: cluster.endpoints.joined(separator: ","))
      }
    }
  }

  private func measure(endpoints: String) async throws {
    let duration = Duration.milliseconds(Int64(seconds * 1000))
    try await withEtcdClient(configuration: try EtcdConfiguration(endpoints: endpoints)) { client in
      let version = try await client.status().version
      print("etcd \(version) at \(endpoints); \(seconds) s per measurement")
      print("operation  callers  ops       ops/s     mean latency  CPU/call")
      let selected = Set(operations.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) })
      let keySpace = max(concurrency.max() ?? 1, 1)
      for callers in concurrency {
        // The same key and value building as the put below, without the call.
        let harness = try await Self.run(callers: callers, for: .milliseconds(300)) { caller, index in
          blackHole("/bench/put/\(caller)/\(index % 1000)", "value-\(index)")
        }
        harness.print(name: "harness", callers: callers)
      }
      if selected.contains("put") {
        for callers in concurrency {
          let puts = try await Self.run(callers: callers, for: duration) { caller, index in
            try await client.put("/bench/put/\(caller)/\(index % 1000)", value: "value-\(index)")
          }
          puts.print(name: "put", callers: callers)
        }
      }
      if selected.contains("range") {
        for callers in concurrency {
          let ranges = try await Self.run(callers: callers, for: duration) { caller, index in
            _ = try await client.get(.key("/bench/put/\(caller % keySpace)/\(index % 1000)"))
          }
          ranges.print(name: "range", callers: callers)
        }
      }
      if selected.contains("watch") {
        try await measureWatch(client: client, duration: duration)
      }
      try await client.delete(.prefix("/bench/"))
      if goClient { try await measureGoClient(client: client, endpoints: endpoints) }
    }
  }

  /// Runs etcdctl's own load test and prints its puts/s and CPU per put, measured as for this client:
  /// etcdctl's user + system time (sampled from `/proc` while it runs) over the puts it made (etcd's
  /// revision went up by one per put; the delete of its prefix at the end is one more).
  private func measureGoClient(client: EtcdClient, endpoints: String) async throws {
    let prefix = "/bench/etcdctl/"
    let before = try await client.get(.key(prefix), options: GetOptions(countOnly: true)).header.revision
    let clock = ContinuousClock()
    let start = clock.now
    let process = try ManagedProcess(
      EtcdCluster.defaultExecutable("etcdctl"),
      arguments: ["--endpoints", endpoints, "check", "perf", "--load", "l", "--prefix", prefix],
      environment: ["ETCDCTL_API": "3", "PATH": ExecutablePath.searchPath]
    )
    var cpu = Duration.zero
    while process.isRunning {
      cpu = process.cpuTime ?? cpu
      try await Task.sleep(for: .milliseconds(50))
    }
    let elapsed = start.duration(to: clock.now)
    let after = try await client.get(.key(prefix), options: GetOptions(countOnly: true)).header.revision
    let puts = Int(after - before) - 1
    guard puts > 0, cpu > .zero else {
      print("etcdctl check perf: no puts or no CPU time seen (\(process.logTail()))")
      return
    }
    let rate = Double(puts) / elapsed.seconds
    let cpuPerPut = cpu.seconds / Double(puts) * 1_000_000
    print(
      "etcdctl check perf --load l (Go clientv3, 500 clients): \(puts) puts in \(String(format: "%.1f", elapsed.seconds)) s, "
        + "\(Int(rate)) puts/s, \(String(format: "%.1f", cpuPerPut)) µs CPU/put"
    )
  }

  private func measureWatch(client: EtcdClient, duration: Duration) async throws {
    let start = try await client.get(.key("/bench/watch")).header.revision + 1
    let clock = ContinuousClock()
    let began = clock.now
    let (written, received) = try await withThrowingTaskGroup(of: (Int, Int).self) { group in
      group.addTask {
        var count = 0
        for try await response in client.watch(.prefix("/bench/watch/"), options: WatchOptions(startRevision: start)) {
          count += response.events.count
          if response.events.contains(where: { $0.kv.keyString == "/bench/watch/done" }) { break }
        }
        return (0, count)
      }
      group.addTask {
        // Writers with 16 callers keep etcd busy; the watcher must keep up with all of them.
        let result = try await Self.run(callers: 16, for: duration) { caller, index in
          try await client.put("/bench/watch/\(caller)", value: "\(index)")
        }
        try await client.put("/bench/watch/done", value: "")
        return (result.operations + 1, 0)
      }
      var written = 0
      var received = 0
      for try await (w, r) in group {
        written += w
        received += r
      }
      return (written, received)
    }
    let elapsed = began.duration(to: clock.now).seconds
    let rate = Double(received) / elapsed
    print(
      "watch      1        \(received.padded(8))  \(Int(rate).padded(8))  "
        + "(\(written) events written; every one delivered: \(written == received))"
    )
  }

  struct Result {
    var operations: Int
    var elapsed: Duration
    var totalLatency: Duration
    /// User + system CPU time of this process during the measurement.
    var cpu: Duration

    func print(name: String, callers: Int) {
      let seconds = elapsed.seconds
      let rate = Double(operations) / seconds
      let mean = totalLatency.seconds / Double(max(operations, 1)) * 1000
      let cpuPerCall = cpu.seconds / Double(max(operations, 1)) * 1_000_000
      Swift.print(
        "\(name.padding(toLength: 10, withPad: " ", startingAt: 0)) \(callers.padded(8)) \(operations.padded(9)) "
          + "\(Int(rate).padded(9)) \(String(format: "%.3f", mean)) ms      \(String(format: "%.1f", cpuPerCall)) µs"
      )
    }
  }

  /// User + system CPU time this process has used so far.
  static func processCPUTime() -> Duration {
    var usage = rusage()
    getrusage(RUSAGE_SELF.rawValue, &usage)
    func duration(_ time: timeval) -> Duration {
      .seconds(Int64(time.tv_sec)) + .microseconds(Int64(time.tv_usec))
    }
    return duration(usage.ru_utime) + duration(usage.ru_stime)
  }

  static func run(
    callers: Int,
    for duration: Duration,
    _ operation: @escaping @Sendable (Int, Int) async throws -> Void
  ) async throws -> Result {
    let clock = ContinuousClock()
    let cpuBefore = processCPUTime()
    let start = clock.now
    let end = start.advanced(by: duration)
    let totals = try await withThrowingTaskGroup(of: (Int, Duration).self) { group in
      for caller in 0..<callers {
        group.addTask {
          var count = 0
          var latency = Duration.zero
          while clock.now < end {
            let before = clock.now
            try await operation(caller, count)
            latency += before.duration(to: clock.now)
            count += 1
          }
          return (count, latency)
        }
      }
      var operations = 0
      var latency = Duration.zero
      for try await (count, callerLatency) in group {
        operations += count
        latency += callerLatency
      }
      return (operations, latency)
    }
    let elapsed = start.duration(to: clock.now)
    return Result(
      operations: totals.0,
      elapsed: elapsed,
      totalLatency: totals.1,
      cpu: processCPUTime() - cpuBefore
    )
  }
}

/// Keeps the optimiser from dropping the harness's work.
@inline(never)
private func blackHole(_ key: String, _ value: String) {
  _ = (key, value)
}

extension Int {
  fileprivate func padded(_ width: Int) -> String {
    let text = String(self)
    return text.count >= width ? text : text + String(repeating: " ", count: width - text.count)
  }
}

extension Duration {
  fileprivate var seconds: Double {
    let (whole, attoseconds) = components
    return Double(whole) + Double(attoseconds) / 1e18
  }
}
