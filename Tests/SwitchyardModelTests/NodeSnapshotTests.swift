import Foundation
import SwitchyardModel
import Testing

@Suite("A node's /state snapshot")
struct NodeSnapshotTests {
  /// `/state` as controllers wrote it before the type moved here: every key, sorted, compact.
  static let stateJSON =
    #"{"appliedRevision":42,"etcdConnected":true,"etcdWatchEndpoint":"127.0.0.1:2379","haproxyAdopted":true,"#
    + #""haproxyPID":1234,"haproxyRestarts":1,"haproxyRunning":true,"#
    + #""invalidEntries":[{"key":"\/services\/x\/bad","reason":"not JSON"}],"lastError":"boom","#
    + #""node":"lb1","#
    + #""notReadyReasons":["the etcd watch has not started"],"ready":false,"reloads":3,"#
    + #""services":[{"backend":"svc_web","checkPath":"\/healthz","name":"web","#
    + #""servers":[{"address":"[::1]:8080","adminState":"drain","health":"up","name":"web-1","registered":false,"#
    + #""weight":100}]}],"watchSilentSeconds":1.5}"#

  @Test("decodes and encodes the same keys and values")
  func roundTrip() throws {
    let snapshot = try JSONDecoder().decode(NodeSnapshot.self, from: Data(Self.stateJSON.utf8))
    #expect(snapshot.node == "lb1")
    #expect(snapshot.services.first?.servers.first?.address == "[::1]:8080")
    #expect(snapshot.invalidEntries == [NodeSnapshot.InvalidEntry(key: "/services/x/bad", reason: "not JSON")])
    let encoder = JSONEncoder()
    encoder.outputFormatting = [.sortedKeys]
    #expect(String(decoding: try encoder.encode(snapshot), as: UTF8.self) == Self.stateJSON)
  }

  @Test("leaves out absent optional fields, as before")
  func absentOptionals() throws {
    let snapshot = NodeSnapshot(
      node: "lb2", ready: true, notReadyReasons: [], appliedRevision: 0, haproxyPID: nil, haproxyRunning: false,
      haproxyAdopted: false, etcdConnected: false, watchSilentSeconds: nil, etcdWatchEndpoint: nil, reloads: 0,
      haproxyRestarts: 0, lastError: nil, services: [], invalidEntries: [])
    let encoder = JSONEncoder()
    encoder.outputFormatting = [.sortedKeys]
    let json = String(decoding: try encoder.encode(snapshot), as: UTF8.self)
    #expect(
      json
        == #"{"appliedRevision":0,"etcdConnected":false,"haproxyAdopted":false,"haproxyRestarts":0,"#
        + #""haproxyRunning":false,"invalidEntries":[],"node":"lb2","notReadyReasons":[],"ready":true,"#
        + #""reloads":0,"services":[]}"#)
  }
}
