import HAProxyKit
import Logging
import SwitchyardReconcile

/// How a batch of Runtime API commands went, from HAProxy's replies.
enum CommandOutcome: Equatable {
  /// Every command was confirmed.
  case done
  /// Every command was confirmed except deletes of servers that still hold connections.
  case deletesDeferred
  /// HAProxy refused a command; a reload must put things right.
  case failed

  /// What one reply means.
  enum Reply: Equatable {
    /// HAProxy confirmed the command.
    case confirmed
    /// HAProxy refused to delete a server that still holds connections; the next pass retries.
    case deleteDeferred
    /// HAProxy refused the command.
    case refused

    /// The meaning of HAProxy's reply `error` (`nil` when it confirmed) to `command`.
    init(_ command: RuntimeCommand, _ error: HAProxyError?) {
      guard error != nil else {
        self = .confirmed
        return
      }
      if case .deleteServer = command {
        self = .deleteDeferred
      } else {
        self = .refused
      }
    }
  }

  /// The outcome of `commands` given HAProxy's reply to each (`nil` when it confirmed it). A refused
  /// delete means the server still holds connections, which the next pass retries; any other refusal
  /// fails the batch.
  init(commands: [RuntimeCommand], results: [HAProxyError?]) {
    self = .done
    for (command, error) in zip(commands, results) { add(Reply(command, error)) }
  }

  /// Takes one more reply into account.
  mutating func add(_ reply: Reply) {
    switch (self, reply) {
    case (.failed, _), (_, .confirmed): break
    case (_, .refused): self = .failed
    case (_, .deleteDeferred): self = .deletesDeferred
    }
  }
}

/// Why HAProxy reloads, as counted in `switchyard_haproxy_reloads_total`.
enum ReloadCause {
  case structure, fallback, strategy
}

extension Applier {
  /// Why the `reload` update strategy reloads.
  static let strategyReloadReason = "update strategy reload: the configuration changed"

  /// A reload slower than this is logged with its reason and what could have slowed it.
  static let slowReload: Duration = .seconds(3)

  /// The metadata of the warning about a reload that took `took`, or `nil` when it was not slow: how long
  /// it took, why it happened, and the host names HAProxy resolved while it loaded the file (libc; an
  /// unreachable resolver or a name that does not resolve is the usual cause of a slow reload).
  static func slowReloadReport(took: Duration, reason: String, desired: DesiredState) -> Logger.Metadata? {
    guard took > slowReload else { return nil }
    let hostNames = desired.backends.flatMap(\.servers).filter { !$0.isDynamic }.map(\.address.text)
    return [
      "duration": "\(took)", "reason": "\(reason)",
      "host_names_resolved_at_load": "\(hostNames.isEmpty ? "none" : hostNames.joined(separator: ","))",
    ]
  }
}
