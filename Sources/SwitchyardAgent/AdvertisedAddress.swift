import SwitchyardModel

/// Which of this host's addresses to register when an instance listens on every address.
///
/// An instance that listens on `0.0.0.0` (as it does in a container) cannot register that address:
/// load-balancer nodes need one they can connect to. Like Consul's agent, the instance then takes the
/// host's only address that is not loopback, link-local or unspecified, and refuses to guess when there
/// is none or more than one.
public enum AdvertisedAddress {
  /// One address of a network interface.
  public struct Candidate: Sendable, Hashable {
    /// The interface's name, such as `eth0`.
    public var interface: String
    /// The address, as `getifaddrs` gives it (IPv4 dotted or IPv6 text).
    public var address: String

    /// Creates a candidate.
    public init(interface: String, address: String) {
      self.interface = interface
      self.address = address
    }
  }

  /// Why no address could be chosen.
  public struct Failure: Error, CustomStringConvertible {
    /// What went wrong and what to pass instead.
    public var description: String
  }

  /// The one address to register among `candidates`, of the same family as the listen address
  /// (`ipv6` for `::`).
  ///
  /// - Throws: ``Failure`` naming the interfaces when there is no usable address, or more than one.
  public static func choose(from candidates: [Candidate], ipv6: Bool) throws(Failure) -> Address {
    var usable: [(Candidate, Address)] = []
    for candidate in candidates {
      guard let address = try? Address(validating: candidate.address) else { continue }
      guard address.kind == (ipv6 ? .ipv6 : .ipv4), !address.isLoopback, !address.isUnspecified else { continue }
      guard !isLinkLocal(address) else { continue }
      if !usable.contains(where: { $0.1 == address }) { usable.append((candidate, address)) }
    }
    let family = ipv6 ? "IPv6" : "IPv4"
    switch usable.count {
    case 1:
      return usable[0].1
    case 0:
      throw Failure(
        description:
          "listening on every address, but this host has no \(family) address other than loopback and link-local "
          + "to register; pass --advertise host:port"
      )
    default:
      let list = usable.map { "\($0.1.text) (\($0.0.interface))" }.joined(separator: ", ")
      throw Failure(
        description:
          "listening on every address, and this host has several \(family) addresses: \(list); "
          + "pass --advertise host:port to say which one load balancers should use"
      )
    }
  }

  /// `169.254.0.0/16` and `fe80::/10`: usable only on one link, and never what a container registers.
  static func isLinkLocal(_ address: Address) -> Bool {
    switch address.kind {
    case .ipv4:
      return address.text.hasPrefix("169.254.")
    case .ipv6:
      let lower = address.text.lowercased()
      return ["fe8", "fe9", "fea", "feb"].contains(where: lower.hasPrefix)
    case .hostname:
      return false
    }
  }
}
