import SwitchyardModel
import Testing

@testable import SwitchyardReconcile

/// A backend updated for the instances that changed gives what building it again from every instance
/// gives, or declines.
@Suite struct PatchingTests {
  typealias Change = RegistrationMirror.Change

  /// The update the mirror gives for `ids` of `backend`.
  static func update(_ mirror: RegistrationMirror, _ ids: [String]) -> InstanceUpdate {
    let keys = ids.map { InstanceChangesTests.key("backend", $0) }
    return InstanceUpdate(
      instances: keys.compactMap { mirror.instance($0) },
      removed: Set(keys.filter { mirror.instance($0) == nil }.map(\.instance)),
      aggregate: mirror.aggregate(of: .backend), settings: mirror.settings[.backend])
  }

  /// The backend built again from every instance, with `previous` as the last state.
  static func rebuilt(_ mirror: RegistrationMirror, previous: DesiredState) -> DesiredBackend? {
    DesiredState(
      revision: mirror.revision, services: [.backend], instances: mirror.instances(of: .backend), previous: previous,
      settings: mirror.settings
    ).backend(for: .backend)
  }

  static func registration(port: Int, weight: Int = 100, state: String = "up", check: String? = nil) -> String {
    let path = check.map { #","check":{"path":"\#($0)"}"# } ?? ""
    return #"{"address":"127.0.0.1","port":\#(port),"weight":\#(weight),"state":"\#(state)"\#(path)}"#
  }

  static func mirror(_ count: Int, weight: Int = 100, check: String? = nil) -> RegistrationMirror {
    RegistrationMirror(
      revision: 100,
      entries: (0..<count).map {
        (
          Array("/services/backend/s\($0)".utf8),
          Array(registration(port: 9000 + $0, weight: weight, check: check).utf8), 1
        )
      })
  }

  @Test func anAddAndADeleteArePatchedInPlace() throws {
    var mirror = Self.mirror(5)
    let state = DesiredState(
      revision: 100, services: [.backend], instances: mirror.instances(of: .backend), settings: mirror.settings)
    mirror.apply([
      InstanceChangesTests.put("/services/backend/new", Self.registration(port: 9100), at: 101),
      InstanceChangesTests.delete("/services/backend/s2", at: 102),
    ])
    let backend = try #require(state.backend(for: .backend))
    let patched = try #require(backend.patching(Self.update(mirror, ["new", "s2"])))
    #expect(patched == Self.rebuilt(mirror, previous: state))
    #expect(patched.servers.map(\.name) == ["new", "s0", "s1", "s3", "s4"])
    #expect(patched.server(named: "new")?.port == 9100)
    #expect(patched.server(named: "s2") == nil)
    #expect(patched.only(["new", "s2", "s4"]).servers.map(\.name) == ["new", "s4"])
    // Nothing changed: the backend as it was.
    #expect(backend.patching(Self.update(mirror, [])) == backend)
  }

  @Test func declinesWhatChangesMoreThanServers() throws {
    // A new check path that wins the vote moves the backend's path: a reload, not a patch.
    var paths = Self.mirror(1, check: "/a")
    let pathState = DesiredState(revision: 1, services: [.backend], instances: paths.instances(of: .backend))
    paths.apply([
      InstanceChangesTests.put("/services/backend/s0", Self.registration(port: 9000, check: "/b"), at: 101)
    ])
    #expect(try #require(pathState.backend(for: .backend)).patching(Self.update(paths, ["s0"])) == nil)
    #expect(Self.rebuilt(paths, previous: pathState)?.checkPath == "/b")

    // Past round robin's weight limit the algorithm moves to random.
    var heavy = Self.mirror(2, weight: 256)
    let heavyState = DesiredState(revision: 1, services: [.backend], instances: heavy.instances(of: .backend))
    let previous = try #require(heavyState.backend(for: .backend))
    #expect(previous.balance == .roundrobin)
    let many = (0..<2050).map {
      InstanceChangesTests.put(
        "/services/backend/h\($0)", Self.registration(port: 9000, weight: 256), at: 200 + Int64($0))
    }
    heavy.apply(many)
    #expect(previous.patching(Self.update(heavy, (0..<2050).map { "h\($0)" })) == nil)
    #expect(Self.rebuilt(heavy, previous: heavyState)?.balance == .random)

    // A host name is in the structure; the last instance leaving empties the service; new settings.
    var named = Self.mirror(2)
    let namedState = DesiredState(revision: 1, services: [.backend], instances: named.instances(of: .backend))
    let namedBackend = try #require(namedState.backend(for: .backend))
    named.apply([
      InstanceChangesTests.put("/services/backend/host", #"{"address":"db.example.com","port":5432}"#, at: 101)
    ])
    #expect(namedBackend.patching(Self.update(named, ["host"])) == nil)
    named.apply([
      InstanceChangesTests.delete("/services/backend/s0", at: 102),
      InstanceChangesTests.delete("/services/backend/s1", at: 103),
      InstanceChangesTests.delete("/services/backend/host", at: 104),
    ])
    #expect(namedBackend.patching(Self.update(named, ["s0", "s1", "host"])) == nil)
    var settled = Self.mirror(2)
    settled.apply([InstanceChangesTests.put("/switchyard/services/backend", #"{"balance":"leastconn"}"#, at: 101)])
    #expect(namedBackend.patching(Self.update(settled, ["s0"])) == nil)
  }

  /// Random changes to a service of a few dozen instances, one to three at a time: whenever a patch is
  /// given, it is the backend a rebuild from every instance gives.
  @Test func aPatchIsWhatARebuildGives() throws {
    var generator = SeededGenerator(seed: 7)
    var mirror = Self.mirror(30)
    var state = DesiredState(revision: 100, services: [.backend], instances: mirror.instances(of: .backend))
    var patched = 0
    for step in Int64(1)...1500 {
      var ids: [String] = []
      for offset in Int64(0)..<Int64.random(in: 1...3, using: &generator) {
        let id = "s\(Int.random(in: 0..<40, using: &generator))"
        ids.append(id)
        let revision = 100 + step * 4 + offset
        let change: Change
        switch Int.random(in: 0..<12, using: &generator) {
        case 0..<6:
          let check = [nil, nil, nil, "/a", "/b"].randomElement(using: &generator)!
          change = InstanceChangesTests.put(
            "/services/backend/\(id)",
            Self.registration(
              port: 9000 + Int.random(in: 0..<3, using: &generator), weight: Int.random(in: 0...256, using: &generator),
              state: ["up", "up", "drain", "maint"].randomElement(using: &generator)!, check: check), at: revision)
        case 6..<9: change = InstanceChangesTests.delete("/services/backend/\(id)", at: revision)
        case 9:
          change = InstanceChangesTests.put("/switchyard/overrides/backend/\(id)", #"{"state":"drain"}"#, at: revision)
        default: change = InstanceChangesTests.delete("/switchyard/overrides/backend/\(id)", at: revision)
        }
        mirror.apply([change])
      }
      let rebuilt = Self.rebuilt(mirror, previous: state)
      if let backend = state.backend(for: .backend)?.patching(Self.update(mirror, ids)) {
        #expect(backend == rebuilt, "step \(step): \(ids)")
        patched += 1
      }
      state = DesiredState(
        revision: mirror.revision, services: [.backend], instances: mirror.instances(of: .backend), previous: state)
    }
    // Most steps keep the check path and the algorithm: patches were tried, not just declined.
    #expect(patched > 500)
  }

  @Test func mergeReplacesInsertsAndRemovesInOrder() {
    let servers = ["b", "d", "f"].map { DesiredServer(Fixture.instance($0)) }
    let replacing: [String: DesiredServer?] = [
      "a": DesiredServer(Fixture.instance("a")), "d": DesiredServer?.none, "e": DesiredServer(Fixture.instance("e")),
      "f": DesiredServer(Fixture.instance("f", "127.0.0.1", 9999)), "g": DesiredServer?.none,
    ]
    let merged = DesiredBackend.merge(servers, replacing)
    #expect(merged.map(\.name) == ["a", "b", "e", "f"])
    #expect(merged.last?.port == 9999)
    #expect(DesiredBackend.merge(servers, [:]) == servers)
  }

  @Test func replacingSwapsOneBackendAndOnlySlicesTheNamedOnes() throws {
    let api = try ServiceName(validating: "api")
    let state = DesiredState(
      revision: 1, services: [.backend, api],
      instances: [Fixture.instance("a"), Fixture.instance("b"), Fixture.instance("x", service: "api")])
    let smaller = try #require(state.backend(for: .backend)).only(["b"])
    let replaced = state.replacing([smaller], revision: 2)
    #expect(replaced.revision == 2)
    #expect(replaced.backend(for: .backend)?.servers.map(\.name) == ["b"])
    #expect(replaced.backend(for: api) == state.backend(for: api))
    let sliced = state.only(["svc_backend": ["a", "zzz"]])
    #expect(sliced.backend(for: .backend)?.servers.map(\.name) == ["a"])
    #expect(sliced.backend(for: api) == state.backend(for: api))
    #expect(state.only([:]) == state)
  }
}
