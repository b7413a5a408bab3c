import Foundation
import SwitchyardModel
import SwitchyardReconcile
import Testing

/// Builders for the reconcile tests.
enum Fixture {
  static let settings = try! NodeSettings(
    nodeID: "lb1",
    listen: HostPort(parsing: "127.0.0.1:8001"),
    stats: HostPort(parsing: "127.0.0.1:8401"),
    adminSocketPath: "/var/lib/switchyard/lb1/admin.sock"
  )

  static func instance(
    _ id: String,
    _ address: String = "127.0.0.1",
    _ port: Int = 9001,
    service: String = "backend",
    weight: Int = 100,
    state: InstanceState = .up,
    checkPath: String? = nil,
    revision: Int64 = 1
  ) -> ServiceInstance {
    let key = RegistrationKey(service: try! ServiceName(validating: service), instance: try! InstanceID(validating: id))
    let registration = try! Registration(
      address: Address(validating: address),
      port: port,
      weight: weight,
      state: state,
      checkPath: checkPath
    )
    return ServiceInstance(key: key, registration: registration, modRevision: revision)
  }

  static func desired(_ instances: [ServiceInstance], services: [ServiceName] = [.backend]) -> DesiredState {
    DesiredState(revision: 7, services: services, instances: instances)
  }

  static func observed(_ instance: ServiceInstance, state: ServerAdminState = .ready, active: Int = 0) -> ObservedServer
  {
    ObservedServer(
      name: instance.key.instance.rawValue,
      address: instance.registration.address.text,
      port: instance.registration.port,
      weight: instance.registration.weight,
      adminState: state,
      activeConnections: active
    )
  }

  /// The directory of the golden files, next to this source file.
  static let goldenDirectory = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent(
    "Golden"
  )

  /// Compares `text` with a golden file; `SWITCHYARD_UPDATE_GOLDEN=1` rewrites the file instead.
  static func expectGolden(_ text: String, _ name: String, sourceLocation: SourceLocation = #_sourceLocation) throws {
    let url = goldenDirectory.appendingPathComponent(name)
    if ProcessInfo.processInfo.environment["SWITCHYARD_UPDATE_GOLDEN"] == "1" {
      try FileManager.default.createDirectory(at: goldenDirectory, withIntermediateDirectories: true)
      try text.write(to: url, atomically: true, encoding: .utf8)
      return
    }
    let expected = try String(contentsOf: url, encoding: .utf8)
    #expect(text == expected, "rendered config differs from \(name)", sourceLocation: sourceLocation)
  }
}
