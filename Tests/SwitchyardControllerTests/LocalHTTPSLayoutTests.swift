import Foundation
import SwitchyardLocal
import Testing

/// The local cluster's HTTPS layout, without starting anything: which LB nodes serve HTTPS, where, and
/// with what (`up --https`, implied by `--secure`).
struct LocalHTTPSLayoutTests {
  private func layout(secure: Bool = false, https: Bool = false, httpsPorts: [Int]? = nil) -> ClusterLayout {
    var ports = ClusterPorts.defaults(members: 1, nodes: 2)
    ports.https = httpsPorts
    return ClusterLayout(home: "/h", switchyard: "/bin/switchyard", ports: ports, secure: secure, https: https)
  }

  @Test func httpsNodesGetTheListenerTheClusterKeyAndTheDefaultCertificate() throws {
    for plain in [layout(secure: true), layout(https: true)] {
      #expect(plain.servesHTTPS)
      #expect(plain.httpsPorts == [8443, 8444])
      let nodes = plain.lbNodes()
      for (index, node) in nodes.enumerated() {
        let arguments = node.arguments.joined(separator: " ")
        #expect(arguments.contains("--listen-https 127.0.0.1:\(8443 + index)"), "\(arguments)")
        #expect(arguments.contains("--cluster-key /h/pki/cluster.key --default-certificate local"), "\(arguments)")
        #expect(node.ports.last == 8443 + index)
        #expect(node.httpsAddress == "https://127.0.0.1:\(8443 + index)")
      }
      #expect(
        plain.httpsExamples == [
          "curl --cacert /h/pki/ca.pem https://localhost:8443/", "curl --cacert /h/pki/ca.pem https://localhost:8444/",
        ])
    }
    let moved = layout(https: true, httpsPorts: [9443, 9444])
    #expect(moved.lbNodes()[1].arguments.contains("127.0.0.1:9444"))
  }

  @Test func withoutHTTPSNothingChanges() {
    let plain = layout()
    #expect(!plain.servesHTTPS && plain.httpsPorts.isEmpty && plain.httpsExamples.isEmpty)
    for node in plain.lbNodes() {
      #expect(!node.arguments.contains("--listen-https") && !node.arguments.contains("--cluster-key"))
      #expect(node.httpsAddress == nil && node.ports.count == 3)
    }
  }

  @Test func httpsPortsAreCheckedWithTheOthers() {
    var ports = ClusterPorts.defaults(members: 1, nodes: 2)
    ports.https = [8443]
    #expect(ports.problem(members: 1, nodes: 2) == "2 LB nodes need 2 HTTPS ports")
    ports.https = [8443, 8001]
    #expect(ports.problem(members: 1, nodes: 2) == "a port is listed twice")
    ports.https = [8443, 8444]
    #expect(ports.problem(members: 1, nodes: 2) == nil && ports.all.suffix(2) == [8443, 8444])
  }

  @Test func aStateFileFromBeforeHTTPSStillReads() throws {
    let directory = FileManager.default.temporaryDirectory.appendingPathComponent("https-state-\(UUID().uuidString)")
    try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
    defer { try? FileManager.default.removeItem(at: directory) }
    let old = #"""
      {"version":1,"ports":{"etcdClient":[2379],"etcdPeer":[2380],"lb":[8001],"stats":[8401],"admin":[9101]},
       "switchyard":"/bin/switchyard","etcd":"etcd","parts":[],"secure":false}
      """#
    try old.write(to: directory.appendingPathComponent("cluster.json"), atomically: true, encoding: .utf8)
    let state = try #require(try ClusterState.load(home: directory.path))
    #expect(!state.servesHTTPS && state.ports.https == nil)
    #expect(!state.layout(home: directory.path).servesHTTPS)
  }
}
