import Dispatch
import Foundation
import Logging
import Prometheus
import ServiceLifecycle
import SwitchyardReconcile
import Synchronization

#if canImport(Glibc)
  import Glibc
#elseif canImport(Darwin)
  import Darwin
#endif

/// Reads HAProxy's access log from the node's datagram socket and writes it, as text or JSON, to standard
/// output or a file.
///
/// HAProxy sends each request's line as one datagram to `<state-dir>/access.sock` (`log unix@…` in the
/// frontends), without waiting: when the socket's queue is full because nobody reads, HAProxy drops the line
/// and counts it (`show info` DroppedLogs, `haproxy_process_dropped_logs_total` on the stats address's
/// `/metrics`). So HAProxy never blocks on the log, and a slow reader costs log lines, never requests.
///
/// Two threads of their own, so that neither the controller's passes nor a slow output hold up the reading:
/// one moves datagrams from the socket into a queue in memory (at most ``queueCapacity`` bytes), the other
/// parses them (``AccessLogFormat``), renders them (``AccessRecord/rendered(_:node:)``) and writes them.
/// When the output is slower than the traffic for long enough to fill the queue, the controller drops lines
/// and counts them (`switchyard_access_log_dropped_total{reason="queue-full"}`).
///
/// A file is appended to. Once a second, and on SIGHUP, the writer checks whether the path still names the
/// file it has open; when logrotate moved it away (or it was removed), it opens the path again, so a
/// rotation needs neither `copytruncate` nor a signal.
///
/// A `Service`: it runs until graceful shutdown, then reads what is left on the socket, writes it, and
/// removes the socket. Run it before the controller in a `ServiceGroup`, so that it stops after the
/// controller has stopped HAProxy and the last requests' lines have arrived.
public final class AccessLogReceiver: Service, Sendable {
  /// The socket HAProxy sends to.
  public let socketPath: String
  /// The most bytes of datagrams the queue between the threads holds (16 MiB: some 80,000 lines).
  public static let queueCapacity = 16 << 20

  private let node: String
  private let style: AccessLogStyle
  private let destination: AccessLogDestination
  private let descriptor: Int32
  private let output: Mutex<AccessLogOutput>
  private let queue = Mutex(Pending())
  private let wakeup = DispatchSemaphore(value: 0)
  private let stopping = Atomic<Bool>(false)
  private let readerDone = Atomic<Bool>(false)
  private let reopenRequested = Atomic<Bool>(false)
  private let hangup = Mutex<(any DispatchSourceSignal)?>(nil)
  private let logger: Logger
  private let counters: Counters

  private struct Pending {
    var datagrams: [[UInt8]] = []
    var bytes = 0
    var dropped = 0
  }

  private struct Counters: Sendable {
    let records: Counter
    let queueFull: Counter
    let writeFailed: Counter
    let malformed: Counter
  }

  /// Binds the socket at `socketPath` (a stale one is replaced) and opens the destination, so that HAProxy,
  /// started later, finds the socket in place. Nothing is read until ``run()``.
  ///
  /// - Throws: ``AccessLogError`` when the socket cannot be bound or the file cannot be opened.
  public init(
    socketPath: String, destination: AccessLogDestination, style: AccessLogStyle, node: String,
    metrics: ControllerMetrics, logger: Logger
  ) throws(AccessLogError) {
    self.socketPath = socketPath
    self.destination = destination
    self.style = style
    self.node = node
    self.logger = logger
    output = Mutex(try AccessLogOutput(destination))
    descriptor = try Self.bindSocket(socketPath)
    let registry = metrics.registry
    func counter(_ name: String, _ labels: [(String, String)], _ help: String) -> Counter {
      registry.makeCounter(
        descriptor: MetricNameDescriptor(metricName: name, unitName: "", helpText: help), labels: labels)
    }
    let dropped = "switchyard_access_log_dropped_total"
    let droppedHelp = "Access log lines the controller dropped: its queue was full, or the output failed."
    counters = Counters(
      records: counter("switchyard_access_log_records_total", [], "Access log lines written."),
      queueFull: counter(dropped, [("reason", "queue-full")], droppedHelp),
      writeFailed: counter(dropped, [("reason", "write-failed")], droppedHelp),
      malformed: counter(
        "switchyard_access_log_malformed_total", [],
        "Datagrams on the access log socket with the format's marker that did not parse."))
    // A closed standard output must cost log lines, not the controller.
    signal(SIGPIPE, SIG_IGN)
  }

  private static func bindSocket(_ path: String) throws(AccessLogError) -> Int32 {
    var address = sockaddr_un()
    address.sun_family = sa_family_t(AF_UNIX)
    let bytes = Array(path.utf8)
    let capacity = MemoryLayout.size(ofValue: address.sun_path)
    guard bytes.count < capacity else { throw AccessLogError("socket path \(path) is too long") }
    withUnsafeMutableBytes(of: &address.sun_path) { raw in
      raw.copyBytes(from: bytes)
      raw[bytes.count] = 0
    }
    #if canImport(Glibc)
      let type = Int32(SOCK_DGRAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue)
    #else
      let type = SOCK_DGRAM
    #endif
    let descriptor = socket(AF_UNIX, type, 0)
    guard descriptor >= 0 else { throw AccessLogError("cannot create a socket: \(String(cString: strerror(errno)))") }
    unlink(path)
    let bound = withUnsafePointer(to: &address) {
      $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
        bind(descriptor, $0, socklen_t(MemoryLayout<sockaddr_un>.size))
      }
    }
    guard bound == 0 else {
      let reason = String(cString: strerror(errno))
      close(descriptor)
      throw AccessLogError("cannot bind \(path): \(reason)")
    }
    chmod(path, 0o600)
    return descriptor
  }

  /// Reads and writes until graceful shutdown (or cancellation), then drains the socket and stops.
  public func run() async throws {
    if case .file = destination { watchHangup() }
    logger.info(
      "Access log on",
      metadata: ["socket": "\(socketPath)", "destination": "\(destination)", "format": "\(style.rawValue)"])
    if let queue = Self.socketQueueLength(), queue < 128 {
      logger.notice(
        """
        The access log socket's queue holds \(queue) lines: HAProxy drops lines whenever the reader falls that \
        far behind; raise it with sysctl net.unix.max_dgram_qlen=512 where bursts must not cost lines
        """,
        metadata: ["net.unix.max_dgram_qlen": "\(queue)"])
    }
    let reader = ThreadCompletion()
    let writer = ThreadCompletion()
    Thread.detachNewThread { [self] in
      readLoop()
      readerDone.store(true, ordering: .releasing)
      wakeup.signal()
      reader.finish()
    }
    Thread.detachNewThread { [self] in
      writeLoop()
      writer.finish()
    }
    try? await gracefulShutdown()
    stopping.store(true, ordering: .releasing)
    await reader.wait()
    await writer.wait()
    hangup.withLock { source in
      source?.cancel()
      source = nil
    }
    close(descriptor)
    unlink(socketPath)
    output.withLock { $0.closeFile() }
  }

  /// How many datagrams a Unix datagram socket's queue holds in this network namespace (Linux), if known.
  static func socketQueueLength() -> Int? {
    guard let text = try? String(contentsOfFile: "/proc/sys/net/unix/max_dgram_qlen", encoding: .utf8) else {
      return nil
    }
    return Int(text.trimmingCharacters(in: .whitespacesAndNewlines))
  }

  /// SIGHUP opens the file again (logrotate's `postrotate`), instead of ending the controller.
  private func watchHangup() {
    signal(SIGHUP, SIG_IGN)
    hangup.withLock { slot in
      let source = DispatchSource.makeSignalSource(signal: SIGHUP, queue: .global())
      source.setEventHandler { [self] in
        reopenRequested.store(true, ordering: .releasing)
        wakeup.signal()
      }
      source.resume()
      slot = source
    }
  }

  // MARK: - The reading thread

  private func readLoop() {
    var buffer = [UInt8](repeating: 0, count: 65_536)
    var ready = pollfd(fd: descriptor, events: Int16(POLLIN), revents: 0)
    while true {
      // After shutdown, one last sweep takes what HAProxy sent before it stopped.
      let last = stopping.load(ordering: .acquiring)
      if !last { _ = poll(&ready, 1, 100) }
      var batch: [[UInt8]] = []
      while batch.count < 4096 {
        let received = buffer.withUnsafeMutableBytes { raw in
          recv(descriptor, raw.baseAddress, raw.count, Int32(MSG_DONTWAIT))
        }
        if received < 0 && errno == EINTR { continue }
        guard received >= 0 else { break }
        batch.append(Array(buffer[0..<received]))
      }
      if !batch.isEmpty {
        queue.withLock { pending in
          for datagram in batch {
            if pending.bytes + datagram.count > Self.queueCapacity {
              pending.dropped += 1
            } else {
              pending.bytes += datagram.count
              pending.datagrams.append(datagram)
            }
          }
        }
        wakeup.signal()
      }
      if last && batch.isEmpty { return }
    }
  }

  // MARK: - The writing thread

  private func writeLoop() {
    var lastCheck = ContinuousClock.now
    var failing = false
    var malformedLogged: ContinuousClock.Instant?
    var messages = RateLimit(perMinute: 20)
    while true {
      _ = wakeup.wait(timeout: .now() + .seconds(1))
      let (datagrams, dropped) = queue.withLock { pending in
        defer { pending = Pending() }
        return (pending.datagrams, pending.dropped)
      }
      if dropped > 0 {
        counters.queueFull.increment(by: Int64(dropped))
        logger.warning(
          "Access log lines dropped: the output is slower than the traffic",
          metadata: ["dropped": "\(dropped)", "destination": "\(destination)"])
      }
      let force = reopenRequested.exchange(false, ordering: .acquiringAndReleasing)
      if force || lastCheck.duration(to: .now) >= .seconds(1) {
        lastCheck = .now
        if let event = output.withLock({ $0.reopenIfMoved(force: force) }) {
          logger.notice("Access log file \(event)", metadata: ["path": "\(destination)"])
        }
      }
      var lines: [UInt8] = []
      var count = 0
      func flush() {
        guard !lines.isEmpty else { return }
        if let error = output.withLock({ $0.append(lines) }) {
          counters.writeFailed.increment(by: Int64(count))
          if !failing {
            logger.error(
              "Cannot write the access log; its lines are dropped until it can",
              metadata: ["destination": "\(destination)", "error": "\(error)"])
          }
          failing = true
        } else {
          counters.records.increment(by: Int64(count))
          if failing { logger.notice("Access log written again", metadata: ["destination": "\(destination)"]) }
          failing = false
        }
        lines.removeAll(keepingCapacity: true)
        count = 0
      }
      for datagram in datagrams {
        switch AccessLogFormat.parse(datagram) {
        case .record(let record):
          lines += record.rendered(style, node: node)
          count += 1
          if lines.count >= 256 << 10 { flush() }
        case .message(let text):
          if messages.allow() { logger.info("HAProxy", metadata: ["message": "\(Self.printable(text))"]) }
        case .malformed(let reason):
          counters.malformed.increment()
          if malformedLogged.map({ $0.duration(to: .now) >= .seconds(60) }) ?? true {
            malformedLogged = .now
            logger.warning(
              "A line on the access log socket does not parse; it is dropped (logged at most once a minute)",
              metadata: ["reason": "\(reason)", "line": "\(Self.printable(datagram))"])
          }
        }
      }
      flush()
      if datagrams.isEmpty && readerDone.load(ordering: .acquiring) {
        if queue.withLock({ $0.datagrams.isEmpty }) { return }
      }
    }
  }

  /// At most 300 bytes of `bytes`, escaped as a logfmt value would be.
  private static func printable(_ bytes: some Collection<UInt8>) -> String {
    var line: [UInt8] = []
    LogEscaping.appendTextValue(bytes.prefix(300), to: &line)
    return String(decoding: line, as: UTF8.self)
  }
}

/// At most `perMinute` events in each minute.
private struct RateLimit {
  let perMinute: Int
  private var windowStart = ContinuousClock.now
  private var count = 0

  init(perMinute: Int) { self.perMinute = perMinute }

  mutating func allow() -> Bool {
    if windowStart.duration(to: .now) >= .seconds(60) {
      windowStart = .now
      count = 0
    }
    count += 1
    return count <= perMinute
  }
}

/// Lets a task wait for a thread to finish.
private final class ThreadCompletion: Sendable {
  private let state = Mutex<(done: Bool, waiter: CheckedContinuation<Void, Never>?)>((false, nil))

  func finish() {
    let waiter = state.withLock { state in
      state.done = true
      defer { state.waiter = nil }
      return state.waiter
    }
    waiter?.resume()
  }

  func wait() async {
    await withCheckedContinuation { continuation in
      let done = state.withLock { state in
        if state.done { return true }
        state.waiter = continuation
        return false
      }
      if done { continuation.resume() }
    }
  }
}
