import Foundation
import Testing
import TestSupport

#if canImport(Glibc)
import Glibc
#endif

/// The browser harness the dashboard's tests stand on (#13), against a
/// static page: a real headless Chromium clicks, answers a `confirm()`,
/// reads what is shown and takes a screenshot. Needs no broker.
///
/// Skipped when chromium or chromedriver is missing, unless
/// `QTASKS_REQUIRE_BROWSER=1` (deploy/test.sh, which installs them): then
/// a missing browser fails.
@Suite(
    .enabled(
        if: ChromeDriver.isAvailable || ChromeDriver.isRequired,
        "chromium and chromedriver are not installed (deploy/install-deps.sh installs them)"),
    // One browser at a time: each is several processes, on 2 cores.
    .serialized)
struct BrowserHarnessTests {
    @Test(.timeLimit(.minutes(2)))
    func clickRunsThePageScript() async throws {
        try await StaticSite.with(Self.page) { site in
            try await ChromeDriver.withBrowser { browser in
                try await browser.navigate(to: site.url("index.html"))
                #expect(try await browser.title == "Harness page")
                #expect(try await browser.currentURL == site.url("index.html"))
                let status = try await browser.findElement(css: "#status")
                #expect(try await status.text == "idle")
                #expect(try await browser.findElement(css: "#change").attribute("data-role") == "changer")

                try await browser.findElement(css: "#change").click()
                // The page changes the text 100 ms after the click.
                try await browser.waitForText("changed by script", css: "#status")
                #expect(try await browser.pageSource.contains("changed by script"))

                let input = try await browser.findElement(css: "#name")
                try await input.sendKeys("emails")
                #expect(try await input.property("value") == "emails")
                #expect(try await browser.executeScript("return document.querySelectorAll(arguments[0]).length", args: ["button"]) == 2)
            }
        }
    }

    @Test(.timeLimit(.minutes(2)))
    func confirmAcceptedOrDismissedDecides() async throws {
        try await StaticSite.with(Self.page) { site in
            try await ChromeDriver.withBrowser { browser in
                try await browser.navigate(to: site.url("index.html"))
                #expect(try await browser.dialogText == nil)

                try await browser.findElement(css: "#purge").click()
                #expect(try await browser.waitForDialog() == "Purge queue 'emails'?")
                try await browser.acceptDialog()
                try await browser.waitForText("purged", css: "#outcome")

                try await browser.findElement(css: "#purge").click()
                try await browser.waitForDialog()
                try await browser.dismissDialog()
                try await browser.waitForText("kept", css: "#outcome")
                #expect(try await browser.dialogText == nil)
            }
        }
    }

    @Test(.timeLimit(.minutes(2)))
    func screenshotIsAPNG() async throws {
        try await StaticSite.with(Self.page) { site in
            try await ChromeDriver.withBrowser { browser in
                try await browser.navigate(to: site.url("index.html"))
                let png = try await browser.screenshot()
                #expect(png.starts(with: [0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A]), "not a PNG: \(png.prefix(8).map { $0 })")
                #expect(png.count > 1024, "a \(png.count)-byte screenshot")

                let file = site.directory.appendingPathComponent("shot.png")
                try await browser.saveScreenshot(to: file)
                #expect(try Data(contentsOf: file).starts(with: [0x89, 0x50, 0x4E, 0x47]))
            }
        }
    }

    @Test(.timeLimit(.minutes(2)))
    func webDriverErrorsCarryTheirMessage() async throws {
        try await StaticSite.with(Self.page) { site in
            try await ChromeDriver.withBrowser { browser in
                try await browser.navigate(to: site.url("index.html"))
                let error = try await #require(throws: WebDriverError.self) {
                    try await browser.findElement(css: "#missing")
                }
                #expect(error.error == "no such element")
                #expect(error.message.contains("#missing"))
                #expect(try await browser.findElements(css: "#missing").isEmpty)
                await #expect(throws: BrowserTimeout.self) {
                    try await browser.waitForText("never", css: "#status", timeout: .milliseconds(300))
                }
            }
        }
    }

    /// quit() leaves neither chromedriver nor the browser running, and
    /// removes the profile.
    @Test(.timeLimit(.minutes(2)))
    func quitStopsEveryProcess() async throws {
        let browser = try await ChromeDriver.start()
        let browserPID = try #require(browser.browserPID)
        #expect(Self.isRunning(browserPID))
        await browser.quit()
        #expect(!Self.isRunning(browserPID))
        #expect(!TCPPort.isOpen(host: "127.0.0.1", port: browser.port, timeout: 0.5))
        #expect(!FileManager.default.fileExists(atPath: browser.directory.path))
        await browser.quit()  // a second quit does nothing
    }

    /// Running and not a zombie (an ended browser may wait for a parent
    /// that never reaps it).
    static func isRunning(_ pid: pid_t) -> Bool {
        guard let stat = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8),
            let close = stat.lastIndex(of: ")")
        else { return false }
        let state = stat[stat.index(close, offsetBy: 2)]
        return state != "Z" && state != "X"
    }

    /// A button whose script changes a text after a delay (so the test
    /// must wait for it), a purge button behind `confirm()`, an input.
    static let page = """
        <!doctype html>
        <html lang="en">
        <head>
        <meta charset="utf-8">
        <title>Harness page</title>
        <style>
          body { font: 16px "DejaVu Sans", sans-serif; margin: 2em; }
          #status { color: #064; }
          .band { height: 300px; background: linear-gradient(#fafafa, #c0d8ff); }
        </style>
        </head>
        <body>
        <h1>Browser harness</h1>
        <p id="status">idle</p>
        <button id="change" data-role="changer">Change text</button>
        <button id="purge">Purge</button>
        <p id="outcome">nothing yet</p>
        <input id="name">
        <div class="band"></div>
        <script>
          document.getElementById("change").addEventListener("click", () => {
            setTimeout(() => { document.getElementById("status").textContent = "changed by script"; }, 100);
          });
          document.getElementById("purge").addEventListener("click", () => {
            const ok = confirm("Purge queue 'emails'?");
            document.getElementById("outcome").textContent = ok ? "purged" : "kept";
          });
        </script>
        </body>
        </html>
        """
}

/// `python3 -m http.server` on a free port of 127.0.0.1, serving a
/// temporary directory; stopped by its pid.
struct StaticSite {
    let directory: URL
    let port: Int

    func url(_ path: String) -> String { "http://127.0.0.1:\(port)/\(path)" }

    /// Writes `index` as index.html, serves it while `body` runs, then stops
    /// the server and removes the directory, whether `body` returned or
    /// threw.
    static func with<T>(
        _ index: String, isolation: isolated (any Actor)? = #isolation, _ body: (StaticSite) async throws -> T
    ) async throws -> T {
        let python = try #require(IntegrationEnvironment.onPath("python3"), "python3 not on PATH")
        let directory = FileManager.default.temporaryDirectory
            .appendingPathComponent("qtasks-site-\(UUID().uuidString.prefix(8).lowercased())")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        try Data(index.utf8).write(to: directory.appendingPathComponent("index.html"))

        // A port probed free may be taken before Python binds it: then it
        // exits, and another is tried.
        for _ in 1...3 {
            let port = try TCPPort.free()
            let server = try ChildProcess(
                python, ["-u", "-m", "http.server", String(port), "--bind", "127.0.0.1", "--directory", directory.path])
            // Its own line, not just an open port: another server that took
            // the port would answer too.
            try await waitUntil("http.server on port \(port)", timeout: 30) {
                !server.isRunning || server.standardOutputText.contains("Serving HTTP on 127.0.0.1 port \(port)")
            }
            guard server.isRunning else { continue }
            do {
                let result = try await body(StaticSite(directory: directory, port: port))
                await server.stop(grace: 5)
                return result
            } catch {
                await server.stop(grace: 5)
                throw error
            }
        }
        throw ChildProcessError("python3 -m http.server did not start on 3 free ports")
    }
}
