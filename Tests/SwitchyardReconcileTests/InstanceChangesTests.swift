import SwitchyardModel
import Testing

@testable import SwitchyardReconcile

/// Which instances changed, and what the mirror keeps summed per service, so that a pass can update one
/// instance's server without a look at the others.
@Suite struct InstanceChangesTests {
  typealias Change = RegistrationMirror.Change

  static func key(_ service: String, _ id: String) -> RegistrationKey {
    RegistrationKey(service: try! ServiceName(validating: service), instance: try! InstanceID(validating: id))
  }

  static func put(_ key: String, _ json: String, at revision: Int64) -> Change {
    Change(key: Array(key.utf8), value: Array(json.utf8), modRevision: revision)
  }

  static func delete(_ key: String, at revision: Int64) -> Change {
    Change(key: Array(key.utf8), value: nil, modRevision: revision)
  }

  @Test func instancesAccumulateUntilTakenAndAWholeServiceSwallowsThem() {
    var changes = InstanceChanges()
    changes.record(Self.key("backend", "a"))
    changes.record(Self.key("backend", "b"))
    changes.record(Self.key("api", "x"))
    #expect(changes[.backend] == .instances([try! InstanceID(validating: "a"), try! InstanceID(validating: "b")]))
    changes.recordWhole(.backend)
    changes.record(Self.key("backend", "c"))
    #expect(changes[.backend] == .whole)
    let api = try! ServiceName(validating: "api")
    #expect(changes.services == [.backend, api])
    let taken = changes.take([.backend, try! ServiceName(validating: "other")])
    #expect(taken == [.backend: .whole])
    #expect(changes.services == [api])
    var more = InstanceChanges()
    more.record(Self.key("api", "y"))
    more.recordWhole(.backend)
    changes.formUnion(more)
    #expect(changes[api] == .instances([try! InstanceID(validating: "x"), try! InstanceID(validating: "y")]))
    #expect(changes[.backend] == .whole)
    changes.removeAll()
    #expect(changes.isEmpty)
  }

  @Test func theMirrorNamesTheInstancesAnEventTouches() {
    var mirror = RegistrationMirror(revision: 10, entries: [])
    let touched = mirror.applyTracking([
      Self.put("/services/backend/a", #"{"address":"127.0.0.1","port":9001}"#, at: 11),
      Self.put("/switchyard/overrides/backend/b", #"{"state":"drain"}"#, at: 12),
      Self.put("/switchyard/services/api", #"{"balance":"leastconn"}"#, at: 13),
      Self.put("/services/backend/bad", "not json", at: 14),
    ])
    let ids = Set(["a", "b"].map { try! InstanceID(validating: $0) })
    #expect(touched[.backend] == .instances(ids))
    #expect(touched[try! ServiceName(validating: "api")] == .whole)
    // A valid registration turning invalid names the instance it was.
    let invalid = mirror.applyTracking([Self.put("/services/backend/a", "{", at: 15)])
    #expect(invalid[.backend] == .instances([try! InstanceID(validating: "a")]))
    #expect(mirror.instance(Self.key("backend", "a")) == nil)
    // Events at or before the mirror's base revision are in it already.
    #expect(mirror.applyTracking([Self.delete("/services/backend/a", at: 9)]).isEmpty)
  }

  @Test func theAggregateFollowsInstancesAndOverrides() {
    var mirror = RegistrationMirror(
      revision: 10,
      entries: [
        (Array("/services/backend/a".utf8), Array(#"{"address":"127.0.0.1","port":9001,"weight":10}"#.utf8), 1),
        (
          Array("/services/backend/b".utf8),
          Array(#"{"address":"127.0.0.1","port":9002,"weight":20,"check":{"path":"/h"}}"#.utf8), 2
        ),
      ])
    #expect(mirror.aggregate(of: .backend).count == 2)
    #expect(mirror.aggregate(of: .backend).upWeight == 30)
    #expect(mirror.aggregate(of: .backend).checkPaths == ["/h": 1])
    // An override takes an instance out of the weight that is up; its end puts it back.
    mirror.apply([Self.put("/switchyard/overrides/backend/a", #"{"state":"maint"}"#, at: 11)])
    #expect(mirror.aggregate(of: .backend).upWeight == 20)
    #expect(mirror.instance(Self.key("backend", "a"))?.registration.state == .maint)
    mirror.apply([Self.put("/services/backend/a", #"{"address":"127.0.0.1","port":9001,"weight":50}"#, at: 12)])
    #expect(mirror.aggregate(of: .backend).upWeight == 20)
    mirror.apply([Self.delete("/switchyard/overrides/backend/a", at: 13)])
    #expect(mirror.aggregate(of: .backend).upWeight == 70)
    mirror.apply([Self.delete("/services/backend/b", at: 14)])
    #expect(mirror.aggregate(of: .backend) == ServiceAggregate(mirror.instances(of: .backend)))
    #expect(mirror.aggregate(of: .backend).checkPaths.isEmpty)
    mirror.apply([Self.delete("/services/backend/a", at: 15)])
    #expect(mirror.aggregate(of: .backend) == ServiceAggregate())
  }

  /// Random puts, deletes, overrides and bad values: the kept aggregate always equals one summed over
  /// the served instances.
  @Test func theAggregateAlwaysEqualsTheSumOverServedInstances() {
    var generator = SeededGenerator(seed: 42)
    var mirror = RegistrationMirror(revision: 0, entries: [])
    let paths = [nil, "/a", "/b"]
    let states = ["up", "drain", "maint"]
    for revision in Int64(1)...2000 {
      let id = "i\(Int.random(in: 0..<25, using: &generator))"
      let change: Change
      switch Int.random(in: 0..<10, using: &generator) {
      case 0..<5:
        let weight = Int.random(in: 0...256, using: &generator)
        let state = states.randomElement(using: &generator)!
        let check = paths.randomElement(using: &generator)!.map { #","check":{"path":"\#($0)"}"# } ?? ""
        change = Self.put(
          "/services/backend/\(id)",
          #"{"address":"127.0.0.1","port":9000,"weight":\#(weight),"state":"\#(state)"\#(check)}"#, at: revision)
      case 5: change = Self.put("/services/backend/\(id)", "garbage", at: revision)
      case 6, 7: change = Self.delete("/services/backend/\(id)", at: revision)
      case 8:
        let state = ["drain", "maint"].randomElement(using: &generator)!
        change = Self.put("/switchyard/overrides/backend/\(id)", #"{"state":"\#(state)"}"#, at: revision)
      default: change = Self.delete("/switchyard/overrides/backend/\(id)", at: revision)
      }
      mirror.apply([change])
      #expect(mirror.aggregate(of: .backend) == ServiceAggregate(mirror.instances(of: .backend)))
    }
  }
}

/// A small deterministic generator, so that a failing random sequence can be run again.
struct SeededGenerator: RandomNumberGenerator {
  private var state: UInt64

  init(seed: UInt64) { state = seed }

  mutating func next() -> UInt64 {
    // SplitMix64.
    state &+= 0x9E37_79B9_7F4A_7C15
    var z = state
    z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
    z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
    return z ^ (z >> 31)
  }
}
