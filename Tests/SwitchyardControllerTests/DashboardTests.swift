import EtcdClient
import Foundation
import NIOSSL
import SwitchyardDashboard
import SwitchyardModel
import SwitchyardTestSupport
import Testing

/// The live dashboard against real etcd, two real controllers and their HAProxies: what `/api/cluster` and
/// `/api/events` say, how fast a change and a killed controller show, and the login.
@Suite("The live dashboard", .serialized)
struct DashboardTests {
  /// A change, and a controller killed, must show within this.
  static let limit: Duration = .seconds(2)

  /// `/api/cluster` of `node`.
  static func cluster(_ node: LBNode, headers: [String: String] = [:]) async throws -> ClusterView {
    let answer = try await RawHTTP.get(port: node.adminPort, path: "/api/cluster", headers: headers)
    guard answer.status == 200 else { throw TestSupportError("/api/cluster answered \(answer.status)") }
    return try JSONDecoder().decode(ClusterView.self, from: Data(answer.body.utf8))
  }

  static func instance(_ view: ClusterView, _ service: String, _ id: String) -> ClusterView.Instance? {
    view.services.first { $0.name == service }?.instances.first { $0.id == id }
  }

  @Test("lb1's dashboard shows both nodes, a new instance within 2 s, and lb2 killed within 2 s")
  func followsTheCluster() async throws {
    try await withNodes(count: 2) { _, nodes, etcd in
      let (lb1, lb2) = (nodes[0], nodes[1])
      // The nodes announce themselves; lb1's dashboard finds lb2 in etcd.
      try await retrying(timeout: .seconds(15)) {
        let view = try await Self.cluster(lb1)
        guard view.nodes.map(\.id) == ["lb1", "lb2"], view.nodes.allSatisfy({ $0.status == "up" && $0.registered })
        else { throw TestSupportError("nodes: \(view.nodes.map { "\($0.id)=\($0.status)" })") }
      }
      let view = try await Self.cluster(lb1)
      #expect(view.servedBy == "lb1" && view.etcd.revision != nil && view.warnings.isEmpty, "\(view.warnings)")
      #expect(view.nodes[1].adminURL == lb2.adminURL && view.nodes.allSatisfy { $0.haproxyVersion != nil })

      let stream = EventStreamClient(port: lb1.adminPort)
      defer { stream.close() }
      let first = try await stream.wait("both nodes up") { $0.nodes.filter { $0.status == "up" }.count == 2 }
      print("dashboard: the first event \(first.bytes) bytes")

      // A new instance: shown on both nodes within 2 s of its put, up on both soon after.
      let server = try await HTTPTestServer.start(name: "w1")
      defer { Task { await server.close() } }
      let put = ContinuousClock.now
      let revision = try await etcd.register("w1", port: server.port, checkPath: "/healthz")
      let shown = try await stream.wait("w1 on both nodes", since: put) { view in
        Self.instance(view, "backend", "w1")?.cells.allSatisfy { $0 != nil } == true
      }
      let shownAfter = put.duration(to: shown.arrived)
      print("dashboard: w1 shown on both nodes \(shownAfter) after its put")
      #expect(shownAfter <= Self.limit)
      let up = try await stream.wait("w1 up on both nodes", since: put) { view in
        Self.instance(view, "backend", "w1")?.cells.allSatisfy { $0?.state == "up" } == true
      }
      print("dashboard: w1 up on both nodes \(put.duration(to: up.arrived)) after its put")
      let change = try #require(up.view.changes.first { $0.revision == revision })
      #expect(change.events == [ChangeRecord.Event(key: "/services/backend/w1", kind: "put")])
      #expect(change.progress.allSatisfy { if case .applied = $0 { true } else { false } }, "\(change.progress)")
      let converged = try #require(change.convergedAfter)
      print("dashboard: revision \(revision) applied by both nodes \(converged) ms after the first saw it")
      #expect(up.view.nodes.allSatisfy { $0.appliedRevision ?? 0 >= revision && $0.pending == 0 })

      // Traffic: requests through lb1 show in its counters and rate.
      for _ in 0..<20 { _ = try await lb1.get() }
      let counted = try await stream.wait("20 requests counted") { view in
        (view.services.first { $0.name == "backend" }?.requests ?? 0) >= 20
      }
      #expect(counted.view.nodes[0].rate != nil)

      // lb2's controller killed: lb1's page says so within 2 s; lb2's HAProxy serves on.
      await lb2.killController()
      let killed = ContinuousClock.now
      let down = try await stream.wait("lb2 not answering", since: killed) { view in
        view.nodes.first { $0.id == "lb2" }?.status == "not-answering"
      }
      let downAfter = killed.duration(to: down.arrived)
      print("dashboard: lb2 not answering \(downAfter) after its controller was killed")
      #expect(downAfter <= Self.limit)
      #expect(down.view.warnings.contains { $0.kind == "not-answering" && $0.node == "lb2" })
      #expect(Self.instance(down.view, "backend", "w1")?.cells[1] == nil, "a node that does not answer has no cells")
      #expect(try await lb2.get().status == 200)
      let sizes = stream.snapshots.map(\.bytes)
      print("dashboard: \(sizes.count) events, \(sizes.max() ?? 0) bytes at most")
    }
  }

  @Test("Hostile entries in etcd reach the dashboard as text, and the page's answers carry a strict policy")
  func hostileEntriesAndHeaders() async throws {
    try await withNodes(count: 1) { _, nodes, etcd in
      let lb1 = nodes[0]
      let markup = "<img src=x onerror=alert(1)>"
      try await etcd.put("/services/backend/\(markup)", value: Array("<script>alert(2)</script>".utf8))
      try await etcd.put("/switchyard/nodes/\(markup)", value: Array("{\"listen\":\"\(markup)\"}".utf8))
      try await etcd.put(
        "/switchyard/nodes/lb9",
        value: Array(
          #"{"admin_url":"javascript:alert(3)","listen":"a:1","started":0,"stats":"a:2","switchyard_version":"1"}"#.utf8
        ))
      var view: ClusterView?
      try await retrying(timeout: .seconds(10)) {
        let current = try await Self.cluster(lb1)
        view = current
        guard current.warnings.contains(where: { $0.kind == "invalid-entry" }),
          current.warnings.filter({ $0.kind == "invalid-node-record" }).count == 2
        else { throw TestSupportError("warnings: \(current.warnings)") }
      }
      let warnings = try #require(view).warnings
      // Text, kept as such: the page puts it in with textContent. No line break can split an event.
      #expect(warnings.contains { $0.kind == "invalid-entry" && $0.text.contains("/services/backend/\(markup)") })
      #expect(!warnings.contains { $0.text.contains("javascript:alert(3)") }, "an unescaped URL in \(warnings)")
      #expect(try #require(view).nodes.map(\.id) == ["lb1"])

      for path in ["/", "/dashboard.js", "/dashboard.css", "/favicon.svg", "/api/cluster"] {
        let answer = try await RawHTTP.get(port: lb1.adminPort, path: path)
        let head = answer.head.lowercased()
        #expect(answer.status == 200, "\(path)")
        #expect(head.contains("content-security-policy: default-src 'none'; script-src 'self'"), "\(path)")
        #expect(head.contains("x-content-type-options: nosniff"), "\(path)")
      }
      let page = try await RawHTTP.get(port: lb1.adminPort, path: "/")
      #expect(page.head.lowercased().contains("content-type: text/html; charset=utf-8"))
      #expect(page.body == SwitchyardDashboard.DashboardPage.html)
      let traffic = try await RawHTTP.get(port: lb1.adminPort, path: "/traffic")
      #expect(traffic.status == 200 && traffic.body.contains("\"services\""))
      let changes = try await RawHTTP.get(port: lb1.adminPort, path: "/state/changes")
      #expect(changes.status == 200 && changes.body.contains("onerror"))
    }
  }

  @Test(
    "--dashboard-auth: the dashboard answers 401 without the login, 200 with it; the node's own endpoints stay open")
  func login() async throws {
    let secrets = try TemporaryDirectory(prefix: "dashboard-secret")
    defer { secrets.remove() }
    let password = "Dash-\(UUID().uuidString)"
    try "\(password)\n".write(toFile: secrets.path("dashboard.password"), atomically: true, encoding: .utf8)
    try await withNodes(count: 1, extraArguments: ["--dashboard-auth", "ops:\(secrets.path("dashboard.password"))"]) {
      _, nodes, _ in
      let lb1 = nodes[0]
      let good = ["Authorization": RawHTTP.basic(user: "ops", password: password)]
      let wrong = ["Authorization": RawHTTP.basic(user: "ops", password: password + "x")]
      for path in ["/", "/dashboard.js", "/dashboard.css", "/api/cluster", "/api/events"] {
        let anonymous = try await RawHTTP.get(port: lb1.adminPort, path: path)
        #expect(anonymous.status == 401, "\(path) answered \(anonymous.status) without a login")
        #expect(anonymous.head.lowercased().contains("www-authenticate: basic realm=\"switchyard dashboard\""))
        #expect(try await RawHTTP.get(port: lb1.adminPort, path: path, headers: wrong).status == 401, "\(path)")
      }
      for path in ["/", "/dashboard.js", "/dashboard.css", "/api/cluster"] {
        #expect(try await RawHTTP.get(port: lb1.adminPort, path: path, headers: good).status == 200, "\(path)")
      }
      for path in ["/healthz", "/state", "/state/dashboard", "/state/changes"] {
        #expect(try await RawHTTP.get(port: lb1.adminPort, path: path).status == 200, "\(path)")
      }
      #expect(!lb1.log().contains(password), "the controller logged the password")

      // An open event stream does not hold the controller's graceful stop up.
      let stream = EventStreamClient(port: lb1.adminPort, headers: good)
      defer { stream.close() }
      _ = try await stream.wait("a first snapshot") { _ in true }
      #expect(stream.status == 200)
      let stopping = ContinuousClock.now
      await lb1.stop()
      let stopped = stopping.duration(to: .now)
      print("dashboard: the controller stopped \(stopped) after SIGTERM with an event stream open")
      #expect(stopped < .seconds(8))
      #expect(await eventually(timeout: .seconds(2)) { stream.ended })
    }
  }
}

extension DashboardTests {
  @Test("Over HTTPS the other nodes' admin certificates are verified: --admin-cacert's CA passes, another CA fails")
  func verifiesOtherNodesOverTLS() async throws {
    let directory = try TemporaryDirectory(prefix: "dashboard-tls")
    defer { directory.remove() }
    let trusted = try TLSFiles.generate(in: directory.path("trusted"))
    let other = try TLSFiles.generate(in: directory.path("other"))
    let cluster = try await EtcdCluster.start(members: 1)
    let tls = ["--admin-tls-cert", trusted.serverCertificate, "--admin-tls-key", trusted.serverKey]
    let lb1 = try LBNode(name: "lb1", endpoints: cluster.endpoints, extraArguments: tls)
    let lb2 = try LBNode(name: "lb2", endpoints: cluster.endpoints, extraArguments: tls)
    var trusting = TLSConfiguration.makeClientConfiguration()
    trusting.trustRoots = .file(trusted.caCertificate)
    func view() async throws -> ClusterView {
      let answer = try await RawHTTP.get(
        port: lb1.adminPort, path: "/api/cluster", tls: trusting, serverHostname: "localhost")
      guard answer.status == 200 else { throw TestSupportError("/api/cluster answered \(answer.status)") }
      return try JSONDecoder().decode(ClusterView.self, from: Data(answer.body.utf8))
    }
    func lb2Status(_ view: ClusterView) -> String? { view.nodes.first { $0.id == "lb2" }?.status }
    do {
      try lb2.start()
      try lb1.start(extraArguments: ["--admin-cacert", trusted.caCertificate])
      try await retrying(timeout: .seconds(20)) {
        let current = try await view()
        guard lb2Status(current) == "up" else {
          throw TestSupportError("lb2: \(lb2Status(current) ?? "absent"), \(current.warnings)")
        }
      }
      let verified = try await view()
      #expect(verified.nodes.map(\.adminURL) == [lb1, lb2].map { "https://127.0.0.1:\($0.adminPort)" })

      // The same nodes, with lb1 trusting another CA: lb2's certificate is refused.
      await lb1.stop()
      try lb1.start(extraArguments: ["--admin-cacert", other.caCertificate])
      try await retrying(timeout: .seconds(20)) {
        let current = try await view()
        guard lb2Status(current) == "not-answering" else {
          throw TestSupportError("lb2: \(lb2Status(current) ?? "absent")")
        }
      }
      let refused = try #require(try await view().nodes.first { $0.id == "lb2" })
      print("dashboard: lb2 with a certificate of another CA: \(refused.problem ?? "-")")
      #expect(refused.problem?.lowercased().contains("certificate") == true, "\(refused.problem ?? "-")")
    } catch {
      Issue.record("lb1 log:\n\(lb1.log())")
      await lb1.cleanup()
      await lb2.cleanup()
      await cluster.shutdown()
      throw error
    }
    await lb1.cleanup()
    await lb2.cleanup()
    await cluster.shutdown()
  }
}

extension DashboardTests {
  @Test(
    "In headless Chromium, markup in etcd keys and values shows as text: no element made, no script run, no console error",
    .tags(.browser))
  func hostileNamesInABrowser() async throws {
    try await withNodes(count: 1) { _, nodes, etcd in
      let lb1 = nodes[0]
      // No quotes: keys are shown escaped, and a quote shows as \".
      let markup = "<img src=x onerror=window.pwned=1>"
      try await etcd.put("/services/backend/\(markup)", value: "<script>window.pwned=2</script>")
      try await etcd.put("/switchyard/routes/\(markup)", value: #"{"service":"<b>x</b>","path_prefix":"/"}"#)
      try await HeadlessChromium.with { browser in
        try await browser.navigate(to: "http://127.0.0.1:\(lb1.adminPort)/")
        try await retrying(timeout: .seconds(15)) {
          let shown = try await browser.execute(
            "return [Array.from(document.querySelectorAll('#warnings li')).map(l => l.textContent).join('\\n'),"
              + " Array.from(document.querySelectorAll('#changes [data-revision]')).map(r => r.textContent).join('\\n')]"
          )
          let warnings = shown.array?.first?.string ?? ""
          let changes = shown.array?.last?.string ?? ""
          guard warnings.contains("/services/backend/\(markup)"), changes.contains("/switchyard/routes/\(markup)")
          else {
            throw TestSupportError("not shown yet: \(warnings.prefix(300)) | \(changes.prefix(300))")
          }
        }
        let page = try await browser.execute(
          "return [document.querySelectorAll('img[src=\"x\"]').length, document.querySelectorAll('b').length -"
            + " document.querySelectorAll('header b').length, document.scripts.length,"
            + " typeof window.pwned, document.body.dataset.connected]")
        let values = page.array ?? []
        #expect(values.count == 5, "\(page)")
        guard values.count == 5 else { return }
        #expect(values[0].int == 0, "an <img> from etcd became an element")
        #expect(values[1].int == 0, "a <b> from etcd became an element")
        #expect(values[2].int == 1, "a script from etcd became an element")
        #expect(values[3].string == "undefined", "a script from etcd ran")
        #expect(values[4].string == "true")
        let errors = try await browser.consoleErrors()
        #expect(errors.isEmpty, "console errors: \(errors)")
      }
    }
  }
}
