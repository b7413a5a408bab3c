import SwitchyardModel
import Testing

@testable import SwitchyardReconcile

/// Operators' overrides kept in the mirror next to the registrations they apply to.
@Suite struct OverrideMirrorTests {
  typealias Change = RegistrationMirror.Change

  static func override(_ id: String, _ json: String, at revision: Int64) -> Change {
    Change(key: Array("/switchyard/overrides/backend/\(id)".utf8), value: Array(json.utf8), modRevision: revision)
  }

  static func states(_ mirror: RegistrationMirror) -> [String: InstanceState] {
    Dictionary(
      uniqueKeysWithValues: mirror.instances(of: .backend).map { ($0.key.instance.rawValue, $0.registration.state) })
  }

  @Test func theStricterStateWinsAndOverridesTouchTheirService() {
    var mirror = RegistrationMirror(
      revision: 10,
      entries: [
        (IncrementalTests.key("backend", "a"), IncrementalTests.value(port: 9001), 5),
        (IncrementalTests.key("backend", "b"), Array(#"{"address":"127.0.0.1","port":9002,"state":"maint"}"#.utf8), 6),
        (Array("/switchyard/overrides/backend/a".utf8), Array(#"{"state":"drain","reason":"kernel"}"#.utf8), 7),
      ]
    )
    #expect(Self.states(mirror) == ["a": .drain, "b": .maint])
    #expect(mirror.overrides.map(\.reason) == ["kernel"])
    // A drain override does not loosen a registration in maintenance.
    #expect(mirror.apply([Self.override("b", #"{"state":"drain"}"#, at: 11)]) == [.backend])
    #expect(Self.states(mirror) == ["a": .drain, "b": .maint])
    // A registration rewritten by its registrar keeps its override.
    #expect(mirror.apply([IncrementalTests.put("backend", "a", port: 9001, at: 12)]) == [.backend])
    #expect(Self.states(mirror)["a"] == .drain)
    // Ending the override touches the service and gives the registration back its own state.
    #expect(
      mirror.apply([Change(key: Array("/switchyard/overrides/backend/a".utf8), value: nil, modRevision: 13)]) == [
        .backend
      ])
    #expect(Self.states(mirror)["a"] == .up)
    // An override of an instance that is not registered waits for it.
    #expect(mirror.apply([Self.override("c", #"{"state":"maint"}"#, at: 14)]) == [.backend])
    #expect(Self.states(mirror)["c"] == nil)
    #expect(mirror.apply([IncrementalTests.put("backend", "c", port: 9003, at: 15)]) == [.backend])
    #expect(Self.states(mirror)["c"] == .maint)
  }

  @Test func aBadOverrideIsInvalidAndChangesNothing() {
    var mirror = RegistrationMirror(
      revision: 10, entries: [(IncrementalTests.key("backend", "a"), IncrementalTests.value(port: 9001), 5)])
    for json in [
      #"{"state":"up"}"#, #"{"state":"off"}"#, "drain", #"{"reason":"x"}"#, #"{"state":"drain","reason":7}"#,
    ] {
      #expect(mirror.apply([Self.override("a", json, at: 11)]).isEmpty, "\(json)")
      #expect(Self.states(mirror)["a"] == .up)
      #expect(mirror.invalid.map(\.key) == ["/switchyard/overrides/backend/a"])
    }
    #expect(
      mirror.apply([
        Change(
          key: Array("/switchyard/overrides/backend/a/b".utf8), value: Array(#"{"state":"drain"}"#.utf8),
          modRevision: 12)
      ]).isEmpty)
    #expect(mirror.invalid.count == 2)
    #expect(mirror.overrides.isEmpty)
  }
}
