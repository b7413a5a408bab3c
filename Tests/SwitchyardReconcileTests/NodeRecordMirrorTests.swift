import SwitchyardModel
import SwitchyardReconcile
import Testing

/// The nodes' records under `/switchyard/nodes/` in the mirror: they move its revision (so that a node's
/// applied revision reaches etcd's) and nothing else: no instance, no invalid entry, no newest change.
@Suite struct NodeRecordMirrorTests {
  static let registration = #"{"address":"10.0.0.1","port":8080}"#

  @Test func aFullReadSkipsTheRecordsButKeepsItsRevision() {
    let mirror = RegistrationMirror(
      revision: 20,
      entries: [
        (Array("/services/backend/a".utf8), Array(Self.registration.utf8), 7),
        (Array("/switchyard/nodes/lb1".utf8), Array("not even JSON".utf8), 19),
      ])
    #expect(mirror.revision == 20)
    #expect(mirror.newestChange == 7)
    #expect(mirror.instances.map(\.key.path) == ["/services/backend/a"])
    #expect(mirror.invalid.isEmpty)
  }

  @Test func aRecordsWriteMovesTheRevisionAndNotTheNewestChange() {
    var mirror = RegistrationMirror(revision: 10, entries: [])
    let touched = mirror.applyTracking([
      .init(key: Array("/switchyard/nodes/lb2".utf8), value: Array("{}".utf8), modRevision: 11),
      .init(key: Array("/switchyard/nodes/lb2".utf8), value: nil, modRevision: 12),
    ])
    #expect(touched.isEmpty)
    #expect(mirror.revision == 12 && mirror.newestChange == 0)
    #expect(mirror.invalid.isEmpty && mirror.instances.isEmpty)
    mirror.apply([.init(key: Array("/services/backend/b".utf8), value: Array(Self.registration.utf8), modRevision: 13)])
    #expect(mirror.revision == 13 && mirror.newestChange == 13)
    // A delete is a change too.
    mirror.apply([.init(key: Array("/services/backend/b".utf8), value: nil, modRevision: 14)])
    #expect(mirror.newestChange == 14)
  }
}
