import EtcdClient
import Foundation
import Hummingbird
import NIOCore
import SwitchyardCerts
import SwitchyardLab
import SwitchyardModel
import SwitchyardProcess
import SwitchyardTestSupport
import Synchronization
import Testing

/// ACME with real controllers, HAProxy, etcd and Pebble: one node orders for the cluster, every node's
/// HAProxy answers the challenges, and when the elected node dies mid-order the other finishes it.
@Suite("ACME at the edge: one order for the cluster, answered by every node", .serialized)
struct ACMEEdgeTests {
  /// Holds the CA's validation requests until opened, then asks `upstreamPort` (a node's HAProxy) for the
  /// same path and hands its answer back: the CA sees exactly what that node serves.
  final class ChallengeGate: Sendable {
    final class Counts: Sendable {
      let value = Mutex<(hits: Int, open: Bool, answered: Int)>((0, false, 0))
      func withLock<T: Sendable>(_ body: (inout (hits: Int, open: Bool, answered: Int)) -> T) -> T {
        value.withLock { body(&$0) }
      }
    }
    private let state = Counts()
    private let task: Task<Void, any Error>
    var hits: Int { state.withLock { $0.hits } }
    var answered: Int { state.withLock { $0.answered } }
    func open() { state.withLock { $0.open = true } }

    init(port: Int, upstreamPort: Int) {
      let router = Router()
      let state = state
      router.get("/.well-known/acme-challenge/{token}") { request, context -> Response in
        state.withLock { $0.hits += 1 }
        while !state.withLock({ $0.open }) { try await Task.sleep(for: .milliseconds(20)) }
        let token = context.parameters.get("token") ?? ""
        let answer = try await TLSClient.get(
          port: upstreamPort, path: "/.well-known/acme-challenge/\(token)",
          hostHeader: request.head.authority ?? "localhost", tls: false)
        if answer.status == 200 { state.withLock { $0.answered += 1 } }
        return Response(
          status: .init(code: answer.status), body: .init(byteBuffer: ByteBuffer(string: answer.body)))
      }
      let app = Application(
        router: router, configuration: .init(address: .hostname("127.0.0.1", port: port)), logger: quietLogger)
      task = Task { try await app.runService(gracefulShutdownSignals: []) }
    }

    func stop() async {
      task.cancel()
      _ = try? await task.value
    }
  }

  @Test("the elected node is killed (-9) mid-order: the other finishes it, and every node serves the certificate")
  func leaderKilledMidOrder() async throws {
    let material = try EdgeTLSTests.Material()
    defer { material.directory.remove() }
    let gatePort = try FreePort.allocate(1)[0]
    try await PebbleLab.with(httpPort: gatePort) { pebble in
      let cluster = try await EtcdCluster.start(members: 1)
      let httpsPorts = try FreePort.allocate(2)
      var nodes: [LBNode] = []
      do {
        for index in 0..<2 {
          nodes.append(
            try LBNode(
              name: "lb\(index + 1)", endpoints: cluster.endpoints,
              extraArguments: [
                "--listen-https", "127.0.0.1:\(httpsPorts[index])", "--cluster-key", material.clusterKeyFile,
                "--acme-directory", pebble.directoryURL, "--acme-ca", pebble.caCertificate,
              ]))
        }
        try await withRegistry(cluster) { etcd in
          // The route first, then lb1 alone, so that it is the elected node and orders at once; Pebble's
          // requests are held, then answered by lb2's HAProxy.
          let proxy = ChallengeGate(port: gatePort, upstreamPort: nodes[1].listenPort)
          defer { Task { await proxy.stop() } }
          try await etcd.put(
            Route.root + "web", value: #"{"service":"backend","hosts":["www.example.test"],"acme":true}"#)
          try nodes[0].start()
          try await nodes[0].waitReady()
          try await retrying(timeout: .seconds(15)) {
            guard try await etcd.value(of: "/switchyard/acme/leader")?.valueString == "lb1" else {
              throw TestSupportError("lb1 is not the ACME leader yet")
            }
          }
          try nodes[1].start()
          try await nodes[1].waitReady()
          // The CA's validation request is held: the order is in flight, its challenge published.
          try await retrying(timeout: .seconds(20)) {
            guard proxy.hits > 0 else { throw TestSupportError("no validation request from Pebble yet") }
          }
          #expect(try await etcd.value(of: CertificateRecord.root + "acme-web") == nil)
          #expect(try await !etcd.get(.prefix("/switchyard/acme/challenges/")).kvs.isEmpty)
          await nodes[0].killController()
          proxy.open()
          // lb2 answers from its own HAProxy; once lb1's lease expires it leads and finishes the order.
          try await retrying(timeout: .seconds(45)) {
            guard try await etcd.value(of: CertificateRecord.root + "acme-web") != nil else {
              throw TestSupportError("no certificate yet; lb2: \(nodes[1].log().suffix(1500))")
            }
          }
          #expect(proxy.answered > 0, "lb2's HAProxy never answered a challenge")
          let leader = try await etcd.value(of: "/switchyard/acme/leader")?.valueString
          #expect(leader == "lb2")
          let root = "\(material.directory.path)/pebble-root.pem"
          try (try await pebble.issuingRoot()).write(toFile: root, atomically: true, encoding: .utf8)
          try await retrying(timeout: .seconds(10)) {
            let peer = try await TLSClient.handshake(
              port: httpsPorts[1], serverName: "www.example.test", trustRootsPEMFile: root)
            guard peer.dnsNames == ["www.example.test"] else { throw TestSupportError("lb2 serves \(peer)") }
          }
          // lb1, started again, serves it from etcd too; the challenges are gone.
          try nodes[0].start()
          try await nodes[0].waitReady()
          try await retrying(timeout: .seconds(10)) {
            let peer = try await TLSClient.handshake(
              port: httpsPorts[0], serverName: "www.example.test", trustRootsPEMFile: root)
            guard peer.dnsNames == ["www.example.test"] else { throw TestSupportError("lb1 serves \(peer)") }
          }
          try await retrying(timeout: .seconds(15)) {
            guard try await etcd.get(.prefix("/switchyard/acme/challenges/")).kvs.isEmpty else {
              throw TestSupportError("challenges left in etcd")
            }
          }
          let state = try await nodes[1].state()
          #expect(state.acme?.isLeader == true)
          #expect(state.certificates?.first { $0.name == "acme-web" }?.source == "acme")
        }
      } catch {
        for node in nodes { Issue.record("\(node.name) log:\n\(node.log())") }
        Issue.record("pebble log:\n\(pebble.pebbleLog())")
        for node in nodes { await node.cleanup() }
        await cluster.shutdown()
        throw error
      }
      for node in nodes { await node.cleanup() }
      await cluster.shutdown()
    }
  }
}
