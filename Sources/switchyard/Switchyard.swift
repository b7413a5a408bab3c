import ArgumentParser
import SwitchyardCLI

/// Entry point: the command tree lives in SwitchyardCLI so tests can drive it too.
@main
extension SwitchyardCommand {}
