import SwitchyardModel
import Testing

@testable import SwitchyardReconcile

/// Routes and service settings in the mirror: read with the registrations, kept from watch events, and
/// the last valid value of a key kept in force when a bad one replaces it.
@Suite struct PolicyMirrorTests {
  typealias Change = RegistrationMirror.Change

  static func put(_ key: String, _ value: String, at revision: Int64) -> Change {
    Change(key: Array(key.utf8), value: Array(value.utf8), modRevision: revision)
  }

  static func delete(_ key: String, at revision: Int64) -> Change {
    Change(key: Array(key.utf8), value: nil, modRevision: revision)
  }

  static func mirror() -> RegistrationMirror {
    RegistrationMirror(
      revision: 10,
      entries: [
        (Array("/services/web/w1".utf8), Array(#"{"address":"127.0.0.1","port":9001}"#.utf8), 3),
        (Array("/switchyard/routes/web".utf8), Array(#"{"service":"web","path_prefix":"/web"}"#.utf8), 4),
        (Array("/switchyard/services/web".utf8), Array(#"{"balance":"leastconn"}"#.utf8), 5),
      ])
  }

  @Test func aFullReadHoldsRoutesSettingsAndRegisteredServices() {
    let mirror = Self.mirror()
    #expect(mirror.routes.map(\.name.rawValue) == ["web"])
    #expect(mirror.settings.values.map(\.balance) == [.leastconn])
    #expect(mirror.registeredServices.map(\.rawValue) == ["web"])
    #expect(mirror.invalid.isEmpty)
  }

  @Test func aBadRouteLeavesTheLastValidOneInForceAndIsReported() {
    var mirror = Self.mirror()
    let generation = mirror.routesGeneration
    let touched = mirror.apply([Self.put("/switchyard/routes/web", #"{"service":"web","path_prefix":"/a b"}"#, at: 11)])
    #expect(touched.isEmpty)
    #expect(mirror.routes.map(\.pathPrefix) == ["/web"])
    #expect(mirror.routesGeneration == generation)
    #expect(mirror.invalid.map(\.key) == ["/switchyard/routes/web"])
    // A valid value replaces it and clears the report.
    mirror.apply([Self.put("/switchyard/routes/web", #"{"service":"web","path_prefix":"/new"}"#, at: 12)])
    #expect(mirror.routes.map(\.pathPrefix) == ["/new"])
    #expect(mirror.invalid.isEmpty)
    #expect(mirror.routesGeneration != generation)
    // A delete ends it.
    mirror.apply([Self.delete("/switchyard/routes/web", at: 13)])
    #expect(mirror.routes.isEmpty)
    #expect(mirror.revision == 13)
  }

  @Test func settingsChangesTouchTheirServiceOnlyWhenWhatTheySetChanges() {
    var mirror = Self.mirror()
    let web = try! ServiceName(validating: "web")
    #expect(mirror.apply([Self.put("/switchyard/services/web", #"{"balance":"leastconn"}"#, at: 11)]).isEmpty)
    #expect(mirror.apply([Self.put("/switchyard/services/web", #"{"balance":"random"}"#, at: 12)]) == [web])
    // A bad value: the last valid settings stay, nothing is touched, the entry is reported.
    #expect(mirror.apply([Self.put("/switchyard/services/web", #"{"balance":"fastest"}"#, at: 13)]).isEmpty)
    #expect(mirror.settings[web]?.balance == .random)
    #expect(mirror.invalid.map(\.field) == ["balance"])
    #expect(mirror.apply([Self.delete("/switchyard/services/web", at: 14)]) == [web])
    #expect(mirror.settings.isEmpty)
    #expect(mirror.invalid.isEmpty)
  }

  @Test func aFullReadKeepsTheLastValidValueOfAKeyThatHoldsABadOneNow() {
    let before = Self.mirror()
    var after = RegistrationMirror(
      revision: 20,
      entries: [
        (Array("/switchyard/routes/web".utf8), Array(#"{"service":"web","path_prefix":"/a b"}"#.utf8), 15),
        (Array("/switchyard/services/web".utf8), Array(#"{"balance":"fastest"}"#.utf8), 16),
      ])
    #expect(after.routes.isEmpty && after.settings.isEmpty)
    after.keepLastValid(from: before)
    #expect(after.routes.map(\.pathPrefix) == ["/web"])
    #expect(after.settings.values.map(\.balance) == [.leastconn])
    #expect(after.invalid.count == 2)
    // A key deleted since, or valid now, takes nothing from the old mirror.
    var fresh = RegistrationMirror(revision: 20, entries: [])
    fresh.keepLastValid(from: before)
    #expect(fresh.routes.isEmpty && fresh.settings.isEmpty)
  }
}
