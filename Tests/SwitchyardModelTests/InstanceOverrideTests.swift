import SwitchyardModel
import Testing

@Suite struct InstanceOverrideTests {
  static let key = RegistrationKey(service: .backend, instance: try! InstanceID(validating: "b1"))

  @Test func encodesAndParsesBack() throws {
    let override = try InstanceOverride(instance: Self.key, state: .maint, reason: "disk \"sdb\" replaced")
    #expect(override.path == "/switchyard/overrides/backend/b1")
    #expect(
      String(decoding: override.encoded(), as: UTF8.self) == #"{"reason":"disk \"sdb\" replaced","state":"maint"}"#)
    let parsed = try InstanceOverride.parse(key: Array(override.path.utf8), value: override.encoded(), modRevision: 9)
    #expect(parsed.state == .maint && parsed.reason == override.reason && parsed.modRevision == 9)
  }

  @Test(
    arguments: [
      ("/switchyard/overrides/backend/b1", #"{"state":"up"}"#, "state"),
      ("/switchyard/overrides/backend/b1", #"{}"#, "state"),
      ("/switchyard/overrides/backend/b1", #"{"state":"drain","reason":"a\nb"}"#, "reason"),
      ("/switchyard/overrides/backend/b1", "drain", nil),
      ("/switchyard/overrides/backend", #"{"state":"drain"}"#, nil),
      ("/switchyard/overrides/back end/b1", #"{"state":"drain"}"#, "service"),
    ] as [(String, String, String?)])
  func refusesWhatIsNotAnOverride(key: String, value: String, field: String?) {
    do {
      _ = try InstanceOverride.parse(key: Array(key.utf8), value: Array(value.utf8))
      Issue.record("accepted \(key) = \(value)")
    } catch {
      #expect(error.key == key)
      #expect(error.field == field, "\(error)")
      #expect(!error.description.contains("\n"))
    }
  }

  @Test func theStricterStateWins() {
    #expect(InstanceState.up.stricter(.drain) == .drain)
    #expect(InstanceState.maint.stricter(.drain) == .maint)
    #expect(InstanceState.drain.stricter(.up) == .drain)
    #expect(InstanceState.up.stricter(.up) == .up)
  }
}
