import ArgumentParser
import Testing

@testable import SwitchyardCLI

@Suite("switchyard bench options")
struct BenchCommandTests {
  @Test("--scenario and --strategy take known names only, and say which ones exist")
  func validation() throws {
    let picked = try BenchCommand.parse(["--scenario", "burst", "--strategy", "runtime"])
    #expect(picked.scenarios == ["burst"])
    #expect(picked.strategies == ["runtime"])
    let strategy = #expect(throws: (any Error).self) { try BenchCommand.parse(["--strategy", "restart"]) }
    let strategyMessage = BenchCommand.message(for: strategy!)
    #expect(strategyMessage.contains("--strategy: unknown update strategy \"restart\""))
    #expect(strategyMessage.contains("runtime, reload"))
    let scenario = #expect(throws: (any Error).self) { try BenchCommand.parse(["--scenario", "soak"]) }
    #expect(BenchCommand.message(for: scenario!).contains("--scenario: unknown scenario \"soak\""))
  }
}
