import Synchronization

#if canImport(Glibc)
  import Glibc
#elseif canImport(Darwin)
  import Darwin
#endif

/// Every child that ``ManagedProcess`` started and that has not been reaped yet, so that this process
/// takes them down with it however it ends.
///
/// A normal or failing run ends in `exit()`, which runs an `atexit` handler. A crash (a failed precondition
/// traps with SIGILL or SIGTRAP, a bad pointer raises SIGSEGV) or SIGINT, SIGTERM, SIGHUP or SIGQUIT runs a
/// signal handler, which then hands the signal on to what was installed before: the Swift runtime's
/// backtracer, or the default action. Both send SIGKILL to the PIDs listed here and to nothing else. Only a
/// SIGKILL of the test process itself leaves children behind.
///
/// The table is a fixed array of atomics because a signal handler may neither lock nor allocate. A PID is
/// removed as soon as its reaper has reaped it, so a PID the kernel reuses for a stranger is never signalled.
enum ProcessRegistry {
  /// How many children may run at once.
  static let capacity = 1_024
  /// Allocated once and never freed; a PID or 0 in each slot.
  nonisolated(unsafe) private static let slots: UnsafeMutablePointer<Atomic<Int32>> = {
    let slots = UnsafeMutablePointer<Atomic<Int32>>.allocate(capacity: capacity)
    for index in 0..<capacity { (slots + index).initialize(to: Atomic(0)) }
    return slots
  }()
  /// Handlers that were installed before ours, indexed by signal number, to hand signals on to.
  nonisolated(unsafe) private static let previousActions = UnsafeMutablePointer<sigaction>.allocate(capacity: 65)
  private static let terminationSignals = [SIGINT, SIGTERM, SIGHUP, SIGQUIT]
  private static let crashSignals = [SIGILL, SIGTRAP, SIGABRT, SIGSEGV, SIGBUS, SIGFPE]
  private static let installed: Void = installHandlers()

  /// Records a started child; false when the table is full (the caller must then stop the child itself).
  static func register(_ pid: Int32) -> Bool {
    _ = installed
    for index in 0..<capacity {
      if slots[index].compareExchange(expected: 0, desired: pid, ordering: .acquiringAndReleasing).exchanged {
        return true
      }
    }
    return false
  }

  /// Forgets a child once it has been reaped.
  static func unregister(_ pid: Int32) {
    for index in 0..<capacity {
      if slots[index].compareExchange(expected: pid, desired: 0, ordering: .acquiringAndReleasing).exchanged {
        return
      }
    }
  }

  /// Whether a PID is listed: for tests of the registry itself.
  static func contains(_ pid: Int32) -> Bool {
    (0..<capacity).contains { slots[$0].load(ordering: .acquiring) == pid }
  }

  /// Sends SIGKILL to every listed child. Async-signal-safe: atomic loads and kill(2) only.
  static func killAll() {
    for index in 0..<capacity {
      let pid = slots[index].load(ordering: .acquiring)
      if pid > 0 { kill(pid, SIGKILL) }
    }
  }

  private static func installHandlers() {
    atexit { ProcessRegistry.killAll() }
    for signal in terminationSignals + crashSignals {
      var previous = sigaction()
      guard sigaction(signal, nil, &previous) == 0 else { continue }
      // An application that handles or ignores SIGTERM and friends itself ends with exit(), which the atexit
      // handler covers; taking the signal from it would change how it shuts down.
      if terminationSignals.contains(signal) && handlerAddress(previous) != defaultHandlerAddress { continue }
      previousActions[Int(signal)] = previous
      var action = sigaction()
      setSignalHandler(&action)
      sigemptyset(&action.sa_mask)
      action.sa_flags = SA_SIGINFO | SA_ONSTACK
      sigaction(signal, &action, nil)
    }
  }

  /// Kills the children, then lets the signal do what it would have done without us.
  fileprivate static func handle(
    _ signal: Int32,
    _ info: UnsafeMutablePointer<siginfo_t>?,
    _ context: UnsafeMutableRawPointer?
  ) {
    killAll()
    var previous = previousActions[Int(signal)]
    if previous.sa_flags & SA_SIGINFO != 0, let handler = infoHandler(previous) {
      handler(signal, info, context)
      return
    }
    switch handlerAddress(previous) {
    case ignoreHandlerAddress:
      return
    case defaultHandlerAddress:
      // The signal is blocked while this handler runs: it is delivered again, with the default action,
      // when the handler returns. A fault also simply recurs when the instruction is retried.
      sigaction(signal, &previous, nil)
      raise(signal)
    default:
      plainHandler(previous)?(signal)
    }
  }
}

private let defaultHandlerAddress = 0
private let ignoreHandlerAddress = 1

#if canImport(Glibc)
  private func setSignalHandler(_ action: inout sigaction) {
    action.__sigaction_handler.sa_sigaction = { ProcessRegistry.handle($0, $1, $2) }
  }

  private func handlerAddress(_ action: sigaction) -> Int {
    unsafeBitCast(action.__sigaction_handler.sa_handler, to: Int.self)
  }

  private func plainHandler(_ action: sigaction) -> (@convention(c) (Int32) -> Void)? {
    action.__sigaction_handler.sa_handler
  }

  private func infoHandler(
    _ action: sigaction
  ) -> (@convention(c) (Int32, UnsafeMutablePointer<siginfo_t>?, UnsafeMutableRawPointer?) -> Void)? {
    action.__sigaction_handler.sa_sigaction
  }
#elseif canImport(Darwin)
  private func setSignalHandler(_ action: inout sigaction) {
    action.__sigaction_u.__sa_sigaction = { ProcessRegistry.handle($0, $1, $2) }
  }

  private func handlerAddress(_ action: sigaction) -> Int {
    unsafeBitCast(action.__sigaction_u.__sa_handler, to: Int.self)
  }

  private func plainHandler(_ action: sigaction) -> (@convention(c) (Int32) -> Void)? {
    action.__sigaction_u.__sa_handler
  }

  private func infoHandler(
    _ action: sigaction
  ) -> (@convention(c) (Int32, UnsafeMutablePointer<siginfo_t>?, UnsafeMutableRawPointer?) -> Void)? {
    action.__sigaction_u.__sa_sigaction
  }
#endif
