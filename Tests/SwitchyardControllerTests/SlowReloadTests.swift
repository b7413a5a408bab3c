import Logging
import SwitchyardModel
import SwitchyardReconcile
import Testing

@testable import SwitchyardController

/// A slow reload is logged with how long it took, why it happened and what could have slowed it.
@Suite struct SlowReloadTests {
  let desired: DesiredState = {
    let instances = [("ip", "127.0.0.1"), ("named", "backend-1.internal"), ("other", "db.example")].map { id, address in
      ServiceInstance(
        key: RegistrationKey(service: .backend, instance: try! InstanceID(validating: id)),
        registration: try! Registration(address: Address(validating: address), port: 9001),
        modRevision: 1
      )
    }
    return DesiredState(revision: 3, services: [.backend], instances: instances)
  }()

  @Test func aReloadWithinThreeSecondsIsNotReported() {
    #expect(Applier.slowReloadReport(took: .milliseconds(40), reason: "x", desired: desired) == nil)
    #expect(Applier.slowReloadReport(took: .seconds(3), reason: "x", desired: desired) == nil)
  }

  @Test func aSlowReloadNamesItsReasonAndTheHostNamesResolvedAtLoad() throws {
    let reason = "the configuration's structure changed at line 40"
    let metadata = try #require(
      Applier.slowReloadReport(took: .milliseconds(3_200), reason: reason, desired: desired)
    )
    #expect(metadata["duration"] == "3.2 seconds")
    #expect(metadata["reason"] == "\(reason)")
    #expect(metadata["host_names_resolved_at_load"] == "backend-1.internal,db.example")
  }

  @Test func aSlowReloadWithoutHostNamesSaysSo() throws {
    let onlyAddresses = DesiredState(revision: 3, backends: [])
    let metadata = try #require(Applier.slowReloadReport(took: .seconds(5), reason: "r", desired: onlyAddresses))
    #expect(metadata["host_names_resolved_at_load"] == "none")
  }
}
