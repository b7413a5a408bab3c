import Logging
import SwitchyardModel

/// What a controller warns about at start-up: an admin endpoint or stats page that other machines can
/// reach without protection. Pure: the addresses and flags in, the warnings out.
enum ExposureCheck {
  /// One warning: a message for people and metadata for log searches.
  struct Warning: Sendable {
    /// What is exposed, and how to fix it.
    var message: String
    /// `listen.address` and `listen.kind` (`admin` or `stats`).
    var metadata: Logger.Metadata
  }

  /// The warnings for a controller whose admin server listens on `admin` (with TLS or not) and whose stats
  /// page listens on `stats` (with a password or not). Loopback addresses (``Address/isLoopback``) are
  /// never warned about; every other address is, including `0.0.0.0`, `::` and host names.
  static func warnings(admin: HostPort, adminTLS: Bool, stats: HostPort, statsAuth: Bool) -> [Warning] {
    var warnings: [Warning] = []
    if !admin.address.isLoopback, !adminTLS {
      warnings.append(
        Warning(
          message: """
            --admin \(admin) is not a loopback address and the admin endpoints have no TLS: /state and /metrics \
            go over the network in clear. Bind --admin to 127.0.0.1, or give --admin-tls-cert and --admin-tls-key.
            """,
          metadata: ["listen.address": "\(admin)", "listen.kind": "admin"]
        )
      )
    }
    if !stats.address.isLoopback, !statsAuth {
      warnings.append(
        Warning(
          message: """
            --stats \(stats) is not a loopback address and the stats page has no password: anyone who reaches \
            it sees every backend and server. Bind --stats to 127.0.0.1, or give --stats-auth USER:PASSWORDFILE.
            """,
          metadata: ["listen.address": "\(stats)", "listen.kind": "stats"]
        )
      )
    }
    return warnings
  }
}
