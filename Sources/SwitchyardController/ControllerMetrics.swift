import Prometheus
import Synchronization

/// The controller's Prometheus metrics, in a registry of their own (no global state, so several
/// controllers can live in one process).
public final class ControllerMetrics: Sendable {
  /// The registry that `/metrics` prints.
  public let registry: PrometheusCollectorRegistry

  let reconcilesOK: Counter
  let reconcilesFailed: Counter
  let runtimeCommands: Counter
  let runtimeCommandFailures: Counter
  let reloadsStructural: Counter
  let reloadsFallback: Counter
  let reloadsStrategy: Counter
  let deletesDeferred: Counter
  let followUpPasses: Counter
  let incrementalPasses: Counter
  let haproxyRestarts: Counter
  let configRejected: Counter
  let invalidEntries: Gauge
  let overrides: Gauge
  let routeUpdates: Counter
  let routes: Gauge
  let routeConflicts: Gauge
  let routeEntries: Gauge
  let etcdOutages: Counter
  let etcdConnected: Gauge
  let watchCurrent: Gauge
  let appliedRevision: Gauge
  let haproxyRunning: Gauge
  let eventToApplied: DurationHistogram
  private let serverGauges = Mutex<[String: Gauge]>([:])
  /// The certificate series by `state/<state>` and `name/<name>` (``setCertificates(_:)``).
  let certificateGauges = Mutex<[String: Gauge]>([:])

  /// Creates the metrics in a new registry.
  public init() {
    let registry = PrometheusCollectorRegistry()
    self.registry = registry
    func counter(_ name: String, _ labels: [(String, String)] = [], _ help: String) -> Counter {
      registry.makeCounter(descriptor: Self.descriptor(name, help), labels: labels)
    }
    func gauge(_ name: String, _ help: String) -> Gauge {
      registry.makeGauge(descriptor: Self.descriptor(name, help), labels: [])
    }
    let reconciles = "switchyard_reconciles_total"
    reconcilesOK = counter(reconciles, [("result", "ok")], "Reconcile passes, by result.")
    reconcilesFailed = counter(reconciles, [("result", "failed")], "Reconcile passes, by result.")
    runtimeCommands = counter("switchyard_runtime_commands_total", [], "Runtime API commands sent to HAProxy.")
    runtimeCommandFailures = counter(
      "switchyard_runtime_command_failures_total",
      [],
      "Runtime API commands that HAProxy did not confirm."
    )
    let reloads = "switchyard_haproxy_reloads_total"
    reloadsStructural = counter(reloads, [("reason", "structure")], "Seamless HAProxy reloads, by reason.")
    reloadsFallback = counter(reloads, [("reason", "fallback")], "Seamless HAProxy reloads, by reason.")
    reloadsStrategy = counter(reloads, [("reason", "update-strategy")], "Seamless HAProxy reloads, by reason.")
    followUpPasses = counter(
      "switchyard_followup_passes_total", [],
      "Passes that only followed up on draining servers, asking HAProxy and not etcd."
    )
    incrementalPasses = counter(
      "switchyard_incremental_passes_total", [],
      "Passes that rebuilt, observed and planned only the services a watch event touched."
    )
    deletesDeferred = counter(
      "switchyard_server_deletes_deferred_total", [],
      "del server refused because the server still had connections (active or idle); tried again on the next pass."
    )
    haproxyRestarts = counter("switchyard_haproxy_restarts_total", [], "Times HAProxy died and was started again.")
    configRejected = counter(
      "switchyard_config_rejected_total",
      [],
      "Rendered configurations that failed validation and were not installed."
    )
    invalidEntries = gauge(
      "switchyard_invalid_entries",
      "Entries under /services/ or /switchyard/ (overrides, routes, service settings) skipped as invalid.")
    overrides = gauge("switchyard_overrides", "Operators' overrides (drain, maint) in force.")
    routeUpdates = counter(
      "switchyard_route_updates_total", [], "Routes map replacements sent to HAProxy through the Runtime API.")
    routes = gauge("switchyard_routes", "Valid routes in etcd (in force or not).")
    routeConflicts = gauge(
      "switchyard_route_conflicts",
      "Host and path claims a route loses to another, plus routes this node cannot use (a tcp service).")
    routeEntries = gauge("switchyard_route_entries", "Entries of the routes map HAProxy matches requests against.")
    etcdOutages = counter(
      "switchyard_etcd_outages_total", [], "Times the node lost word from etcd for longer than its watch limit.")
    etcdConnected = gauge("switchyard_etcd_connected", "1 when the last etcd request succeeded.")
    watchCurrent = gauge("switchyard_watch_current", "1 when the etcd watch has given word recently.")
    appliedRevision = gauge("switchyard_applied_revision", "The etcd revision HAProxy was last brought in step with.")
    haproxyRunning = gauge("switchyard_haproxy_running", "1 when HAProxy runs.")
    eventToApplied = registry.makeDurationHistogram(
      descriptor: Self.descriptor(
        "switchyard_event_to_applied_seconds", "Time from a watch event to HAProxy serving the change."),
      labels: [],
      buckets: [
        .milliseconds(5), .milliseconds(10), .milliseconds(25), .milliseconds(50), .milliseconds(100),
        .milliseconds(250), .milliseconds(500), .seconds(1), .milliseconds(2500), .seconds(5), .seconds(10),
      ]
    )
  }

  /// A metric's full name and help text (the name is given whole: no namespace, subsystem or unit to add).
  private static func descriptor(_ name: String, _ help: String) -> MetricNameDescriptor {
    MetricNameDescriptor(metricName: name, unitName: "", helpText: help)
  }

  /// Sets the number of servers per service and state; states not given are set to 0.
  func setServers(_ counts: [String: [String: Int]], services: [String]) {
    serverGauges.withLock { gauges in
      for service in services {
        for state in ["up", "down", "drain", "maint"] {
          let key = "\(service)/\(state)"
          let gauge =
            gauges[key]
            ?? registry.makeGauge(
              descriptor: Self.descriptor("switchyard_servers", "Servers in HAProxy, by service and state."),
              labels: [("service", service), ("state", state)]
            )
          gauges[key] = gauge
          gauge.set(to: Double(counts[service]?[state] ?? 0))
        }
      }
    }
  }

  /// The metrics in Prometheus' text format.
  public func exposition() -> String { registry.emitToString() }
}
