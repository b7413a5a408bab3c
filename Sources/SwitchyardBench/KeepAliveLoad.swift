import Histogram
import NIOCore
import NIOHTTP1
import NIOPosix

/// What a load run saw: requests, failures by kind and a latency histogram.
public struct LoadResult: Sendable {
  /// Counted responses with status 200.
  public var successes = 0
  /// Connections that could not be opened.
  public var failedConnect = 0
  /// Requests whose connection closed or failed before a complete response.
  public var failedClosed = 0
  /// Responses with a status other than 200.
  public var failedStatus = 0
  /// Latency of every counted response with status 200, in microseconds.
  public var latency = Histogram<UInt64>(highestTrackableValue: 60_000_000, numberOfSignificantValueDigits: .three)
  /// How long the run lasted.
  public var seconds = 0.0

  /// Creates an empty result.
  public init() {}

  /// Every failure, whatever its kind.
  public var failed: Int { failedConnect + failedClosed + failedStatus }
  /// Successes and failures.
  public var requests: Int { successes + failed }
  /// Successful requests per second.
  public var requestsPerSecond: Double { seconds > 0 ? Double(successes) / seconds : 0 }

  /// Adds `later`, a run that came after this one: its counts, latencies and seconds.
  mutating func append(_ later: LoadResult) {
    merge(later)
    seconds += later.seconds
  }

  /// Adds `other`, a part of the same run (another connection): its counts and latencies, not its time.
  mutating func merge(_ other: LoadResult) {
    successes += other.successes
    failedConnect += other.failedConnect
    failedClosed += other.failedClosed
    failedStatus += other.failedStatus
    latency.add(other.latency)
  }
}

/// Closed-loop HTTP/1.1 keep-alive load on loopback: `connections` connections, each sending its next `GET`
/// as soon as the previous response is complete, for a fixed time. Reconnects (after 10 ms) when a connection
/// is closed or fails.
public enum KeepAliveLoad {
  typealias Connection = NIOAsyncChannel<HTTPClientResponsePart, HTTPClientRequestPart>

  struct Closed: Error {}

  /// Runs the load against `http://127.0.0.1:<port>/` for `duration` and returns what it saw.
  ///
  /// The first `settle` of it is load that is not counted: its answers are neither in ``LoadResult/successes``
  /// nor in the latencies, and ``LoadResult/seconds`` starts after it. Its failures are counted.
  public static func run(port: Int, connections: Int, duration: Duration, settle: Duration = .zero) async -> LoadResult
  {
    let start = ContinuousClock.now
    let countFrom = start.advanced(by: min(settle, duration))
    let deadline = start.advanced(by: duration)
    var total = await withTaskGroup(of: LoadResult.self) { group in
      for _ in 0..<max(connections, 1) {
        group.addTask { await connectionLoop(port: port, countFrom: countFrom, deadline: deadline) }
      }
      var total = LoadResult()
      for await partial in group { total.merge(partial) }
      return total
    }
    total.seconds = seconds(countFrom.duration(to: .now))
    return total
  }

  static func seconds(_ duration: Duration) -> Double {
    Double(duration.components.seconds) + Double(duration.components.attoseconds) / 1e18
  }

  private static func connectionLoop(
    port: Int, countFrom: ContinuousClock.Instant, deadline: ContinuousClock.Instant
  ) async -> LoadResult {
    var result = LoadResult()
    var head = HTTPRequestHead(version: .http1_1, method: .GET, uri: "/")
    head.headers.add(name: "Host", value: "127.0.0.1:\(port)")
    let request: [HTTPClientRequestPart] = [.head(head), .end(nil)]
    while ContinuousClock.now < deadline && !Task.isCancelled {
      let channel: Connection
      do {
        channel = try await ClientBootstrap(group: MultiThreadedEventLoopGroup.singleton)
          .connectTimeout(.seconds(2))
          .channelOption(.socketOption(.tcp_nodelay), value: 1)
          .connect(host: "127.0.0.1", port: port) { channel in
            channel.eventLoop.makeCompletedFuture {
              try channel.pipeline.syncOperations.addHTTPClientHandlers()
              return try Connection(wrappingChannelSynchronously: channel)
            }
          }
      } catch {
        result.failedConnect += 1
        try? await Task.sleep(for: .milliseconds(10))
        continue
      }
      do {
        try await channel.executeThenClose { inbound, outbound in
          var parts = inbound.makeAsyncIterator()
          while ContinuousClock.now < deadline {
            let sent = ContinuousClock.now
            try await outbound.write(contentsOf: request)
            var status: UInt?
            var keepAlive = true
            var complete = false
            reading: while let part = try await parts.next() {
              switch part {
              case .head(let responseHead):
                status = responseHead.status.code
                keepAlive = responseHead.isKeepAlive
              case .body:
                break
              case .end:
                complete = true
                break reading
              }
            }
            guard complete, let status else { throw Closed() }
            if status != 200 {
              result.failedStatus += 1
            } else if sent >= countFrom {
              _ = result.latency.record(UInt64(max(0, seconds(sent.duration(to: .now)) * 1_000_000)))
              result.successes += 1
            }
            if !keepAlive { return }
          }
        }
      } catch {
        result.failedClosed += 1
        try? await Task.sleep(for: .milliseconds(10))
      }
    }
    return result
  }
}
