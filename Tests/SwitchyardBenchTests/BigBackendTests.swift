import SwitchyardBench
import Testing

@Suite struct ServerPresenceTests {
  @Test func aWeightMeansTheServerIsThere() {
    #expect(ServerPresence(weightReply: "100 (initial 100)\n") == .present)
    #expect(ServerPresence(weightReply: "0 (initial 1)\n\n") == .present)
  }

  @Test func noSuchServerMeansGone() {
    #expect(ServerPresence(weightReply: "No such server.\n") == .absent)
    #expect(ServerPresence(weightReply: "\nNo such server.\n\n") == .absent)
  }

  @Test func anythingElseSaysNothing() {
    #expect(ServerPresence(weightReply: "No such backend.\n") == .unknown)
    #expect(ServerPresence(weightReply: "Require 'backend/server'.\n") == .unknown)
    #expect(ServerPresence(weightReply: "") == .unknown)
    // A non-ASCII digit is no weight.
    #expect(ServerPresence(weightReply: "٣") == .unknown)
  }
}

@Suite struct BigBackendGoalsTests {
  @Test func theBigBackendsFiguresGetATableOfTheirOwn() {
    var big = ScenarioResult(name: "big-backend", strategy: "runtime", variant: "10,000 servers in one backend")
    big.add("add_p99_ms", 4.25)
    big.add("remove_p99_ms", 71.5)
    big.add("controller_cpu_ms_per_change", 0.8)
    big.add("reloads", 0)
    let report = BenchReport(
      date: "d", machine: "m", etcdVersion: "e", haproxyVersion: "h", build: "release", quick: false,
      scenarios: [big])
    let markdown = report.markdown()
    #expect(markdown.contains("### One change inside one big backend\n"))
    #expect(markdown.contains("| one put beside a big backend → server in HAProxy, p99 | 4.25 ms | ≤ 10 ms | yes |"))
    #expect(markdown.contains("| one delete in a big backend → server out of HAProxy, p99 | 71.5 ms | ≤ 10 ms | no |"))
    #expect(markdown.contains("| reloads for single changes, big backend | 0 | ≤ 0 | yes |"))
    // Not a routes run: that table stays out.
    #expect(!markdown.contains("Issue 24"))
  }
}
