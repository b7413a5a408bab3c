import SwitchyardModel
import SwitchyardReconcile
import Testing

@Suite("Stats page authentication")
struct StatsAuthTests {
  /// `openssl passwd -6 -salt kDA4.uOJSqxWwMVI secret`, made once by hand: the renderer only copies it.
  static let hash =
    "$6$kDA4.uOJSqxWwMVI$V4FsChS7bratuKRrkzv6LfKZ2lFyyG4jGHJK1eP8OHhai7js0nWb9hSme1PNf66mPSS6jpbG2ip850ux77sWj1"

  static func settings(_ auth: NodeSettings.StatsAuth?) throws -> NodeSettings {
    try NodeSettings(
      nodeID: "lb1",
      listen: HostPort(parsing: "127.0.0.1:8001"),
      stats: HostPort(parsing: "127.0.0.1:8401"),
      statsAuth: auth,
      adminSocketPath: "/var/lib/switchyard/lb1/admin.sock"
    )
  }

  @Test("renders a userlist with the hash and guards the stats page with it")
  func rendersUserlist() throws {
    let auth = try NodeSettings.StatsAuth(user: "ops", passwordHash: Self.hash)
    let rendered = ConfigRenderer.render(Fixture.desired([]), settings: try Self.settings(auth))
    let lines = rendered.text.split(separator: "\n", omittingEmptySubsequences: false).map(String.init)
    let userlist = try #require(lines.firstIndex(of: "userlist switchyard_stats"))
    #expect(lines[userlist + 1] == "  user ops password \(Self.hash)")
    let stats = try #require(lines.firstIndex(of: "frontend stats"))
    let statsSection = lines[stats...].prefix { !$0.isEmpty }
    #expect(
      statsSection.last == "  stats http-request auth realm switchyard unless { http_auth(switchyard_stats) }"
    )
    #expect(statsSection.contains("  bind 127.0.0.1:8401"))
    // A change of user or password is a change of structure: only a reload gives it to HAProxy.
    #expect(rendered.structure.contains("  user ops password \(Self.hash)"))
    #expect(rendered.structure.contains("http_auth(switchyard_stats)"))
  }

  @Test("without authentication the stats page stays as it was")
  func noAuthentication() throws {
    let rendered = ConfigRenderer.render(Fixture.desired([]), settings: try Self.settings(nil))
    #expect(!rendered.text.contains("userlist"))
    #expect(!rendered.text.contains("http_auth"))
    #expect(rendered.text == ConfigRenderer.render(Fixture.desired([]), settings: Fixture.settings).text)
  }

  @Test(
    "accepts SHA-crypt hashes",
    arguments: [
      hash,
      "$6$rounds=10000$saltsaltsaltsalt$" + String(repeating: "A", count: 86),
      "$6$a$" + String(repeating: "./09azAZ", count: 10) + "abcdef",
      "$5$saltsalt$" + String(repeating: "b", count: 43),
    ]
  )
  func acceptsHashes(hash: String) throws {
    #expect(try NodeSettings.StatsAuth(user: "admin", passwordHash: hash).passwordHash == hash)
  }

  @Test(
    "refuses what is not a SHA-crypt hash, and anything that could break the config",
    arguments: [
      "", "secret", "$1$salt$abc", "$2b$10$" + String(repeating: "a", count: 53), "$y$j9T$salt$hash",
      "$6$salt$" + String(repeating: "A", count: 85), "$6$salt$" + String(repeating: "A", count: 87),
      "$6$$" + String(repeating: "A", count: 86), "$6$saltsaltsaltsalt1$" + String(repeating: "A", count: 86),
      "$6$salt$" + String(repeating: "A", count: 85) + " ", "$6$salt$" + String(repeating: "A", count: 85) + "#",
      "$6$salt$" + String(repeating: "A", count: 85) + "\n", "$6$sa lt$" + String(repeating: "A", count: 86),
      "$6$salt$" + String(repeating: "A", count: 86) + "$x", "$6$rounds=x$salt$" + String(repeating: "A", count: 86),
      "$6$rounds=10$salt$" + String(repeating: "A", count: 86), "$5$salt$" + String(repeating: "A", count: 86),
    ]
  )
  func refusesHashes(hash: String) {
    let error = #expect(throws: SettingsError.self) { try NodeSettings.StatsAuth(user: "admin", passwordHash: hash) }
    #expect(error?.setting == "stats auth password hash")
  }

  @Test("accepts plain user names", arguments: ["admin", "ops.team-1_x", "me@example.com", "A"])
  func acceptsUsers(user: String) throws {
    #expect(try NodeSettings.StatsAuth(user: user, passwordHash: Self.hash).user == user)
  }

  @Test(
    "refuses user names with spaces, control characters or config syntax, and says which",
    arguments: [
      ("", "empty"), ("a b", "a space"), ("a\tb", "control character"), ("a\nuser x", "control character"),
      ("a\u{7f}", "control character"), ("a:b", "\":\""), ("a#b", "\"#\""), ("a\"b", "\"\"\""), ("a\\b", "\"\\\""),
      ("é", "\"é\""), (String(repeating: "a", count: 65), "longer than 64"),
    ]
  )
  func refusesUsers(user: String, reason: String) {
    let error = #expect(throws: SettingsError.self) { try NodeSettings.StatsAuth(user: user, passwordHash: Self.hash) }
    #expect(error?.setting == "stats auth user")
    #expect(error?.reason.contains(reason) == true, "\(error?.reason ?? "")")
  }

  @Test("its description names the user and hides the hash")
  func description() throws {
    let auth = try NodeSettings.StatsAuth(user: "ops", passwordHash: Self.hash)
    for text in [String(describing: auth), String(reflecting: auth)] {
      #expect(text.contains("ops"))
      #expect(!text.contains(Self.hash))
    }
  }
}
