import Foundation
import SwitchyardProcess
import Testing

#if canImport(Glibc)
  import Glibc
#elseif canImport(Darwin)
  import Darwin
#endif

@Suite("Child processes: start, exit status, stop")
struct ChildProcessTests {
  @Test("a child's exit status is recorded once it is reaped")
  func exitStatus() async throws {
    let directory = try TemporaryDirectory(prefix: "switchyard-process-test")
    defer { directory.remove() }
    let child = try ChildProcess("sh", arguments: ["-c", "exit 3"], outputPath: directory.path("out"))
    #expect(await child.waitForExit(timeout: .seconds(10)) == .exited(3))
    #expect(!child.isRunning)
    #expect(child.exitStatus?.code == 3)
    #expect(!child.signal(SIGTERM))
  }

  @Test("output and errors go to the files asked for, appended")
  func output() async throws {
    let directory = try TemporaryDirectory(prefix: "switchyard-process-test")
    defer { directory.remove() }
    try "before\n".write(toFile: directory.path("out"), atomically: true, encoding: .utf8)
    let child = try ChildProcess(
      "sh", arguments: ["-c", "echo out; echo err >&2"], outputPath: directory.path("out"),
      errorPath: directory.path("err"))
    #expect(await child.waitForExit(timeout: .seconds(10))?.isSuccess == true)
    #expect(try String(contentsOfFile: directory.path("out"), encoding: .utf8) == "before\nout\n")
    #expect(try String(contentsOfFile: directory.path("err"), encoding: .utf8) == "err\n")
  }

  @Test("a child sees SIGTERM although the starting thread blocks it, and inherits no descriptor of ours")
  func cleanSignalsAndDescriptors() async throws {
    let directory = try TemporaryDirectory(prefix: "switchyard-process-test")
    defer { directory.remove() }
    let open = FileHandle(forReadingAtPath: "/dev/null")
    defer { try? open?.close() }
    let child = try ChildProcess(
      "sh", arguments: ["-c", "ls /proc/self/fd; exec sleep 30"], outputPath: directory.path("out"))
    try await Task.sleep(for: .milliseconds(200))
    await child.terminate(timeout: .seconds(5))
    #expect(child.exitStatus == .signaled(SIGTERM))
    let listed = try String(contentsOfFile: directory.path("out"), encoding: .utf8).split(separator: "\n")
    // 0, 1, 2 and the directory that ls itself opens.
    #expect(listed.count <= 4)
  }

  @Test("terminate kills a child that ignores SIGTERM once the timeout passes")
  func terminateThenKill() async throws {
    let directory = try TemporaryDirectory(prefix: "switchyard-process-test")
    defer { directory.remove() }
    let child = try ChildProcess(
      "sh", arguments: ["-c", "trap '' TERM; while :; do sleep 0.05; done"], outputPath: directory.path("out"))
    try await Task.sleep(for: .milliseconds(200))
    let clock = ContinuousClock()
    let started = clock.now
    await child.terminate(timeout: .milliseconds(500))
    #expect(child.exitStatus == .signaled(SIGKILL))
    #expect(started.duration(to: clock.now) >= .milliseconds(500))
    #expect(started.duration(to: clock.now) < .seconds(5))
  }

  @Test("waitForExit leaves a running child running after its timeout")
  func waitTimesOut() async throws {
    let directory = try TemporaryDirectory(prefix: "switchyard-process-test")
    defer { directory.remove() }
    let child = try ChildProcess("sleep", arguments: ["30"], outputPath: directory.path("out"))
    #expect(await child.waitForExit(timeout: .milliseconds(100)) == nil)
    #expect(child.isRunning)
    child.kill()
    #expect(child.exitStatus == .signaled(SIGKILL))
  }

  @Test("a missing executable or log directory is a clear error")
  func startFailures() throws {
    let missing = #expect(throws: ProcessError.self) {
      try ChildProcess("no-such-tool-switchyard", outputPath: "/dev/null")
    }
    #expect(missing?.code == .executableNotFound)
    let noDirectory = #expect(throws: ProcessError.self) {
      try ChildProcess("true", outputPath: "/nonexistent-switchyard/out.log")
    }
    #expect(noDirectory?.code == .launchFailed)
    #expect(noDirectory?.message.contains("/nonexistent-switchyard/out.log") == true)
  }
}
