import NIOCore
import NIOPosix

extension AdvertisedAddress {
  /// Every address of this host's network interfaces (`getifaddrs`); empty when they cannot be read.
  public static func interfaceAddresses() -> [Candidate] {
    ((try? System.enumerateDevices()) ?? []).compactMap { device in
      device.address?.ipAddress.map { Candidate(interface: device.name, address: $0) }
    }
  }
}
