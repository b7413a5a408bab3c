import Prometheus
import SwitchyardModel

extension ControllerMetrics {
  /// Publishes the certificates a node serves: `switchyard_certificate_not_after_seconds{name}` (when each
  /// served certificate expires, seconds since 1970, for alerts on `… - time() < 14 * 86400`) and
  /// `switchyard_certificates{state}` (served, default, invalid, pending). Names are validated certificate
  /// names; a name that went away loses its series.
  func setCertificates(_ certificates: [NodeSnapshot.Certificate]) {
    var byState: [String: Int] = ["served": 0, "default": 0, "invalid": 0, "pending": 0]
    var expiries: [String: Double] = [:]
    for certificate in certificates {
      byState[certificate.state, default: 0] += 1
      if let notAfter = certificate.notAfter { expiries[certificate.name] = Double(notAfter) }
    }
    certificateGauges.withLock { gauges in
      for (state, count) in byState {
        let key = "state/\(state)"
        let gauge =
          gauges[key]
          ?? registry.makeGauge(
            descriptor: Self.certificateDescriptor(
              "switchyard_certificates", "Certificates in etcd as this node serves them, by state."),
            labels: [("state", state)])
        gauges[key] = gauge
        gauge.set(to: Double(count))
      }
      for (key, gauge) in gauges where key.hasPrefix("name/") && expiries[String(key.dropFirst(5))] == nil {
        registry.unregisterGauge(gauge)
        gauges[key] = nil
      }
      for (name, notAfter) in expiries {
        let key = "name/\(name)"
        let gauge =
          gauges[key]
          ?? registry.makeGauge(
            descriptor: Self.certificateDescriptor(
              "switchyard_certificate_not_after_seconds",
              "When each certificate this node serves expires, in seconds since 1970."),
            labels: [("name", name)])
        gauges[key] = gauge
        gauge.set(to: notAfter)
      }
    }
  }

  fileprivate static func certificateDescriptor(_ name: String, _ help: String) -> MetricNameDescriptor {
    MetricNameDescriptor(metricName: name, unitName: "", helpText: help)
  }
}
