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
}
