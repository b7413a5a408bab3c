import GRPCCore
import NIOCore

/// Runs Swift tasks on the NIO event loop that owns a member's connection.
///
/// Why: a unary call through grpc-swift-nio-transport hands each request and response part
/// between the caller's task and the connection's event loop. On the global concurrency executor
/// every hand-over is a thread switch (an eventfd write to wake the loop, a futex to wake a pool
/// thread): eleven futex calls and about three loop wake-ups per call were measured at one caller.
/// With this executor as the task's preference the call's tasks run on the loop thread itself, so a
/// hand-over is a function call on that thread; what remains is the caller's hop onto the loop and
/// back.
final class EventLoopTaskExecutor: TaskExecutor {
  let eventLoop: any EventLoop

  init(eventLoop: any EventLoop) {
    self.eventLoop = eventLoop
  }

  func enqueue(_ job: consuming ExecutorJob) {
    let job = UnownedJob(job)
    eventLoop.execute {
      job.runSynchronously(on: self.asUnownedTaskExecutor())
    }
  }

  /// Runs `operation` on the loop; once `timeout` has passed it is cancelled and the call fails with
  /// `deadlineExceeded`, as a gRPC call with that timeout would.
  ///
  /// Why not `CallOptions.timeout`: grpc-swift enforces it with two more child tasks and a
  /// `Task.sleep` whose dispatch timer outlives the call, which woke two more threads per call. Here a
  /// timeout is one entry in the loop's timer heap, and the task that can be cancelled is one task.
  ///
  /// When the call ends, the caller's task goes back to its own executor (measured: one pool thread
  /// woken per call at one caller), so callers' own work does not run on the loop.
  func run<Result: Sendable>(
    timeout: Duration,
    _ operation: @escaping @Sendable () async throws -> Result
  ) async throws -> Result {
    try await withTaskExecutorPreference(self) {
      let timedOut = Flag()
      let call = Task(executorPreference: self) { try await operation() }
      let timer = eventLoop.scheduleTask(in: TimeAmount(timeout)) {
        timedOut.set()
        call.cancel()
      }
      defer { timer.cancel() }
      do {
        return try await withTaskCancellationHandler {
          try await call.value
        } onCancel: {
          call.cancel()
        }
      } catch {
        guard timedOut.isSet else { throw error }
        throw RPCError(code: .deadlineExceeded, message: "RPC timed out before completing")
      }
    }
  }
}
