/// How one attempt of a long-lived stream ended.
struct StreamAttemptEnd: Sendable, Hashable {
  /// Why the stream ended.
  enum Cause: Sendable, Hashable {
    /// The stream broke, stalled or its member stopped answering: the member is suspect, and the
    /// next attempt opens on another one.
    case broke
    /// etcd refused the stream's token: the token is dropped and the next attempt asks for a new one.
    case tokenRefused
  }

  var cause: Cause
  /// Whether the stream got a useful answer before it ended; a healthy stream starts the backoff over.
  var healthy: Bool

  static func broke(healthy: Bool) -> Self { Self(cause: .broke, healthy: healthy) }
  static func tokenRefused(healthy: Bool) -> Self { Self(cause: .tokenRefused, healthy: healthy) }
}

/// The spacing of a reconnecting stream's attempts: the one place that decides how long the watch
/// and the lease keepalive streams wait before they open again.
///
/// A broken stream's attempts start one ``Backoff`` delay apart (``Backoff/remainingDelay(attempt:after:)``),
/// so an attempt that already waited out an unresponsive member goes again at once. A refused token
/// is retried after the delay of the attempts so far, at once the first time.
struct ReconnectBackoff: Sendable {
  /// The delays.
  let backoff: Backoff
  /// How many attempts failed in a row since the last healthy stream.
  private(set) var attempt = 0

  init(backoff: Backoff) {
    self.backoff = backoff
  }

  /// What is left to wait after an attempt that took `elapsed` and ended as `end` says, or nil when
  /// the next attempt starts at once without sleeping.
  mutating func delay(
    after end: StreamAttemptEnd, elapsed: Duration, using generator: inout some RandomNumberGenerator
  ) -> Duration? {
    switch end.cause {
    case .broke:
      if end.healthy { attempt = 0 }
      defer { attempt += 1 }
      return backoff.remainingDelay(attempt: attempt, after: elapsed, using: &generator)
    case .tokenRefused:
      // A healthy stream keeps the count it had: a refusal alone says nothing about the member.
      if !end.healthy { attempt += 1 }
      guard attempt > 0 else { return nil }
      return backoff.delay(attempt: attempt - 1, using: &generator)
    }
  }
}

/// The members a reconnecting stream opens on, and what it tells them when a stream ends.
protocol StreamMembers<Member> {
  associatedtype Member
  /// The member the next stream opens on.
  func preferred() -> Member
  /// A stream on `member` broke: it is suspect.
  func markFailed(_ member: Member)
  /// etcd refused the token a stream on `member` was opened with: the next one asks for a new one.
  func dropToken(of member: Member) async
}

/// The members of an ``EtcdClient``: its endpoint pool and its auth tokens.
struct ClientMembers: StreamMembers {
  let client: EtcdClient

  func preferred() -> MemberConnection { client.pool.preferred() }

  func markFailed(_ member: MemberConnection) { client.pool.markFailed(member) }

  func dropToken(of member: MemberConnection) async {
    if let token = try? await client.tokens.token(client: client, member: member) {
      client.tokens.invalidate(token)
    }
  }
}

/// The reconnect loop of a long-lived etcd stream (the watch stream, the lease keepalive stream).
///
/// While there is work, it opens a stream on the preferred member, runs it until it ends, and opens
/// the next one: on another member when it broke (the member is marked failed), with a new token
/// when etcd refused the old one, waiting as ``ReconnectBackoff`` says. With no work it sleeps until
/// woken. It returns when the owner shuts down or its wake-ups end.
struct StreamReconnector<C: Clock>: Sendable where C.Duration == Duration {
  /// The delays between attempts.
  let backoff: Backoff
  /// The clock that times attempts and sleeps between them.
  let clock: C

  /// Runs attempts until `isShutdown` turns true or `wakeups` ends while idle.
  ///
  /// - Parameters:
  ///   - members: where streams open, and who hears that one broke or had its token refused.
  ///   - wakeups: yields when work may have arrived; waited on only while `hasWork` is false.
  ///   - isShutdown: whether the owner shut down.
  ///   - hasWork: whether a stream is needed at all.
  ///   - attempt: opens and runs one stream on the member, until it ends.
  func run<Members: StreamMembers>(
    members: Members,
    wakeups: AsyncStream<Void>,
    isShutdown: () -> Bool,
    hasWork: () -> Bool,
    attempt: (Members.Member) async -> StreamAttemptEnd
  ) async {
    var policy = ReconnectBackoff(backoff: backoff)
    var generator = SystemRandomNumberGenerator()
    var waiter = wakeups.makeAsyncIterator()
    while !isShutdown() {
      guard hasWork() else {
        guard await waiter.next() != nil else { return }
        continue
      }
      let member = members.preferred()
      let start = clock.now
      let end = await attempt(member)
      if isShutdown() { return }
      switch end.cause {
      case .broke: members.markFailed(member)
      case .tokenRefused: await members.dropToken(of: member)
      }
      let elapsed = start.duration(to: clock.now)
      if let delay = policy.delay(after: end, elapsed: elapsed, using: &generator) {
        try? await clock.sleep(for: delay)
      }
    }
  }
}
