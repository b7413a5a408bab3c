import ArgumentParser
import EtcdClient
import Foundation
import Logging
import SwitchyardModel
import SwitchyardTestSupport
import Testing

@testable import SwitchyardCLI

/// The commands against a real etcd, one member started for each test.
extension RouteCommandTests {
  // MARK: - Against etcd

  /// Runs `body` with a one-member etcd started for the test and a client of its own; the member is
  /// stopped however `body` ends.
  func withEtcd(_ body: (_ endpoint: String, _ client: EtcdClient) async throws -> Void) async throws {
    try await EtcdCluster.with(members: 1) { cluster in
      var configuration = try EtcdConfiguration(endpoints: cluster.endpoints.joined(separator: ","))
      configuration.requestTimeout = .seconds(5)
      configuration.dialTimeout = .seconds(1)
      var logger = Logger(label: "route-command-tests")
      logger.logLevel = .critical
      try await withEtcdClient(configuration: configuration, logger: logger) { client in
        try await body(cluster.endpoints[0], client)
      }
    }
  }

  func value(_ client: EtcdClient, _ key: String) async throws -> String? {
    try await client.value(of: key).map { String(decoding: $0.value, as: UTF8.self) }
  }

  @Test("route set, ls, an invalid route written by hand, a shadowed route, rm", .timeLimit(.minutes(1)))
  func routesInEtcd() async throws {
    try await withEtcd { endpoint, client in
      let set = try RouteSetCommand.parse([
        "api", "--service", "api", "--host", "api.example.com", "--path-prefix", "/api/", "--strip-prefix",
        "--etcd-endpoints", endpoint,
      ])
      let written = try await set.execute(client: client)
      #expect(written[0].hasPrefix("route api created at etcd revision"), "\(written)")
      #expect(written.contains { $0.contains("answers 503 until one registers") }, "\(written)")
      #expect(
        try await value(client, "/switchyard/routes/api")
          == #"{"hosts":["api.example.com"],"path_prefix":"/api","service":"api","strip_prefix":true}"#)

      let registration = try Registration(address: Address(validating: "127.0.0.1"), port: 8080)
      try await client.put("/services/api/a1", value: registration.encoded())
      let again = try await set.execute(client: client)
      #expect(again[0].hasPrefix("route api replaced"), "\(again)")
      #expect(!again.contains { $0.contains("503") }, "\(again)")

      _ = try await RouteSetCommand.parse(["web", "--service", "backend"]).execute(client: client)
      _ = try await RouteSetCommand.parse(["zz", "--service", "api"]).execute(client: client)
      try await client.put("/switchyard/routes/bad", value: #"{"service":"api","path_prefix":"/a\n\u001b"}"#)

      let listed = try await RouteListCommand.parse([]).execute(client: client)
      let text = listed.joined(separator: "\n")
      #expect(listed.contains { $0.hasPrefix("api ") && $0.contains("api.example.com") && $0.hasSuffix("ok") })
      #expect(listed.contains { $0.hasPrefix("web ") && $0.hasSuffix("503: no instances") }, "\(text)")
      #expect(listed.contains { $0.hasPrefix("zz ") && $0.hasSuffix("shadowed by web") }, "\(text)")
      #expect(listed.contains { $0.hasPrefix("  /switchyard/routes/bad: field \"path_prefix\"") }, "\(text)")
      #expect(!text.contains("\u{1B}"))

      let json = try await RouteListCommand.parse(["--json"]).execute(client: client)
      let document = try JSONDecoder().decode(RouteListing.Document.self, from: Data(json.joined().utf8))
      #expect(document.routes.map(\.name) == ["api", "web", "zz"])
      #expect(document.invalid.map(\.key) == ["/switchyard/routes/bad"])
      #expect(document.conflicts.map(\.loser) == ["zz"])

      // The command as the CLI runs it, with the etcd flags.
      try await RouteListCommand.parse(["--etcd-endpoints", endpoint]).run()

      let removed = try await RouteRemoveCommand.parse(["zz"]).execute(client: client)
      #expect(removed[0].hasPrefix("route zz removed at etcd revision") && removed[0].hasSuffix("it was * / -> api"))
      let none = try await RouteRemoveCommand.parse(["zz"]).execute(client: client)
      #expect(none[0].hasPrefix("route zz: there was none"))
      #expect(try await value(client, "/switchyard/routes/zz") == nil)
      let bad = try await RouteRemoveCommand.parse(["bad"]).execute(client: client)
      #expect(bad[0].contains("it was an invalid entry"), "\(bad)")
    }
  }

  @Test("service set merges with what is in etcd; show, ls and rm", .timeLimit(.minutes(1)))
  func servicesInEtcd() async throws {
    try await withEtcd { endpoint, client in
      let key = "/switchyard/services/api"
      let first = try await ServiceSetCommand.parse(["api", "--balance", "leastconn"]).execute(client: client)
      #expect(first[0].hasPrefix("service api: settings written at etcd revision"), "\(first)")
      #expect(first.contains { $0.contains("no registered instance") })
      _ = try await ServiceSetCommand.parse(["api", "--timeout-server", "5s"]).execute(client: client)
      let merged = try settings(try #require(try await value(client, key)))
      #expect(merged.balance == .leastconn)
      #expect(merged.timeoutServer == .seconds(5))

      let unchanged = try await ServiceSetCommand.parse(["api", "--balance", "leastconn"]).execute(client: client)
      #expect(unchanged[0].contains("settings unchanged"), "\(unchanged)")

      // tcp without a port: refused, nothing written.
      let before = try #require(try await client.value(of: key))
      await #expect(throws: ValidationError.self) {
        _ = try await ServiceSetCommand.parse(["api", "--mode", "tcp"]).execute(client: client)
      }
      #expect(try await client.value(of: key)?.modRevision == before.modRevision)

      // Invalid settings are replaced only with --reset.
      try await client.put("/switchyard/services/odd", value: #"{"balance":"fast"}"#)
      do {
        _ = try await ServiceSetCommand.parse(["odd", "--retries", "1"]).execute(client: client)
        Issue.record("merged into invalid settings")
      } catch let error as OperatorError {
        #expect(error.description.contains("are invalid"), "\(error)")
        #expect(error.description.contains("--reset"), "\(error)")
      }
      #expect(try await value(client, "/switchyard/services/odd") == #"{"balance":"fast"}"#)
      _ = try await ServiceSetCommand.parse(["odd", "--retries", "1", "--reset"]).execute(client: client)
      #expect(try await value(client, "/switchyard/services/odd") == #"{"retries":1}"#)

      let registration = try Registration(address: Address(validating: "127.0.0.1"), port: 8080)
      try await client.put("/services/api/a1", value: registration.encoded())
      let shown = try await ServiceShowCommand.parse(["api", "--json"]).execute(client: client)
      let report = try JSONDecoder().decode(ServiceReport.Document.self, from: Data(shown.joined().utf8))
      #expect(report.instances == 1)
      #expect(report.settings == #"{"balance":"leastconn","timeout_server":"5s"}"#)
      #expect(report.effective["balance"] == "leastconn" && report.sources["balance"] == "etcd")
      #expect(report.effective["timeoutServer"] == "5s")
      #expect(report.effective["retries"] == "3" && report.sources["retries"] == "default")
      let text = try await ServiceShowCommand.parse(["api"]).execute(client: client)
      #expect(text[0] == "service api: 1 instance registered (etcd revision \(report.revision))", "\(text)")

      let listed = try await ServiceListCommand.parse([]).execute(client: client)
      #expect(listed.contains { $0.hasPrefix("api ") && $0.contains("leastconn") && $0.hasSuffix("etcd") }, "\(listed)")
      #expect(listed.contains { $0.hasPrefix("odd ") && $0.hasSuffix("etcd") }, "\(listed)")
      try await ServiceShowCommand.parse(["api", "--etcd-endpoints", endpoint]).run()

      let removed = try await ServiceRemoveCommand.parse(["api"]).execute(client: client)
      #expect(removed[0].contains("settings removed"), "\(removed)")
      #expect(try await value(client, key) == nil)
      let none = try await ServiceRemoveCommand.parse(["api"]).execute(client: client)
      #expect(none[0].contains("had no settings"), "\(none)")
    }
  }

  @Test("service set writes nothing when the key changes between its read and its write", .timeLimit(.minutes(1)))
  func serviceSetConflict() async throws {
    try await withEtcd { _, client in
      let key = "/switchyard/services/api"
      // The key changes after the read.
      _ = try await ServiceSetCommand.parse(["api", "--balance", "leastconn"]).execute(client: client)
      let command = try ServiceSetCommand.parse(["api", "--timeout-server", "5s"])
      do {
        _ = try await command.execute(client: client) {
          try await client.put(key, value: #"{"maxconn":5}"#)
        }
        Issue.record("wrote over a change made after the read")
      } catch let error as OperatorError {
        #expect(error.description.contains("changed in etcd after this command read them"), "\(error)")
        #expect(error.description.contains("nothing was written"), "\(error)")
      }
      #expect(try await value(client, key) == #"{"maxconn":5}"#)

      // The key appears after a read that found none.
      let other = "/switchyard/services/web"
      do {
        _ = try await ServiceSetCommand.parse(["web", "--balance", "source"]).execute(client: client) {
          try await client.put(other, value: #"{"retries":2}"#)
        }
        Issue.record("wrote over settings created after the read")
      } catch let error as OperatorError {
        #expect(error.description.contains("nothing was written"), "\(error)")
      }
      #expect(try await value(client, other) == #"{"retries":2}"#)

      // Run again, it merges into the new value.
      _ = try await command.execute(client: client)
      #expect(try await value(client, key) == #"{"maxconn":5,"timeout_server":"5s"}"#)
    }
  }
}
