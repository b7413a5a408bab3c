import EtcdClient
import Foundation
import SwitchyardTestSupport
import Testing

/// `haproxy -c` costs tens of milliseconds of CPU (more with a large file): it runs when the structure
/// changes, never for server changes the Runtime API has made.
@Suite(.serialized) struct ValidationCostTests {
  @Test("server changes through the Runtime API run no haproxy -c; a structural change does")
  func runtimeChangesAreNotValidatedAgain() async throws {
    let directory = try TemporaryDirectory(prefix: "validation-count")
    defer { directory.remove() }
    let counter = directory.path("checks")
    let wrapper = directory.path("haproxy")
    let haproxy = try await ManagedProcess.run("sh", arguments: ["-c", "command -v haproxy"])
      .trimmingCharacters(in: .whitespacesAndNewlines)
    try """
    #!/bin/sh
    for argument in "$@"; do
      if [ "$argument" = "-c" ]; then echo check >> '\(counter)'; fi
    done
    exec '\(haproxy)' "$@"
    """.write(toFile: wrapper, atomically: true, encoding: .utf8)
    try FileManager.default.setAttributes([.posixPermissions: 0o755], ofItemAtPath: wrapper)
    func checks() -> Int {
      ((try? String(contentsOfFile: counter, encoding: .utf8)) ?? "").split(separator: "\n").count
    }

    try await withNodes(extraArguments: ["--haproxy", wrapper]) { _, nodes, etcd in
      let node = nodes[0]
      let servers = try await (1...3).asyncMap { try await HTTPTestServer.start(name: "v\($0)") }
      defer { Task { for server in servers { await server.close() } } }
      let atStart = checks()
      #expect(atStart >= 1, "the first file is checked")
      for (index, server) in servers.enumerated() {
        try await etcd.register("v\(index + 1)", port: server.port, checkPath: "/")
        try await node.waitServing(Set((1...(index + 1)).map { "v\($0)" }))
      }
      try await etcd.deregister("v1")
      try await node.waitServing(["v2", "v3"])
      // The file follows: it holds v2 and v3 and not v1.
      try await retrying(timeout: .seconds(5)) {
        let text = try String(contentsOfFile: "\(node.stateDirectory)/haproxy.cfg", encoding: .utf8)
        guard text.contains("server v2 "), text.contains("server v3 "), !text.contains("server v1 ") else {
          throw TestSupportError("the file does not follow yet: \(text)")
        }
      }
      #expect(checks() == atStart, "server changes ran haproxy -c \(checks() - atStart) times")

      // A server with a host name is structural: checked before the reload reads it.
      let value = #"{"address":"localhost","port":\#(servers[0].port),"state":"up","weight":100}"#
      _ = try await etcd.put("/services/backend/named", value: value)
      try await retrying(timeout: .seconds(10)) {
        guard checks() > atStart else { throw TestSupportError("no check for the structural change") }
      }
    }
  }
}
