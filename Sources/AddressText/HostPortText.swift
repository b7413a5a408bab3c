/// `host:port` text: the one formatter of the package.
///
/// A module of its own, with no dependencies, so that the registration model, the etcd client (a
/// standalone library) and the HAProxy adapter can all share it without depending on each other.
public enum HostPortText {
  /// `host:port` as URLs, HTTP `Host` headers, HAProxy and etcd endpoints write it: `10.0.0.5:8080`,
  /// `backend-1:8080`, and `[::1]:8080` with brackets around an IPv6 literal (the only kind of host
  /// that holds a `:`). `host` is given without brackets.
  public static func format(host: some StringProtocol, port: Int) -> String {
    host.contains(":") ? "[\(host)]:\(port)" : "\(host):\(port)"
  }
}
