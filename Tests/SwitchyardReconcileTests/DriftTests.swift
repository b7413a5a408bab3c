import SwitchyardModel
import SwitchyardReconcile
import Testing

@Suite struct DriftTests {
  let one = Fixture.instance("one", "127.0.0.1", 9001)
  let two = Fixture.instance("two", "127.0.0.1", 9002)

  func observed(_ servers: [ObservedServer]) -> ObservedState {
    ObservedState(backends: ["svc_backend": servers])
  }

  @Test func haproxyInStepIsNoDrift() {
    let drift = Drift(
      desired: Fixture.desired([one, two]), observed: observed([one, two].map { Fixture.observed($0) }))
    #expect(drift == Drift(desired: Fixture.desired([]), observed: ObservedState()))
    #expect(!drift.needsRepair(differedBefore: true))
  }

  @Test func aMissingServerIsRepairedOnlyWhenSeenTwiceInARow() {
    let drift = Drift(desired: Fixture.desired([one, two]), observed: observed([Fixture.observed(one)]))
    #expect(drift.missing == ["svc_backend/two"])
    #expect(drift.serversDiffer)
    #expect(!drift.needsRepair(differedBefore: false))
    #expect(drift.needsRepair(differedBefore: true))
  }

  @Test func aReadyServerNobodyWantsIsDriftButALeavingOneIsNot() {
    let ready = Drift(desired: Fixture.desired([one]), observed: observed([one, two].map { Fixture.observed($0) }))
    #expect(ready.unwanted && ready.missing.isEmpty)
    let draining = Drift(
      desired: Fixture.desired([one]),
      observed: observed([Fixture.observed(one), Fixture.observed(two, state: .drain)]))
    #expect(!draining.serversDiffer)
  }

  @Test func aWantedServerWithoutItsCheckIsRepairedAtOnce() {
    var unchecked = Fixture.observed(one)
    unchecked.isCheckEnabled = false
    let drift = Drift(desired: Fixture.desired([one]), observed: observed([unchecked]))
    #expect(drift.unchecked && !drift.serversDiffer)
    #expect(drift.needsRepair(differedBefore: false))
  }
}
