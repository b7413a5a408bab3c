import Synchronization

/// The addresses besides loopback that the lab's HTTP client may send traffic to: the hosts of the network
/// labs that tests build, each a /24 subnet (such as `10.213.7`) registered for as long as its lab lives.
public enum LabAddresses {
  private static let subnets = Mutex<Set<String>>([])

  /// Allows the hosts `<subnet>.1` to `<subnet>.254`.
  public static func add(subnet: String) {
    _ = subnets.withLock { $0.insert(subnet) }
  }

  /// Forgets a subnet that ``add(subnet:)`` allowed.
  public static func remove(subnet: String) {
    _ = subnets.withLock { $0.remove(subnet) }
  }

  /// Whether `address` is a host of an allowed subnet.
  public static func contains(_ address: String) -> Bool {
    let parts = address.split(separator: ".", omittingEmptySubsequences: false)
    guard parts.count == 4, let last = Int(parts[3]), (1...254).contains(last) else { return false }
    let subnet = parts[0..<3].joined(separator: ".")
    return subnets.withLock { $0.contains(subnet) }
  }
}
