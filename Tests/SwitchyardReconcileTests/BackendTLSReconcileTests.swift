import SwitchyardModel
import Testing

@testable import SwitchyardReconcile

/// Backends registered with `"tls": true`: their server keywords, how a change of kind reaches HAProxy, and
/// how a node without a backend CA reports them.
@Suite struct BackendTLSReconcileTests {
  static let haproxy30 = RuntimeFeatures(major: 3, minor: 0)
  static let caPath = "/etc/switchyard/backend-ca.pem"
  static let settings = try! NodeSettings(
    nodeID: "lb1", listen: HostPort(parsing: "127.0.0.1:8001"), stats: HostPort(parsing: "127.0.0.1:8401"),
    adminSocketPath: "/var/lib/switchyard/lb1/admin.sock", backendCAPath: caPath)

  static func instance(
    _ id: String, _ address: String = "127.0.0.1", port: Int = 9443, tls: Bool = true, name: String? = nil
  ) -> ServiceInstance {
    let registration = try! Registration(
      address: Address(validating: address), port: port, tls: tls, tlsServerName: name)
    return ServiceInstance(
      key: RegistrationKey(service: .backend, instance: try! InstanceID(validating: id)), registration: registration,
      modRevision: 1)
  }

  static func observed(_ instance: ServiceInstance, usesTLS: Bool?) -> ObservedServer {
    ObservedServer(
      name: instance.key.instance.rawValue, address: instance.registration.address.text,
      port: instance.registration.port, weight: instance.registration.weight, adminState: .ready, usesTLS: usesTLS)
  }

  func plan(
    _ instances: [ServiceInstance], observed: [ObservedServer], features: RuntimeFeatures = .haproxy26
  ) -> Plan {
    let desired = Fixture.desired(instances)
    let rendered = ConfigRenderer.render(desired, settings: Self.settings)
    return Planner.plan(
      desired: desired, rendered: rendered, runningStructure: rendered.structure,
      observed: ObservedState(backends: ["svc_backend": observed]), settings: Self.settings, features: features)
  }

  @Test func serverLinesVerifyAgainstTheNodesCA() throws {
    let desired = Fixture.desired([
      Self.instance("plain", port: 9001, tls: false), Self.instance("tls-a", port: 9443),
      Self.instance("tls-b", port: 9444, name: "api.example.com"),
      Self.instance("tls-host", "api.internal", port: 9445),
    ])
    let rendered = ConfigRenderer.render(desired, settings: Self.settings)
    try Fixture.expectGolden(rendered.text, "backend-tls.cfg")
    let lines = rendered.text.split(separator: "\n").map(String.init)
    let server = { (name: String) in lines.first { $0.hasPrefix("  server \(name) ") } ?? "" }
    #expect(!server("plain").contains("ssl"))
    #expect(server("tls-a").hasSuffix("ssl verify required ca-file \(Self.caPath) check-ssl"))
    #expect(
      server("tls-b").hasSuffix(
        "ssl verify required ca-file \(Self.caPath) check-ssl sni str(api.example.com) verifyhost api.example.com"
          + " check-sni api.example.com"))
    #expect(!rendered.text.contains("verify none"))
    // Every backend loads the CA file, so `add server … ca-file` finds it loaded.
    #expect(
      rendered.text.contains(
        "backend svc_backend\n  balance roundrobin\n  option httpchk GET /\n  default-server ca-file \(Self.caPath)\n"))
    // A host-name server's TLS keywords are in the structure (a change reloads); an IP server's are not.
    #expect(rendered.structure.contains("server tls-host api.internal:9445"))
    #expect(rendered.structure.contains("ca-file \(Self.caPath) check-ssl init-addr"))
    #expect(!rendered.structure.contains("server tls-a"))
    // Without a CA, nothing: the line and no ssl keyword for plain servers.
    let plain = ConfigRenderer.render(Fixture.desired([Self.instance("plain", tls: false)]), settings: Fixture.settings)
    #expect(!plain.text.contains("ca-file"))
  }

  @Test func addServerCarriesTheTLSKeywords() {
    let a = Self.instance("a", name: "a.example")
    let result = plan([a], observed: [])
    guard case .addServer(_, _, _, let options) = result.commands.first else {
      Issue.record("no add server: \(result.commands)")
      return
    }
    let line = options.joined(separator: " ")
    #expect(
      line.contains("ssl verify required ca-file \(Self.caPath) check-ssl sni str(a.example) verifyhost a.example"))
    #expect(line.contains("check inter"))
  }

  @Test func sameKindChangesNothing() {
    let a = Self.instance("a")
    #expect(plan([a], observed: [Self.observed(a, usesTLS: true)]).isEmpty)
    let p = Self.instance("p", tls: false)
    #expect(plan([p], observed: [Self.observed(p, usesTLS: false)]).isEmpty)
    // HAProxy did not say: no change is made up.
    #expect(plan([a], observed: [Self.observed(a, usesTLS: nil)]).isEmpty)
  }

  @Test func plainToTLSDrainsThenReplacesOn26() {
    let before = Self.instance("a", tls: false)
    let after = Self.instance("a")
    let ref = ServerRef(backend: "svc_backend", server: "a")
    let first = plan([after], observed: [Self.observed(before, usesTLS: false)])
    #expect(first.commands == [.setState(ref, .drain)])
    #expect(first.draining == [ref])
    var drained = Self.observed(before, usesTLS: false)
    drained.adminState = .drain
    let second = plan([after], observed: [drained])
    #expect(second.commands.count == 5)
    #expect(second.commands.prefix(2) == [.setState(ref, .maint), .deleteServer(ref)])
    guard case .addServer(_, _, _, let options) = second.commands[2] else {
      Issue.record("no add server: \(second.commands)")
      return
    }
    #expect(options.contains("ssl") && options.contains("verify") && options.contains("required"))
    #expect(second.commands.suffix(2) == [.enableHealth(ref), .setState(ref, .ready)])
    #expect(second.draining.isEmpty)
  }

  @Test func tlsToPlainReplacesAtOnceOn30() {
    let before = Self.instance("a")
    let after = Self.instance("a", tls: false)
    let ref = ServerRef(backend: "svc_backend", server: "a")
    let result = plan([after], observed: [Self.observed(before, usesTLS: true)], features: Self.haproxy30)
    #expect(result.commands.prefix(2) == [.setState(ref, .maint), .deleteServer(ref)])
    guard case .addServer(_, _, _, let options) = result.commands[2] else {
      Issue.record("no add server: \(result.commands)")
      return
    }
    #expect(!options.contains("ssl"))
  }

  @Test func anotherServerNameReplacesWhenKnown() {
    let after = Self.instance("a", name: "new.example")
    var current = Self.observed(after, usesTLS: true)
    current.tlsServerName = "old.example"
    // Unknown: taken to be the desired one.
    #expect(plan([after], observed: [current], features: Self.haproxy30).isEmpty)
    current.tlsServerNameKnown = true
    let result = plan([after], observed: [current], features: Self.haproxy30)
    #expect(result.commands.contains(.deleteServer(ServerRef(backend: "svc_backend", server: "a"))))
    #expect(result.commands.contains { if case .addServer = $0 { true } else { false } })
    current.tlsServerName = "new.example"
    #expect(plan([after], observed: [current], features: Self.haproxy30).isEmpty)
  }

  @Test func beliefRemembersTheServerNamesHAProxyWasGiven() {
    let a = Self.instance("a", name: "a.example")
    let ref = ServerRef(backend: "svc_backend", server: "a")
    var belief = RuntimeBelief()
    let observed = ObservedState(backends: ["svc_backend": [Self.observed(a, usesTLS: true)]])
    #expect(belief.withTLSServerNames(observed).backends["svc_backend"]?.first?.tlsServerNameKnown == false)
    belief.installed(Fixture.desired([a]))
    belief.forgetAll()
    var known = belief.withTLSServerNames(observed).backends["svc_backend"]?.first
    #expect(known?.tlsServerNameKnown == true && known?.tlsServerName == "a.example")
    belief.observed(observed, backends: ["svc_backend"])
    belief.confirmed(.deleteServer(ref))
    belief.confirmed(
      .addServer(ref, address: a.registration.address, port: 9443, options: ["ssl", "verifyhost", "b.example"]))
    known = belief.withTLSServerNames(observed).backends["svc_backend"]?.first
    #expect(known?.tlsServerName == "b.example")
    #expect(belief.servers(["a"], in: "svc_backend")?.first?.usesTLS == true)
  }

  @Test func mirrorWithoutBackendCAReportsTLSInstances() throws {
    let plain = (key: Array("/services/backend/p".utf8), value: Array(#"{"address":"127.0.0.1","port":9001}"#.utf8))
    let tls = (
      key: Array("/services/backend/t".utf8), value: Array(#"{"address":"127.0.0.1","port":9443,"tls":true}"#.utf8)
    )
    let refusing = RegistrationMirror(revision: 5, entries: [(plain.key, plain.value, 3), (tls.key, tls.value, 4)])
    #expect(refusing.instances.map(\.key.instance.rawValue) == ["p"])
    #expect(refusing.invalid.count == 1)
    let error = try #require(refusing.invalid.first)
    #expect(error.code == .notServed && error.field == "tls")
    #expect(
      error.description
        == #"/services/backend/t: field "tls": instance t asks for TLS but this node has no --backend-ca"#)
    let serving = RegistrationMirror(
      revision: 5, entries: [(plain.key, plain.value, 3), (tls.key, tls.value, 4)], servesTLS: true)
    #expect(serving.instances.map(\.key.instance.rawValue) == ["p", "t"])
    #expect(serving.invalid.isEmpty)
    // A watch event that turns a plain instance into a TLS one takes it out on a node without a CA.
    var mirror = refusing
    let changed = mirror.apply([
      .init(key: plain.key, value: Array(#"{"address":"127.0.0.1","port":9001,"tls":true}"#.utf8), modRevision: 6)
    ])
    #expect(changed == [.backend])
    #expect(mirror.instances.isEmpty && mirror.invalid.count == 2)
  }

  @Test func settingsValidateTheCAPath() {
    #expect(throws: SettingsError.self) {
      try NodeSettings(
        nodeID: "lb1", listen: HostPort(parsing: "127.0.0.1:8001"), stats: HostPort(parsing: "127.0.0.1:8401"),
        adminSocketPath: "/var/lib/switchyard/lb1/admin.sock", backendCAPath: "/etc/ca file.pem")
    }
    #expect(throws: SettingsError.self) {
      try NodeSettings(
        nodeID: "lb1", listen: HostPort(parsing: "127.0.0.1:8001"), stats: HostPort(parsing: "127.0.0.1:8401"),
        adminSocketPath: "/var/lib/switchyard/lb1/admin.sock", backendCAPath: "relative.pem")
    }
  }
}
