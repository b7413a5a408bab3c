import HAProxyKit
import SwitchyardReconcile
import Testing

@testable import SwitchyardController

/// The policies of the controller's parts that need no etcd or HAProxy.
@Suite struct ControllerPartsTests {
  let add = RuntimeCommand.setWeight(ServerRef(backend: "svc_backend", server: "one"), 10)
  let delete = RuntimeCommand.deleteServer(ServerRef(backend: "svc_backend", server: "two"))
  let refused = HAProxyError(.unexpectedReply, "refused")

  @Test func everyReplyConfirmedIsDone() {
    #expect(CommandOutcome(commands: [add, delete], results: [nil, nil]) == .done)
  }

  @Test func aRefusedDeleteIsDeferredNotFailed() {
    #expect(CommandOutcome(commands: [add, delete], results: [nil, refused]) == .deletesDeferred)
  }

  @Test func anyOtherRefusalFailsTheBatchWhateverItsPlace() {
    #expect(CommandOutcome(commands: [delete, add], results: [refused, refused]) == .failed)
    #expect(CommandOutcome(commands: [add, delete], results: [refused, nil]) == .failed)
  }

  @Test func validationIsSkippedOnlyForServersAlreadyAppliedOnACheckedStructure() {
    #expect(!ConfigWriter.needsValidation(structure: "s", installedStructure: "s", serversApplied: true))
    #expect(ConfigWriter.needsValidation(structure: "s", installedStructure: "s", serversApplied: false))
    #expect(ConfigWriter.needsValidation(structure: "s2", installedStructure: "s", serversApplied: true))
    #expect(ConfigWriter.needsValidation(structure: "s", installedStructure: nil, serversApplied: true))
  }
}
