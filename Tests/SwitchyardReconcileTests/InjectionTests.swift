import SwitchyardModel
import SwitchyardReconcile
import Testing

/// Whatever sits in etcd, nothing reaches HAProxy's configuration but validated tokens.
@Suite struct InjectionTests {
  static let hostile: [(key: String, value: String)] = [
    ("/services/backend/a\nserver evil 6.6.6.6:80", #"{"address":"127.0.0.1","port":9001}"#),
    ("/services/backend/b", #"{"address":"127.0.0.1\nserver evil 6.6.6.6:80","port":9001}"#),
    ("/services/backend/c", #"{"address":"127.0.0.1 backup","port":9001}"#),
    ("/services/backend/d", #"{"address":"127.0.0.1","port":9001,"check":{"path":"/ HTTP/1.1\r\nHost: x"}}"#),
    ("/services/backend/e", #"{"address":"127.0.0.1","port":9001,"check":{"path":"/#comment"}}"#),
    ("/services/backend/f", #"{"address":"127.0.0.1","port":"9001 check"}"#),
    ("/services/backend/g", #"{"address":"127.0.0.1","port":9001,"weight":"1 backup"}"#),
    ("/services/backend/h", #"{"address":"127.0.0.1","port":9001,"state":"up\n"}"#),
    ("/services/backend/i;", #"{"address":"127.0.0.1","port":9001}"#),
    ("/services/backend/j", "127.0.0.1:9001\nserver evil 6.6.6.6:80"),
    ("/services/backend/k", #"{"address":"${EVIL}","port":9001}"#),
    ("/services/backend/l", #"{"address":"127.0.0.1","port":9001,"check":{"path":"/\"quoted\""}}"#),
    ("/services/backend/m", #"{"address":"evil.example\u0000","port":9001}"#),
    ("/services/backend\nbackend evil/n", #"{"address":"127.0.0.1","port":9001}"#),
    ("/services/backend/o", #"{"address":"127.0.0.1","port":9001,"meta":{"x":"server evil 6.6.6.6:80"}}"#),
    ("/services/backend/p", #"{"address":"127.0.0.1","port":9001,"meta":{"x":"\nserver evil 6.6.6.6:80"}}"#),
  ]

  static let good = (key: "/services/backend/good", value: #"{"address":"127.0.0.1","port":9002}"#)

  /// What follows the weight on every server line with the fixture's settings.
  static let options =
    "check inter 1s fastinter 200ms downinter 2s rise 2 fall 2 observe layer7 error-limit 10 "
    + "on-error sudden-death pool-purge-delay 1s"

  @Test func hostileEntriesAreSkippedAndTheGoodOneIsServed() {
    let entries = (Self.hostile + [Self.good]).map {
      (key: Array($0.key.utf8), value: Array($0.value.utf8), modRevision: Int64(1))
    }
    let (valid, invalid) = ServiceInstance.parseAll(entries)
    // Meta without control characters is valid (meta is never rendered); every other hostile entry is refused.
    #expect(valid.map(\.key.instance.rawValue) == ["good", "o"])
    #expect(invalid.count == Self.hostile.count - 1)
    let rendered = ConfigRenderer.render(
      DesiredState(revision: 1, services: [.backend], instances: valid),
      settings: Fixture.settings
    )
    #expect(!rendered.text.contains("evil"))
    #expect(!rendered.text.contains("6.6.6.6"))
    let servers = rendered.text.split(separator: "\n").filter { $0.hasPrefix("  server ") }.map(String.init)
    #expect(
      servers == [
        "  server good 127.0.0.1:9002 weight 100 " + Self.options,
        "  server o 127.0.0.1:9001 weight 100 " + Self.options,
      ]
    )
  }

  /// Every line of a rendered config has a shape from a fixed list, and every token from etcd is made
  /// of safe characters only.
  @Test func everyRenderedLineHasAKnownShape() {
    let instances = (1...30).map {
      Fixture.instance(
        "id-\($0)_x.y",
        $0 % 3 == 0 ? "fe80::\($0)" : "10.0.\($0).1",
        8000 + $0,
        weight: $0,
        state: [.up, .drain, .maint][$0 % 3],
        checkPath: "/p%20a?b=c&d=(e)"
      )
    }
    let rendered = ConfigRenderer.render(Fixture.desired(instances), settings: Fixture.settings)
    let safe = Set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_.:/[]%?=&()")
    for line in rendered.text.split(separator: "\n") where line.hasPrefix("  server ") {
      let words = line.dropFirst(2).split(separator: " ")
      // server, name, address, weight and its value, the options, and `disabled` in maintenance.
      let count = 5 + Self.options.split(separator: " ").count
      #expect(words.count == count || words.count == count + 1, "\(line)")
      #expect(words[1].allSatisfy { safe.contains($0) } && words[2].allSatisfy { safe.contains($0) }, "\(line)")
    }
    let httpchk = rendered.text.split(separator: "\n").filter { $0.hasPrefix("  option httpchk") }
    #expect(httpchk == ["  option httpchk GET /p%20a?b=c&d=(e)"])
  }
}
