import SwitchyardDashboard
import Testing

@Suite("The dashboard's files")
struct DashboardPageTests {
  static func body(_ path: String) -> String {
    DashboardPage.assets.first { $0.path == path }?.body ?? ""
  }

  let script = Self.body("/dashboard.js")
  let style = Self.body("/dashboard.css")

  @Test func everyFileIsServedFromTheBinaryWithItsType() {
    #expect(DashboardPage.assets.map(\.path) == ["/", "/dashboard.js", "/dashboard.css", "/favicon.svg"])
    #expect(DashboardPage.assets.allSatisfy { !$0.body.isEmpty && !$0.contentType.isEmpty })
  }

  @Test func theDocumentHasNoInlineScriptStyleOrHandlerAndNothingFromElsewhere() {
    let html = DashboardPage.html.lowercased()
    #expect(html.components(separatedBy: "<script").count == 2)
    #expect(html.contains(#"<script src="/dashboard.js" defer></script>"#))
    #expect(!html.contains("<style") && !html.contains(" style="))
    #expect(!html.contains("onclick") && !html.contains("onload") && !html.contains("onerror"))
    for source in [DashboardPage.html, style, script] {
      #expect(!source.contains("//cdn") && !source.contains("@import") && !source.contains("url("))
    }
  }

  @Test func theScriptNeverWritesMarkup() {
    for sink in ["innerHTML", "outerHTML", "insertAdjacentHTML", "document.write", "eval(", "new Function", "srcdoc"] {
      #expect(!script.contains(sink), "the script uses \(sink)")
    }
    #expect(script.contains("new EventSource('/api/events')"))
  }

  @Test func theScriptKeepsTheContractTheBrowserTestsUse() {
    for part in [
      "document.body.dataset.connected", "'data-node'", "'data-status'", "'data-instance'", "'data-state'",
      "'data-revision'", "'missing'", "window.switchyard", "firstRenderMs", "totalUpdateMs", "lastUpdateMs",
      "snapshotBytes", "loadId", "updates",
    ] {
      #expect(script.contains(part), "\(part) is missing")
    }
    let html = DashboardPage.html
    for id in [#"id="nodes""#, #"id="services""#, #"id="changes""#, #"id="warnings""#] {
      #expect(html.contains(id))
    }
  }

  @Test func thePolicyAllowsOnlyThisOrigin() {
    let policy = DashboardPage.contentSecurityPolicy
    #expect(policy.contains("default-src 'none'") && policy.contains("script-src 'self'"))
    #expect(!policy.contains("unsafe-inline") && !policy.contains("unsafe-eval") && !policy.contains("*"))
    #expect(DashboardPage.securityHeaders.contains { $0.name == "X-Content-Type-Options" && $0.value == "nosniff" })
  }
}
