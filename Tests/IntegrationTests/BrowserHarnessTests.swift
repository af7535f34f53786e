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

    /// Credentials in the URL work for a page load in headless Chromium,
    /// but the page's URL keeps them and a relative `fetch` from it throws
    /// (the Fetch standard): the catch ``ChromeDriver/setBasicAuthentication(user:password:)``
    /// avoids. Pinned here because the dashboard's tests rely on it.
    @Test(.timeLimit(.minutes(2)))
    func basicAuthInTheURLLoadsThePageButBreaksRelativeFetch() async throws {
        try await StaticSite.with(Self.authPage, files: ["api.txt": "apiok"], credentials: ("admin", "s3cret")) { site in
            try await ChromeDriver.withBrowser { browser in
                try await browser.navigate(to: "http://admin:s3cret@127.0.0.1:\(site.port)/index.html")
                try await browser.waitForText("authorized", css: "#status")
                #expect(try await browser.currentURL.contains("admin:s3cret@"))
                let relative = try await browser.executeAsyncScript(Self.fetchScript, args: ["api.txt"])
                #expect(relative.string?.contains("includes credentials") == true, "\(relative)")
                let absolute = try await browser.executeAsyncScript(Self.fetchScript, args: [.string(site.url("api.txt"))])
                #expect(absolute == "200 apiok")
            }
        }
    }

    @Test(.timeLimit(.minutes(2)))
    func basicAuthThroughExtraHeadersCoversEveryRequest() async throws {
        try await StaticSite.with(Self.authPage, files: ["api.txt": "apiok"], credentials: ("admin", "s3cret")) { site in
            try await ChromeDriver.withBrowser { browser in
                // Unanswered, the challenge leaves an empty document (the
                // login prompt is not a JavaScript dialog: nothing shows the
                // 401's body).
                try await browser.navigate(to: site.url("index.html"))
                #expect(try await browser.findElements(css: "#status").isEmpty)
                #expect(try await browser.title == "")

                try await browser.setBasicAuthentication(user: "admin", password: "s3cret")
                try await browser.navigate(to: site.url("index.html"))
                try await browser.waitForText("authorized", css: "#status")
                #expect(try await browser.currentURL == site.url("index.html"))
                #expect(try await browser.executeAsyncScript(Self.fetchScript, args: ["api.txt"]) == "200 apiok")
            }
        }
    }

    /// Fetches `arguments[0]`; answers "<status> <body>" or the error.
    static let fetchScript = """
        const done = arguments[arguments.length - 1];
        fetch(arguments[0]).then(r => r.text().then(t => done(r.status + " " + t)), e => done(String(e)));
        """

    static let authPage = """
        <!doctype html>
        <html lang="en"><head><meta charset="utf-8"><title>Protected</title></head>
        <body><p id="status">authorized</p></body></html>
        """

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

    /// Writes `index` as index.html (and `files`), serves them while `body`
    /// runs, then stops the server and removes the directory, whether
    /// `body` returned or threw.
    ///
    /// - Parameter credentials: when set, every request without them gets
    ///   401 (with a body that says "denied").
    static func with<T>(
        _ index: String, files: [String: String] = [:], credentials: (user: String, password: String)? = nil,
        isolation: isolated (any Actor)? = #isolation, _ body: (StaticSite) async throws -> T
    ) async throws -> T {
        let python = try #require(IntegrationEnvironment.onPath("python3"), "python3 not on PATH")
        let directory = FileManager.default.temporaryDirectory
            .appendingPathComponent("qtasks-site-\(UUID().uuidString.prefix(8).lowercased())")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        for (name, content) in files.merging(["index.html": index], uniquingKeysWith: { $1 }) {
            try Data(content.utf8).write(to: directory.appendingPathComponent(name))
        }
        // Outside the served directory's files: a script of the test's.
        let script = directory.appendingPathComponent(".server.py")
        try Data(authServer.utf8).write(to: script)

        // A port probed free may be taken before Python binds it: then it
        // exits, and another is tried.
        for _ in 1...3 {
            let port = try TCPPort.free()
            let arguments = credentials.map { [script.path, String(port), directory.path, $0.user, $0.password] }
                ?? ["-m", "http.server", String(port), "--bind", "127.0.0.1", "--directory", directory.path]
            let server = try ChildProcess(python, ["-u"] + arguments)
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

    /// http.server's file handler behind HTTP basic authentication; prints
    /// http.server's line once it listens.
    static let authServer = #"""
        import base64, functools, http.server, sys
        port, directory, user, password = int(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4]
        expected = "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()

        class Handler(http.server.SimpleHTTPRequestHandler):
            def do_GET(self):
                if self.headers.get("Authorization") == expected:
                    return super().do_GET()
                self.send_response(401)
                self.send_header("WWW-Authenticate", 'Basic realm="qtasks"')
                self.send_header("Content-Type", "text/html; charset=utf-8")
                self.end_headers()
                self.wfile.write(b'<!doctype html><title>denied</title><p id="status">denied</p>')

        server = http.server.HTTPServer(("127.0.0.1", port), functools.partial(Handler, directory=directory))
        print(f"Serving HTTP on 127.0.0.1 port {port}", flush=True)
        server.serve_forever()
        """#
}
