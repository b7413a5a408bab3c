/// Polls `condition` until it holds or `timeout` passes; returns whether it held. A condition
/// that throws counts as not (yet) holding, so a check may talk to a server that is restarting.
public func eventually(
  timeout: Duration,
  every interval: Duration = .milliseconds(100),
  _ condition: () async throws -> Bool
) async -> Bool {
  let clock = ContinuousClock()
  let deadline = clock.now.advanced(by: timeout)
  while clock.now < deadline {
    if (try? await condition()) == true { return true }
    try? await Task.sleep(for: interval)
  }
  return (try? await condition()) == true
}
