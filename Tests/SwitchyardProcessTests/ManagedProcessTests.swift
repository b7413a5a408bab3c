import Foundation
import SwitchyardProcess
import Testing

#if canImport(Glibc)
  import Glibc
#elseif canImport(Darwin)
  import Darwin
#endif

@Suite("Managed processes and commands run to completion")
struct ManagedProcessTests {
  @Test("run returns standard output and keeps standard error apart")
  func runCapturesOutput() async throws {
    let output = try await ManagedProcess.run("sh", arguments: ["-c", "echo hello; echo noise >&2"])
    #expect(output == "hello\n")
    #expect(try ManagedProcess.runBlocking("sh", arguments: ["-c", "echo blocking"]) == "blocking\n")
  }

  @Test("run passes the environment it is given, and only that")
  func runEnvironment() async throws {
    let output = try await ManagedProcess.run(
      "/bin/sh", arguments: ["-c", "echo \"$GREETING:$HOME\""], environment: ["GREETING": "hi"])
    #expect(output == "hi:\n")
  }

  @Test("a failing command throws with its standard error and exit status")
  func runFailure() async throws {
    let error = await #expect(throws: ProcessError.self) {
      try await ManagedProcess.run("sh", arguments: ["-c", "echo broken >&2; exit 2"])
    }
    #expect(error?.code == .commandFailed)
    #expect(error?.message.contains("broken") == true)
    #expect(error?.message.contains("exit status 2") == true)
  }

  @Test("a command that runs too long is killed and reported")
  func runTimeout() async throws {
    let clock = ContinuousClock()
    let started = clock.now
    let error = await #expect(throws: ProcessError.self) {
      try await ManagedProcess.run("sleep", arguments: ["30"], timeout: .milliseconds(300))
    }
    #expect(error?.code == .timedOut)
    #expect(started.duration(to: clock.now) < .seconds(5))
  }

  @Test("a managed process logs both streams, stops on SIGTERM, and reports the shell's code")
  func managedLifecycle() async throws {
    let process = try ManagedProcess("sh", arguments: ["-c", "echo started; echo warning >&2; exec sleep 30"])
    try await Task.sleep(for: .milliseconds(200))
    #expect(process.isRunning)
    #expect(process.cpuTime != nil)
    await process.terminate(timeout: .seconds(5))
    #expect(process.exitStatus == .signaled(SIGTERM))
    #expect(process.exitStatus?.code == 143)
    #expect(process.logContents().contains("started"))
    #expect(process.logTail().contains("warning"))
  }

  @Test("a managed process that goes away is killed, and its own log removed")
  func deinitKills() async throws {
    var process: ManagedProcess? = try ManagedProcess("sleep", arguments: ["30"])
    let pid = try #require(process?.pid)
    let log = try #require(process?.logPath)
    #expect(FileManager.default.fileExists(atPath: log))
    process = nil
    #expect(!ProcFS.isRunning(pid))
    #expect(!FileManager.default.fileExists(atPath: log))
  }
}

@Suite("PATH lookup, /proc and free ports")
struct ProcessEnvironmentTests {
  @Test("PATH lookup finds executables in order and nothing else")
  func pathLookup() throws {
    let directory = try TemporaryDirectory(prefix: "switchyard-path-test")
    defer { directory.remove() }
    #expect(
      FileManager.default.createFile(
        atPath: directory.path("tool"), contents: Data(), attributes: [.posixPermissions: 0o755]))
    #expect(
      FileManager.default.createFile(
        atPath: directory.path("data"), contents: Data(), attributes: [.posixPermissions: 0o644]))
    let searchPath = "/nonexistent-switchyard:\(directory.path)"
    #expect(ExecutablePath.find("tool", searchPath: searchPath) == directory.path("tool"))
    #expect(ExecutablePath.find("data", searchPath: searchPath) == nil)
    #expect(ExecutablePath.find("sh", searchPath: "/bin:\(directory.path)") == "/bin/sh")
    #expect(ExecutablePath.find(directory.path("tool"), searchPath: "") == directory.path("tool"))
    #expect(throws: ProcessError.self) { try ExecutablePath.resolve("no-such-tool-switchyard") }
  }

  @Test("/proc tells a running process's state, command line and CPU time")
  func procReader() throws {
    let process = try ManagedProcess("sleep", arguments: ["30"])
    defer { process.kill() }
    let deadline = ContinuousClock.now.advanced(by: .seconds(5))
    while ProcFS.command(of: process.pid) != "sleep" && ContinuousClock.now < deadline { usleep(5_000) }
    #expect(ProcFS.commandLine(of: process.pid).suffix(2) == [process.executablePath, "30"])
    #expect(ProcFS.command(of: process.pid) == "sleep")
    #expect(ProcFS.stat(of: process.pid).map { "RS".contains($0.state) } == true)
    process.signal(SIGSTOP)
    while ProcFS.stat(of: process.pid)?.state != "T" && ContinuousClock.now < deadline { usleep(5_000) }
    #expect(ProcFS.stat(of: process.pid)?.state == "T")
    #expect(ProcFS.executablePath(of: getpid()) != nil)
    #expect((ProcFS.peakResidentBytes(of: getpid()) ?? 0) > 0)
    #expect(ProcFS.isRunning(getpid()))
    #expect(ProcFS.stat(of: -1) == nil && ProcFS.commandLine(of: -1).isEmpty)
  }

  @Test("free ports are distinct and never handed out twice")
  func freePorts() throws {
    let ports = try FreePort.allocate(20)
    #expect(Set(ports).count == 20)
    #expect(ports.allSatisfy { (1...65_535).contains($0) })
    #expect(!ports.contains(try FreePort.allocate()))
  }
}
