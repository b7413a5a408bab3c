import Foundation
import NIOHTTP1
import SwitchyardProcess
import Synchronization

#if canImport(Glibc)
  import Glibc
#elseif canImport(Darwin)
  import Darwin
#endif

/// A headless Chromium driven through chromedriver over the W3C WebDriver protocol, for tests that look at a
/// page as a user's browser shows it: navigate, run scripts in the page, find elements, read the console,
/// take screenshots.
///
/// ``start(_:)`` starts `chromedriver --port=<free port>` (a ``ManagedProcess``) and one session in a
/// new, temporary profile: `--headless=new --no-sandbox --disable-dev-shm-usage`, the window size of
/// ``Options``, and the console log at level ALL (`goog:loggingPrefs`), read through chromedriver's log
/// endpoint (`POST /session/{id}/se/log`, which W3C mode keeps). ``close()`` ends the session, stops
/// chromedriver and kills whatever Chromium process of this session is left; ``with(_:_:)`` always calls it,
/// also when the body throws. The browser's PID is guarded (``StrayProcessGuard``) while the session lives,
/// so that not even a crashed test run leaves Chromium behind.
///
/// Only loopback pages are opened: ``navigate(to:)`` refuses any other URL, and the browser resolves no
/// host name but `localhost` and sends anything that is not loopback to a closed loopback port as its proxy,
/// so a page cannot reach the network either. Background networking and component updates are off.
///
/// The executables are `chromedriver` and Chromium as Debian's `chromium-driver` and `chromium` install
/// them (`scripts/install-deps.sh`), or the paths in `SWITCHYARD_CHROMEDRIVER` and `SWITCHYARD_CHROMIUM`.
public final class HeadlessChromium: Sendable {
  /// How the browser starts.
  public struct Options: Sendable {
    /// The window's size in CSS pixels.
    public var windowWidth = 1400
    public var windowHeight = 1000
    /// How long a page may take to load, and a script run with ``HeadlessChromium/execute(_:_:)`` or
    /// ``HeadlessChromium/executeAsync(_:_:)`` to finish.
    public var pageLoadTimeout: Duration = .seconds(20)
    public var scriptTimeout: Duration = .seconds(20)
    /// Where chromedriver's and Chromium's own output is copied when the session closes (as
    /// `chromedriver.log`); nil keeps it only until then.
    public var logDirectory: String?

    public init() {}
  }

  /// One entry of the browser's console: `console.error(…)`, an uncaught exception, a failed resource load.
  public struct ConsoleEntry: Sendable, Hashable, CustomStringConvertible {
    /// `SEVERE` (errors), `WARNING`, `INFO` or `DEBUG`.
    public var level: String
    /// The text, with the page's URL and position first, as Chromium logs it.
    public var message: String
    /// `console-api`, `javascript` (uncaught exceptions), `network` and so on.
    public var source: String
    /// Milliseconds since 1970.
    public var timestamp: Double

    /// Whether this is an error (level `SEVERE`).
    public var isError: Bool { level == "SEVERE" }

    public var description: String { "[\(level) \(source)] \(message)" }
  }

  /// An element of the page, found by ``findElements(_:)``; valid until the page replaces it.
  public struct Element: Sendable, Hashable {
    /// The WebDriver element reference.
    public let id: String
  }

  /// The W3C key of an element reference in JSON.
  static let elementKey = "element-6066-11e4-a52e-4f735466cecf"

  /// The session's ID.
  public let sessionID: String
  /// Chromium's browser process, as chromedriver reports it (`goog:processID`).
  public let browserPID: Int32?
  /// The Chromium executable that runs.
  public let browserExecutable: String
  /// The browser's version (`156.0.8078.129`).
  public let browserVersion: String
  private let driver: ManagedProcess
  private let client: WebDriverClient
  private let profile: TemporaryDirectory
  private let options: Options
  private let console = Mutex<[ConsoleEntry]>([])
  private let closed = Atomic<Bool>(false)

  private init(
    sessionID: String,
    browserPID: Int32?,
    browserExecutable: String,
    browserVersion: String,
    driver: ManagedProcess,
    client: WebDriverClient,
    profile: TemporaryDirectory,
    options: Options
  ) {
    self.sessionID = sessionID
    self.browserPID = browserPID
    self.browserExecutable = browserExecutable
    self.browserVersion = browserVersion
    self.driver = driver
    self.client = client
    self.profile = profile
    self.options = options
  }

  deinit {
    // Whatever ``close()`` did not get to: the driver goes with its ManagedProcess; the browser here.
    if !closed.load(ordering: .relaxed), let browserPID, Self.runs(browserPID, executable: browserExecutable) {
      kill(browserPID, SIGKILL)
    }
  }

  /// Starts chromedriver and a browser session; see the type's overview.
  ///
  /// - Throws: ``ProcessError`` when chromedriver or Chromium is not installed or does not start;
  ///   ``WebDriverError`` when chromedriver refuses the session.
  public static func start(_ options: Options = Options()) async throws -> HeadlessChromium {
    let environment = ProcessInfo.processInfo.environment
    let hint = "./scripts/install-deps.sh installs chromium and chromium-driver"
    let driverPath = try ExecutablePath.resolve(environment["SWITCHYARD_CHROMEDRIVER"] ?? "chromedriver", hint: hint)
    let browserPath =
      try environment["SWITCHYARD_CHROMIUM"].map { try ExecutablePath.resolve($0, hint: hint) }
      ?? debianChromium() ?? ExecutablePath.resolve("chromium", hint: hint)
    let profile = try TemporaryDirectory(prefix: "switchyard-chromium")
    do {
      // Chromium's caches and settings stay in the profile, never in the user's home.
      var childEnvironment = environment
      childEnvironment["XDG_CONFIG_HOME"] = profile.path("config")
      childEnvironment["XDG_CACHE_HOME"] = profile.path("cache")
      let port = try FreePort.allocate()
      let driver = try ManagedProcess(
        driverPath, arguments: ["--port=\(port)"], environment: childEnvironment,
        logPath: profile.path("chromedriver.log"))
      let client = WebDriverClient(baseURL: "http://127.0.0.1:\(port)")
      do {
        try await waitUntilReady(client, driver: driver)
        let answer = try await client.send(
          .POST, "/session", capabilities(browserPath, profile: profile, options: options), timeout: .seconds(60))
        guard let sessionID = answer["sessionId"].string else {
          throw WebDriverError(command: "POST /session", error: "invalid answer", message: "\(answer)")
        }
        let capabilities = answer["capabilities"]
        let browserPID = capabilities["goog:processID"].int.map { Int32($0) }
        if let browserPID { StrayProcessGuard.guardProcess(browserPID) }
        return HeadlessChromium(
          sessionID: sessionID,
          browserPID: browserPID,
          browserExecutable: browserPath,
          browserVersion: capabilities["browserVersion"].string ?? "?",
          driver: driver,
          client: WebDriverClient(baseURL: "\(client.baseURL)/session/\(sessionID)"),
          profile: profile,
          options: options
        )
      } catch {
        let descendants = descendants(of: driver.pid)
        await driver.terminate(timeout: .seconds(5))
        await killLeftovers(descendants, executable: browserPath)
        throw ProcessError(.notHealthy, "chromedriver: \(error)\n\(driver.logTail())")
      }
    } catch {
      keepLog(profile, options)
      profile.remove()
      throw error
    }
  }

  /// Runs `body` with a new session and closes it however `body` ends.
  public nonisolated(nonsending) static func with<Result>(
    _ options: Options = Options(),
    _ body: (HeadlessChromium) async throws -> Result
  ) async throws -> Result {
    let browser = try await start(options)
    do {
      let result = try await body(browser)
      await browser.close()
      return result
    } catch {
      await browser.close()
      throw error
    }
  }

  // MARK: Pages and scripts

  /// Opens `url` (`http://127.0.0.1:…`, `http://localhost:…` or `http://[::1]:…`) and returns once it has
  /// loaded.
  ///
  /// - Throws: ``ProcessError`` for a URL that is not loopback; ``WebDriverError`` when the page does not
  ///   load in time.
  public func navigate(to url: String) async throws {
    guard Self.isLoopback(url) else {
      throw ProcessError(.invalidState, "\(url): the browser only opens loopback http(s) URLs")
    }
    _ = try await send(.POST, "/url", ["url": .string(url)], timeout: options.pageLoadTimeout + .seconds(10))
  }

  /// The URL of the page shown.
  public func currentURL() async throws -> String {
    try await send(.GET, "/url").string ?? ""
  }

  /// Runs `script` as the body of a function in the page, with `arguments` as `arguments[0]`, …, and
  /// returns what it returns (`return document.title`). Elements in the result come back as objects with
  /// the W3C element key; plain data is better.
  ///
  /// - Throws: ``WebDriverError`` with `javascript error` when the script throws.
  public func execute(_ script: String, _ arguments: [WebDriverValue] = []) async throws -> WebDriverValue {
    try await send(
      .POST, "/execute/sync", ["script": .string(script), "args": .array(arguments)],
      timeout: options.scriptTimeout + .seconds(10))
  }

  /// Runs `script` as ``execute(_:_:)`` does, but waits until it calls its last argument, the callback,
  /// and returns the value given to it: `const done = arguments[arguments.length - 1]; setTimeout(() =>
  /// done(42), 100)`.
  ///
  /// - Throws: ``WebDriverError`` with `script timeout` when the callback is not called within the
  ///   script timeout.
  public func executeAsync(_ script: String, _ arguments: [WebDriverValue] = []) async throws -> WebDriverValue {
    try await send(
      .POST, "/execute/async", ["script": .string(script), "args": .array(arguments)],
      timeout: options.scriptTimeout + .seconds(10))
  }

  /// The elements that match the CSS selector `selector`, in document order.
  public func findElements(_ selector: String) async throws -> [Element] {
    let found = try await send(.POST, "/elements", ["using": "css selector", "value": .string(selector)])
    return (found.array ?? []).compactMap { $0[Self.elementKey].string.map(Element.init) }
  }

  /// The first element that matches `selector`; nil when none does.
  public func findElement(_ selector: String) async throws -> Element? {
    try await findElements(selector).first
  }

  /// The attribute `name` of `element` (`data-status`); nil when it has none.
  public func attribute(_ name: String, of element: Element) async throws -> String? {
    try await send(.GET, "/element/\(element.id)/attribute/\(name)").string
  }

  /// The text of `element` as the page renders it.
  public func text(of element: Element) async throws -> String {
    try await send(.GET, "/element/\(element.id)/text").string ?? ""
  }

  /// Sends a Chrome DevTools Protocol command (`Page.getLayoutMetrics`) through chromedriver and returns
  /// its result.
  public func devTools(_ method: String, _ parameters: WebDriverValue = [:]) async throws -> WebDriverValue {
    try await send(.POST, "/goog/cdp/execute", ["cmd": .string(method), "params": parameters])
  }

  // MARK: Screenshots

  /// A PNG of the viewport (the window's content area).
  public func screenshot() async throws -> Data {
    let encoded = try await send(.GET, "/screenshot").string ?? ""
    guard let data = Data(base64Encoded: encoded) else {
      throw WebDriverError(command: "GET /screenshot", error: "invalid answer", message: "not base64")
    }
    return data
  }

  /// A PNG of the whole page, also what lies below the viewport (at most 16,384 pixels high), through
  /// DevTools' `Page.captureScreenshot`.
  public func fullPageScreenshot() async throws -> Data {
    let metrics = try await devTools("Page.getLayoutMetrics")
    let size = metrics["cssContentSize"]
    let width = max(size["width"].double ?? Double(options.windowWidth), 1)
    let height = min(max(size["height"].double ?? Double(options.windowHeight), 1), 16_384)
    let shot = try await devTools(
      "Page.captureScreenshot",
      [
        "format": "png", "captureBeyondViewport": true,
        "clip": ["x": 0, "y": 0, "width": .number(width), "height": .number(height), "scale": 1],
      ])
    guard let data = shot["data"].string.flatMap({ Data(base64Encoded: $0) }) else {
      throw WebDriverError(command: "Page.captureScreenshot", error: "invalid answer", message: "no data")
    }
    return data
  }

  /// Writes a screenshot, of the whole page or of the viewport, to `path` as PNG (creating its directory).
  public func saveScreenshot(to path: String, fullPage: Bool = true) async throws {
    let data = try await fullPage ? fullPageScreenshot() : screenshot()
    let url = URL(fileURLWithPath: path)
    try FileManager.default.createDirectory(at: url.deletingLastPathComponent(), withIntermediateDirectories: true)
    try data.write(to: url)
  }

  // MARK: Console

  /// The console entries logged since the last call (chromedriver hands each out once); they are also kept
  /// for ``consoleEntries()``.
  @discardableResult
  public func newConsoleEntries() async throws -> [ConsoleEntry] {
    let value: WebDriverValue
    do {
      value = try await send(.POST, "/se/log", ["type": "browser"])
    } catch let error as WebDriverError where error.error == "unknown command" {
      value = try await send(.POST, "/log", ["type": "browser"])
    }
    let entries = (value.array ?? []).map { entry in
      ConsoleEntry(
        level: entry["level"].string ?? "?",
        message: entry["message"].string ?? "\(entry)",
        source: entry["source"].string ?? "",
        timestamp: entry["timestamp"].double ?? 0
      )
    }
    console.withLock { $0.append(contentsOf: entries) }
    return entries
  }

  /// Every console entry of the session so far.
  public func consoleEntries() async throws -> [ConsoleEntry] {
    try await newConsoleEntries()
    return console.withLock { $0 }
  }

  /// The errors (level `SEVERE`) among ``consoleEntries()``.
  public func consoleErrors() async throws -> [ConsoleEntry] {
    try await consoleEntries().filter(\.isError)
  }

  // MARK: Closing

  /// Ends the session (Chromium quits), stops chromedriver, and kills any Chromium process of the session
  /// that is left; copies the log to ``Options/logDirectory`` and removes the profile. Safe to call twice.
  public func close() async {
    guard !closed.exchange(true, ordering: .relaxed) else { return }
    var processes = Self.descendants(of: driver.pid)
    if let browserPID { processes.insert(browserPID) }
    _ = try? await client.send(.DELETE, "", timeout: .seconds(15))
    await driver.terminate(timeout: .seconds(5))
    await Self.killLeftovers(processes, executable: browserExecutable)
    if let browserPID { StrayProcessGuard.forget(browserPID) }
    Self.keepLog(profile, options)
    profile.remove()
  }

  /// The Chromium processes of this session that still run (for tests of the cleanup).
  public var runningProcesses: [Int32] {
    var processes = Self.descendants(of: driver.pid)
    if let browserPID { processes.insert(browserPID) }
    return processes.filter { Self.runs($0, executable: browserExecutable) }.sorted()
  }

  /// Whether chromedriver still runs.
  public var driverIsRunning: Bool { driver.isRunning }

  // MARK: Internals

  private func send(
    _ method: HTTPMethod, _ path: String, _ body: WebDriverValue? = nil, timeout: Duration = .seconds(30)
  ) async throws -> WebDriverValue {
    guard !closed.load(ordering: .relaxed) else {
      throw ProcessError(.invalidState, "the browser session is closed")
    }
    return try await client.send(method, path, body, timeout: timeout)
  }

  /// The session's capabilities: headless Chromium in `profile`, loopback only, console log at ALL.
  private static func capabilities(_ browser: String, profile: TemporaryDirectory, options: Options) -> WebDriverValue {
    let arguments: [String] = [
      "--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--hide-scrollbars",
      "--user-data-dir=\(profile.path("user-data"))",
      "--window-size=\(options.windowWidth),\(options.windowHeight)",
      "--disable-background-networking", "--disable-component-update", "--no-first-run",
      "--no-default-browser-check", "--disable-features=Translate,MediaRouter,OptimizationHints",
      // Nothing but loopback: no name resolves but localhost, and every other request goes to a proxy on a
      // closed loopback port (Chromium never proxies loopback).
      "--host-resolver-rules=MAP * ~NOTFOUND , EXCLUDE localhost , EXCLUDE 127.0.0.1 , EXCLUDE [::1]",
      "--proxy-server=http://127.0.0.1:9",
    ]
    let milliseconds = { (duration: Duration) in WebDriverValue.number(Double(duration.components.seconds * 1000)) }
    return [
      "capabilities": [
        "alwaysMatch": [
          "browserName": "chrome",
          "pageLoadStrategy": "normal",
          "unhandledPromptBehavior": "dismiss",
          "timeouts": [
            "implicit": 0, "pageLoad": milliseconds(options.pageLoadTimeout),
            "script": milliseconds(options.scriptTimeout),
          ],
          "goog:chromeOptions": ["binary": .string(browser), "args": .array(arguments.map { .string($0) })],
          "goog:loggingPrefs": ["browser": "ALL"],
        ]
      ]
    ]
  }

  /// Debian's Chromium binary itself, without the `/usr/bin/chromium` wrapper script and the flags it adds.
  private static func debianChromium() -> String? {
    let path = "/usr/lib/chromium/chromium"
    return FileManager.default.isExecutableFile(atPath: path) ? path : nil
  }

  /// Waits until chromedriver answers `GET /status` with `ready: true`.
  private static func waitUntilReady(_ client: WebDriverClient, driver: ManagedProcess) async throws {
    let deadline = ContinuousClock.now.advanced(by: .seconds(15))
    var lastError = "no answer"
    while ContinuousClock.now < deadline {
      guard driver.isRunning else { throw ProcessError(.notHealthy, "chromedriver exited") }
      do {
        if try await client.send(.GET, "/status", timeout: .seconds(2))["ready"].bool == true { return }
        lastError = "not ready"
      } catch {
        lastError = "\(error)"
      }
      try await Task.sleep(for: .milliseconds(50))
    }
    throw ProcessError(.timedOut, "chromedriver not ready within 15 s: \(lastError)")
  }

  /// Whether `url` is an http(s) URL on a loopback host.
  static func isLoopback(_ url: String) -> Bool {
    guard let components = URLComponents(string: url), let scheme = components.scheme?.lowercased(),
      scheme == "http" || scheme == "https", let host = components.host?.lowercased()
    else { return false }
    return ["127.0.0.1", "localhost", "::1", "[::1]"].contains(host)
  }

  /// Every process below `root` (children, their children, …), from one pass over `/proc`.
  private static func descendants(of root: Int32) -> Set<Int32> {
    let entries = (try? FileManager.default.contentsOfDirectory(atPath: "/proc")) ?? []
    var children: [Int32: [Int32]] = [:]
    for pid in entries.compactMap({ Int32($0) }) {
      if let parent = ProcFS.stat(of: pid)?.parent { children[parent, default: []].append(pid) }
    }
    var found: Set<Int32> = []
    var queue = [root]
    while let next = queue.popLast() {
      for child in children[next] ?? [] where found.insert(child).inserted { queue.append(child) }
    }
    return found
  }

  /// Whether `pid` runs and is the browser executable (not a stranger that reused the PID).
  private static func runs(_ pid: Int32, executable: String) -> Bool {
    guard ProcFS.isRunning(pid), let running = ProcFS.executablePath(of: pid) else { return false }
    let expected = (try? FileManager.default.destinationOfSymbolicLink(atPath: executable)) ?? executable
    return running == executable || running == expected || running.contains("chrom")
  }

  /// Kills those of `processes` that are still Chromium processes, and waits up to 5 s until they are gone.
  private static func killLeftovers(_ processes: Set<Int32>, executable: String) async {
    let left = processes.filter { runs($0, executable: executable) }
    for pid in left { kill(pid, SIGKILL) }
    let deadline = ContinuousClock.now.advanced(by: .seconds(5))
    while left.contains(where: { ProcFS.isRunning($0) }), ContinuousClock.now < deadline {
      try? await Task.sleep(for: .milliseconds(20))
    }
  }

  /// Copies chromedriver's log to the options' log directory, if there is one.
  private static func keepLog(_ profile: TemporaryDirectory, _ options: Options) {
    guard let directory = options.logDirectory else { return }
    try? FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
    let target = "\(directory)/chromedriver.log"
    try? FileManager.default.removeItem(atPath: target)
    try? FileManager.default.copyItem(atPath: profile.path("chromedriver.log"), toPath: target)
  }
}
