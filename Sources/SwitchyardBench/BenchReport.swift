import Foundation
import Histogram

/// One measured figure: a plain key that carries its unit (`add_p99_ms`, `requests`, `peak_rss_mb`) and a value.
public struct Figure: Sendable, Hashable {
  /// The key, lower case with underscores, ending in its unit where it has one.
  public var key: String
  /// The value in that unit.
  public var value: Double

  /// Creates a figure.
  public init(_ key: String, _ value: Double) {
    self.key = key
    self.value = value
  }
}

/// p50/p90/p99/max of a set of latencies, in milliseconds.
public struct LatencySummary: Sendable, Hashable {
  /// How many samples.
  public var count: Int
  /// The median.
  public var p50: Double
  /// The 90th percentile.
  public var p90: Double
  /// The 99th percentile.
  public var p99: Double
  /// The largest sample.
  public var max: Double

  /// Nearest-rank percentiles of `samples` (milliseconds): the smallest sample that at least that share of
  /// the samples does not exceed. All zero for no samples.
  public init(milliseconds samples: [Double]) {
    let sorted = samples.sorted()
    count = sorted.count
    func rank(_ quantile: Double) -> Double {
      guard !sorted.isEmpty else { return 0 }
      let index = Int((quantile * Double(sorted.count)).rounded(.up)) - 1
      return sorted[Swift.min(Swift.max(index, 0), sorted.count - 1)]
    }
    p50 = rank(0.5)
    p90 = rank(0.9)
    p99 = rank(0.99)
    max = sorted.last ?? 0
  }

  /// The percentiles of a histogram of microseconds.
  public init(microseconds histogram: Histogram<UInt64>) {
    count = Int(histogram.totalCount)
    func value(_ percentile: Double) -> Double {
      histogram.totalCount == 0 ? 0 : Double(histogram.valueAtPercentile(percentile)) / 1000
    }
    p50 = value(50)
    p90 = value(90)
    p99 = value(99)
    max = histogram.totalCount == 0 ? 0 : Double(histogram.max) / 1000
  }
}

/// What one scenario measured with one update strategy.
public struct ScenarioResult: Sendable, Hashable {
  /// `convergence`, `churn`, `control`, `burst`, `scale` or `dataplane`.
  public var name: String
  /// `runtime` or `reload`.
  public var strategy: String
  /// What sets this run apart from the scenario's others, such as `idle` or `fleet 10000`.
  public var variant: String
  /// The figures, in the order they are shown.
  public var figures: [Figure]
  /// Why the scenario did not finish, if it did not.
  public var error: String?

  /// Creates a result with no figures yet.
  public init(name: String, strategy: String, variant: String = "", figures: [Figure] = []) {
    self.name = name
    self.strategy = strategy
    self.variant = variant
    self.figures = figures
  }

  /// Appends a figure.
  public mutating func add(_ key: String, _ value: Double) {
    figures.append(Figure(key, value))
  }

  /// Appends `<prefix>_p50_ms`, `_p90_ms`, `_p99_ms` and `_max_ms`.
  public mutating func add(_ prefix: String, _ summary: LatencySummary) {
    add("\(prefix)_p50_ms", summary.p50)
    add("\(prefix)_p90_ms", summary.p90)
    add("\(prefix)_p99_ms", summary.p99)
    add("\(prefix)_max_ms", summary.max)
  }

  /// The value of `key`, if measured.
  public subscript(key: String) -> Double? {
    figures.first { $0.key == key }?.value
  }
}

/// Everything one `switchyard bench` run measured, and where.
public struct BenchReport: Sendable, Hashable {
  /// When the run started, ISO 8601 in UTC.
  public var date: String
  /// The machine: kernel, CPU model, cores and memory.
  public var machine: String
  /// `etcd --version`'s version.
  public var etcdVersion: String
  /// HAProxy's version as its master reports it.
  public var haproxyVersion: String
  /// `release` or `debug`: how `switchyard` was built.
  public var build: String
  /// Whether this was a `--quick` run.
  public var quick: Bool
  /// How long the whole run took.
  public var durationSeconds: Double
  /// Each scenario's result, in the order run.
  public var scenarios: [ScenarioResult]

  /// Creates a report.
  public init(
    date: String,
    machine: String,
    etcdVersion: String,
    haproxyVersion: String,
    build: String,
    quick: Bool,
    durationSeconds: Double = 0,
    scenarios: [ScenarioResult] = []
  ) {
    self.date = date
    self.machine = machine
    self.etcdVersion = etcdVersion
    self.haproxyVersion = haproxyVersion
    self.build = build
    self.quick = quick
    self.durationSeconds = durationSeconds
    self.scenarios = scenarios
  }

  /// The report as JSON: the run's facts, then `scenarios`, each with `name`, `strategy`, `variant`, its
  /// figures as plain keys in the order measured, and `error` when it failed.
  public func json() -> String {
    var lines = ["{"]
    let header: [(String, String)] = [
      ("date", Self.jsonString(date)), ("machine", Self.jsonString(machine)),
      ("etcd_version", Self.jsonString(etcdVersion)), ("haproxy_version", Self.jsonString(haproxyVersion)),
      ("build", Self.jsonString(build)), ("quick", quick ? "true" : "false"),
      ("duration_s", Self.jsonNumber(durationSeconds)),
    ]
    for (key, value) in header { lines.append("  \(Self.jsonString(key)): \(value),") }
    lines.append("  \"scenarios\": [")
    for (index, scenario) in scenarios.enumerated() {
      var fields: [(String, String)] = [
        ("name", Self.jsonString(scenario.name)), ("strategy", Self.jsonString(scenario.strategy)),
        ("variant", Self.jsonString(scenario.variant)),
      ]
      fields += scenario.figures.map { ($0.key, Self.jsonNumber($0.value)) }
      if let error = scenario.error { fields.append(("error", Self.jsonString(error))) }
      let body = fields.map { "\(Self.jsonString($0.0)): \($0.1)" }.joined(separator: ", ")
      lines.append("    {\(body)}" + (index < scenarios.count - 1 ? "," : ""))
    }
    lines.append("  ]")
    lines.append("}")
    return lines.joined(separator: "\n") + "\n"
  }

  /// The report as Markdown: the run's facts, then one table per scenario name with a row per strategy and
  /// variant and a column per figure.
  public func markdown() -> String {
    var out = [
      "# switchyard bench\(quick ? " --quick" : "")",
      "",
      "\(date), \(build) build, \(String(format: "%.0f", durationSeconds)) s. Machine: \(machine). "
        + "etcd \(etcdVersion), HAProxy \(haproxyVersion).",
    ]
    let goals = goalsTable()
    if !goals.isEmpty { out += ["", "### Issue 11's figures, runtime and reload side by side", ""] + goals }
    let routeGoals = routeGoalsTable()
    if !routeGoals.isEmpty {
      let sizes = quick ? " (--quick sizes: a smaller fleet than the issue's; see the variants)" : ""
      out += ["", "### Issue 24's figures, routes\(sizes)", ""] + routeGoals
    }
    let bigBackendGoals = reachedTable(Self.bigBackendGoals)
    if !bigBackendGoals.isEmpty {
      out +=
        ["", "### One change inside one big backend\(quick ? " (--quick sizes, see the variant)" : "")", ""]
        + bigBackendGoals
    }
    var names: [String] = []
    for scenario in scenarios where !names.contains(scenario.name) { names.append(scenario.name) }
    for name in names {
      let rows = scenarios.filter { $0.name == name }
      var keys: [String] = []
      for figure in rows.flatMap(\.figures) where !keys.contains(figure.key) { keys.append(figure.key) }
      out += ["", "### \(name)", ""]
      out.append("| strategy | variant | " + keys.joined(separator: " | ") + " |")
      out.append("| --- | --- |" + String(repeating: " ---: |", count: keys.count))
      for row in rows {
        let cells = keys.map { key in row[key].map(Self.display) ?? "—" }
        out.append("| \(row.strategy) | \(row.variant) | " + cells.joined(separator: " | ") + " |")
      }
      for row in rows {
        if let error = row.error { out.append("\nFailed (\(row.strategy), \(row.variant)): \(error)") }
      }
    }
    return out.joined(separator: "\n") + "\n"
  }

  /// One row of the goals table: where its figure comes from and what it must reach.
  private struct Goal: Sendable {
    var figure: String
    var goal: String
    var unit: String
    /// The value for a strategy, from that strategy's scenario with this name and variant prefix.
    var value: @Sendable (_ of: (_ name: String, _ variantPrefix: String) -> ScenarioResult?) -> Double?
  }

  private static let goals: [Goal] = [
    Goal(figure: "keep-alive req/s, runtime-added vs file servers", goal: "≥ 0.95×", unit: "×") {
      $0("dataplane", "")?["runtime_vs_file"]
    },
    Goal(figure: "put → first request served, p99 (idle)", goal: "≤ 10 ms", unit: " ms") {
      $0("convergence", "idle")?["add_p99_ms"]
    },
    Goal(figure: "put → first request served, p99 (change 50 ms before)", goal: "≤ 10 ms", unit: " ms") {
      $0("convergence", "change")?["add_p99_ms"]
    },
    Goal(figure: "delete → no new request, p99 (idle)", goal: "≤ 10 ms", unit: " ms") {
      $0("convergence", "idle")?["remove_p99_ms"]
    },
    Goal(figure: "delete → no new request, p99 (change 50 ms before)", goal: "≤ 10 ms", unit: " ms") {
      $0("convergence", "change")?["remove_p99_ms"]
    },
    Goal(figure: "one put → server in HAProxy, large fleet, p99", goal: "≤ 10 ms", unit: " ms") {
      $0("scale", "")?["change_add_p99_ms"]
    },
    Goal(figure: "one delete → server out of HAProxy, large fleet, p99", goal: "≤ 10 ms", unit: " ms") {
      $0("scale", "")?["change_remove_p99_ms"]
    },
    Goal(figure: "burst of adds on the small fleet → all in", goal: "≤ 300 ms", unit: " ms") {
      $0("burst", "small")?["add_all_in_ms"]
    },
    Goal(figure: "burst of adds on the large fleet → all in", goal: "≤ 1,000 ms", unit: " ms") {
      $0("burst", "large")?["add_all_in_ms"]
    },
    Goal(figure: "burst of deletes on the large fleet → all gone", goal: "≤ 1,000 ms", unit: " ms") {
      $0("burst", "large")?["remove_all_gone_ms"]
    },
    Goal(figure: "controller CPU, large fleet, nothing changing", goal: "≤ 1 %", unit: " %") {
      $0("scale", "")?["idle_cpu_percent"]
    },
    Goal(figure: "req/s under churn vs no churn", goal: "≥ 0.9×", unit: "×") { of in
      guard let churn = of("churn", "")?["requests_per_s"], let control = of("control", "")?["requests_per_s"],
        control > 0
      else { return nil }
      return churn / control
    },
    Goal(figure: "failed requests under churn", goal: "0", unit: "") { $0("churn", "")?["failed_requests"] },
    Goal(figure: "first sync of the large fleet", goal: "≤ 2,000 ms", unit: " ms") {
      $0("scale", "")?["first_sync_ms"]
    },
    Goal(figure: "controller peak RSS, large fleet", goal: "≤ 150 MB", unit: " MB") {
      $0("scale", "")?["peak_rss_mb"]
    },
  ]

  /// The issue's figures with the runtime and the reload strategy's values side by side, and the goal; rows
  /// whose scenarios did not run are left out.
  func goalsTable() -> [String] {
    func value(_ goal: Goal, _ strategy: String) -> Double? {
      goal.value { name, variantPrefix in
        scenarios.first {
          $0.name == name && $0.strategy == strategy && $0.error == nil && $0.variant.hasPrefix(variantPrefix)
        }
      }
    }
    var rows: [String] = []
    for goal in Self.goals {
      let runtime = value(goal, "runtime")
      let reload = value(goal, "reload")
      guard runtime != nil || reload != nil else { continue }
      let cells = [runtime, reload].map { $0.map { Self.display($0) + goal.unit } ?? "—" }
      rows.append("| \(goal.figure) | \(cells[0]) | \(cells[1]) | \(goal.goal) |")
    }
    guard !rows.isEmpty else { return [] }
    return ["| figure | runtime | reload | must reach |", "| --- | ---: | ---: | --- |"] + rows
  }

  /// A figure for people: whole numbers with thousands separators, others with two or three digits.
  public static func display(_ value: Double) -> String {
    guard value.isFinite else { return "\(value)" }
    let magnitude = abs(value)
    if magnitude >= 100 || value == value.rounded() {
      let whole = Int(value.rounded())
      let digits = String(abs(whole))
      var grouped = ""
      for (index, character) in digits.enumerated() {
        if index > 0 && (digits.count - index) % 3 == 0 { grouped.append(",") }
        grouped.append(character)
      }
      return (whole < 0 ? "-" : "") + grouped
    }
    return String(format: magnitude >= 10 ? "%.1f" : "%.2f", value)
  }

  static func jsonNumber(_ value: Double) -> String {
    guard value.isFinite else { return "null" }
    if value == value.rounded() && abs(value) < 1e15 { return String(Int64(value)) }
    return String(format: "%.3f", value)
  }

  static func jsonString(_ text: String) -> String {
    var out = "\""
    for scalar in text.unicodeScalars {
      switch scalar {
      case "\"": out += "\\\""
      case "\\": out += "\\\\"
      case "\n": out += "\\n"
      case "\r": out += "\\r"
      case "\t": out += "\\t"
      case let control where control.value < 0x20: out += String(format: "\\u%04x", control.value)
      default: out.unicodeScalars.append(scalar)
      }
    }
    return out + "\""
  }
}
