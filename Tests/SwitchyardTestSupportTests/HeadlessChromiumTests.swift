import Foundation
import SwitchyardTestSupport
import Synchronization
import Testing

extension Tag {
  /// Tests that drive a real (headless) Chromium through chromedriver.
  @Tag static var browser: Self
}

/// The WebDriver client against a trivial page of a server in the test: navigate, read the DOM, run scripts,
/// catch console errors, take screenshots, and leave no process behind.
@Suite(.serialized, .tags(.browser)) struct HeadlessChromiumTests {
  static let page = """
    <!doctype html>
    <html><head><title>Trivial page</title><link rel="icon" href="data:,"></head>
    <body data-ready="no">
      <h1 id="greeting">Hello, browser</h1>
      <ul id="items"><li data-status="up">one</li><li data-status="down">two</li></ul>
      <div style="height: 2400px">tall</div>
      <script>
        console.log("a line of information");
        console.error("deliberate console error");
        setTimeout(() => { document.body.dataset.ready = "yes"; }, 50);
        setTimeout(() => { throw new Error("deliberate uncaught error"); }, 60);
      </script>
    </body></html>
    """

  static let quiet = """
    <!doctype html>
    <html><head><title>Quiet</title><link rel="icon" href="data:,"></head><body><p>nothing wrong</p></body></html>
    """

  @Test func drivesATrivialPage() async throws {
    let output = try TestOutput.directory("webdriver")
    var options = HeadlessChromium.Options()
    options.logDirectory = output
    try await StaticPageServer.with(pages: ["/": .init(body: Self.page), "/quiet": .init(body: Self.quiet)]) {
      server in
      try await HeadlessChromium.with(options) { browser in
        try await browser.navigate(to: server.baseURL + "/")
        #expect(try await browser.currentURL() == server.baseURL + "/")
        // The DOM, through a script and through element references.
        #expect(try await browser.execute("return document.title") == "Trivial page")
        let statuses = try await browser.execute(
          "return [...document.querySelectorAll('#items li')].map(li => li.dataset.status)")
        #expect(statuses == ["up", "down"])
        #expect(try await browser.execute("return arguments[0] + arguments[1]", [40, 2]).int == 42)
        let heading = try #require(try await browser.findElement("#greeting"))
        #expect(try await browser.text(of: heading) == "Hello, browser")
        let items = try await browser.findElements("#items li")
        #expect(items.count == 2)
        #expect(try await browser.attribute("data-status", of: items[1]) == "down")
        #expect(try await browser.findElement("#nothing") == nil)
        // An async script waits for its callback: here, for the page's timer.
        let ready = try await browser.executeAsync(
          """
          const done = arguments[arguments.length - 1];
          const poll = () => document.body.dataset.ready === "yes" ? done(document.body.dataset.ready)
            : setTimeout(poll, 10);
          poll();
          """)
        #expect(ready == "yes")
        // A script that throws fails the command with the page's message.
        await #expect(throws: WebDriverError.self) { try await browser.execute("throw new Error('from a test')") }

        // The console: the deliberate error and the uncaught exception, at SEVERE; the log line at INFO.
        var errors: [HeadlessChromium.ConsoleEntry] = []
        try await retrying(timeout: .seconds(5)) {
          errors = try await browser.consoleErrors()
          guard errors.count >= 2 else { throw TestSupportError("console errors so far: \(errors)") }
        }
        #expect(errors.contains { $0.message.contains("deliberate console error") && $0.source == "console-api" })
        #expect(errors.contains { $0.message.contains("Uncaught Error: deliberate uncaught error") })
        #expect(errors.count == 2, "\(errors)")
        #expect(
          try await browser.consoleEntries().contains { $0.level == "INFO" && $0.message.contains("information") })

        // Screenshots: the viewport is the window's width; the whole page reaches below it.
        let viewport = try await browser.screenshot()
        let full = try await browser.fullPageScreenshot()
        let (viewportWidth, viewportHeight) = try #require(pngSize(viewport))
        let (fullWidth, fullHeight) = try #require(pngSize(full))
        #expect(viewportWidth == 1400)
        #expect(viewportHeight <= 1000)
        #expect(fullWidth == 1400 && fullHeight > 2400)
        let path = "\(output)/trivial-page.png"
        try await browser.saveScreenshot(to: path)
        #expect(FileManager.default.contents(atPath: path).flatMap(pngSize)?.1 == fullHeight)
        print("webdriver: Chromium \(browser.browserVersion); screenshot \(fullWidth)x\(fullHeight) at \(path)")

        // A page without errors logs none; nothing but loopback is opened.
        try await browser.navigate(to: server.baseURL + "/quiet")
        let before = try await browser.consoleErrors().count
        try await Task.sleep(for: .milliseconds(200))
        #expect(try await browser.consoleErrors().count == before)
        await #expect(throws: ProcessError.self) { try await browser.navigate(to: "http://192.0.2.1/") }
        await #expect(throws: ProcessError.self) { try await browser.navigate(to: "file:///etc/passwd") }
      }
    }
  }

  /// chromedriver and every Chromium process end with the session, also when the test's body throws.
  @Test func leavesNothingBehindOnFailure() async throws {
    struct Deliberate: Error {}
    let seen = Mutex<(driver: Bool, processes: [Int32])>((false, []))
    var closed: HeadlessChromium?
    await #expect(throws: Deliberate.self) {
      try await HeadlessChromium.with { browser in
        closed = browser
        seen.withLock { $0 = (browser.driverIsRunning, browser.runningProcesses) }
        throw Deliberate()
      }
    }
    let (driverRan, processes) = seen.withLock { $0 }
    #expect(driverRan)
    #expect(processes.count >= 2, "the browser and its helpers: \(processes)")
    let browser = try #require(closed)
    #expect(!browser.driverIsRunning)
    #expect(browser.runningProcesses.isEmpty)
    for pid in processes { #expect(!ProcFS.isRunning(pid), "Chromium process \(pid) still runs") }
  }
}

/// The width and height of a PNG, from its IHDR chunk; nil if `data` is not a PNG.
func pngSize(_ data: Data) -> (Int, Int)? {
  let bytes = [UInt8](data.prefix(24))
  guard bytes.count == 24, bytes[0..<8] == [0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A] else { return nil }
  let number = { (offset: Int) in bytes[offset..<offset + 4].reduce(0) { $0 << 8 | Int($1) } }
  return (number(16), number(20))
}
