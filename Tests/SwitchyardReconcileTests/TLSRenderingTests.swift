import Foundation
import SwitchyardModel
import SwitchyardReconcile
import Testing

/// The HTTPS listener, the ACME challenge rules and the routes' TLS options as rendered (the same
/// configuration runs against real HAProxy in TLSServingTests).
@Suite struct TLSRenderingTests {
  static func settings(https: String? = "127.0.0.1:8443") throws -> NodeSettings {
    try NodeSettings(
      nodeID: "lb1", listen: HostPort(parsing: "127.0.0.1:8001"), httpsListen: https.map { try HostPort(parsing: $0) },
      stats: HostPort(parsing: "127.0.0.1:8401"), adminSocketPath: "/var/lib/switchyard/lb1/admin.sock")
  }

  static let desired = DesiredState(revision: 1, services: [.backend], instances: [])

  static func route(_ name: String, _ json: String) throws -> Route {
    try Route.parse(key: Array("\(Route.root)\(name)".utf8), value: Array(json.utf8))
  }

  @Test func thePathsOfTheTLSFilesSitBesideTheAdminSocket() throws {
    let settings = try Self.settings()
    #expect(settings.tlsDirectoryPath == "/var/lib/switchyard/lb1/tls")
    #expect(settings.defaultCertificatePath == "/var/lib/switchyard/lb1/tls/default.pem")
    #expect(settings.crtListPath == "/var/lib/switchyard/lb1/tls/crt-list")
    #expect(settings.certificatePath(for: "api") == "/var/lib/switchyard/lb1/tls/certs/api.pem")
    #expect(settings.acmeMapPath == "/var/lib/switchyard/lb1/acme.map")
    #expect(try Self.settings(https: nil).httpsListen == nil)
    #expect(throws: SettingsError.self) { try Self.settings(https: "127.0.0.1:8001") }
  }

  @Test func withHTTPSTheFrontendBindsTLSWithTheDefaultCertificateFirst() throws {
    let text = ConfigRenderer.render(Self.desired, settings: try Self.settings()).text
    #expect(
      text.contains(
        "  bind 127.0.0.1:8443 ssl crt /var/lib/switchyard/lb1/tls/default.pem crt-list /var/lib/switchyard/lb1/tls/crt-list alpn h2,http/1.1\n"
      ))
    #expect(text.contains("  http-request set-header X-Forwarded-Proto https if { ssl_fc }\n"))
    #expect(text.contains("  http-request set-header X-Forwarded-Proto http if !{ ssl_fc }\n"))
    #expect(text.contains("redirect location https://%[var(txn.sy_host)]:8443%[pathq] code 308"))
    let plain = ConfigRenderer.render(Self.desired, settings: try Self.settings(https: nil)).text
    #expect(!plain.contains("ssl") && !plain.contains("X-Forwarded-Proto") && !plain.contains("Strict-Transport"))
    // The ACME rules are there either way, before any routing rule.
    for config in [text, plain] {
      let lines = config.split(separator: "\n")
      let acme = try #require(lines.firstIndex { $0.contains("map(/var/lib/switchyard/lb1/acme.map)") })
      let answer = try #require(lines.firstIndex { $0.contains("lf-string \"%[var(txn.sy_acme)]\"") })
      let routing = try #require(lines.firstIndex { $0.contains("txn.sy_route") })
      #expect(acme < answer && answer < routing)
    }
  }

  @Test func onPort443TheRedirectNamesNoPort() throws {
    let text = ConfigRenderer.render(Self.desired, settings: try Self.settings(https: "0.0.0.0:443")).text
    #expect(text.contains("redirect location https://%[var(txn.sy_host)]%[pathq] code 308"))
  }

  @Test func routeOptionsExtendTheMapValueOnlyWhenARouteHasOne() throws {
    let routes = [
      try Self.route("plain", #"{"service":"backend","hosts":["plain.test"],"path_prefix":"/p","strip_prefix":true}"#),
      try Self.route("redirect", #"{"service":"backend","hosts":["r.test"],"redirect_https":true}"#),
      try Self.route(
        "hsts", #"{"service":"backend","hosts":["h.test"],"hsts_max_age":31536000,"hsts_include_subdomains":true}"#),
      try Self.route("both", #"{"service":"backend","hosts":["b.test"],"redirect_https":true,"hsts_max_age":0}"#),
    ]
    let table = RouteTable(routes: routes, httpBackends: [.backend: "be_backend"], tcpServices: [])
    #expect(
      table.mapText == """
        b.test/ be_backend:0:r:0
        h.test/ be_backend:0:s:31536000
        plain.test/p/ be_backend:1
        r.test/ be_backend:0:r:-

        """)
    // Backends a reload removes keep the options.
    #expect(table.redirecting(["be_backend"]).entries.first?.value == "sy_unavailable:0:r:0")
  }

  @Test func challengeLinesAreChecked() throws {
    let thumbprint = String(repeating: "A", count: 42) + "_"
    #expect(
      try ACMEChallengeMap.line(token: "tok-1", keyAuthorization: "tok-1.\(thumbprint)") == "tok-1 tok-1.\(thumbprint)")
    for (token, authorization) in [
      ("", ".\(thumbprint)"), ("a b", "a b.\(thumbprint)"), ("tok", "other.\(thumbprint)"), ("tok", "tok.short"),
      ("tok", "tok.\(thumbprint)\n"), (String(repeating: "t", count: 129), "x"), ("tok;", "tok;.\(thumbprint)"),
    ] {
      #expect(throws: SettingsError.self) { try ACMEChallengeMap.line(token: token, keyAuthorization: authorization) }
    }
  }
}
