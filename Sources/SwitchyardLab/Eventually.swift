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

/// Runs `attempt` until it does not throw; after `timeout`, throws its last error, so that a failing wait
/// says what it last saw.
public func retrying(
  timeout: Duration,
  every interval: Duration = .milliseconds(100),
  _ attempt: () async throws -> Void
) async throws {
  let deadline = ContinuousClock.now.advanced(by: timeout)
  while true {
    do {
      try await attempt()
      return
    } catch {
      if ContinuousClock.now >= deadline { throw error }
    }
    try await Task.sleep(for: interval)
  }
}

extension Sequence {
  /// `map` with an async transform, one element after another.
  public func asyncMap<T>(_ transform: (Element) async throws -> T) async rethrows -> [T] {
    var result: [T] = []
    for element in self { result.append(try await transform(element)) }
    return result
  }
}
