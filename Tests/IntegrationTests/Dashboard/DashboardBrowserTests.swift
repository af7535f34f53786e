import Foundation
import QTasks
import Testing
import TestSupport

/// The dashboard in a real headless Chromium, against a real broker, a
/// real worker and its SQLite result store: what a person sees and does.
///
/// Screenshots go to `QTASKS_SCREENSHOT_DIR` when set (docs/images is made
/// this way: deploy/screenshots.sh), else to a temporary directory.
@Suite(
    .enabled(if: IntegrationEnvironment.enabled, "no RabbitMQ reachable at QTASKS_URL; deploy/test.sh starts one"),
    .enabled(
        if: ChromeDriver.isAvailable || ChromeDriver.isRequired,
        "chromium and chromedriver are not installed (deploy/install-deps.sh installs them)"),
    .serialized, .timeLimit(.minutes(4)))
struct DashboardBrowserTests {
    /// The overview lists the queue and the worker; a failed task shows its
    /// traceback; replaying its dead letter from the page runs it again;
    /// purge asks first.
    @Test func overviewFailedTaskReplayAndPurge() async throws {
        let store = try TestResultStore.sqlite()
        defer { store.remove() }
        let shots = try ScreenshotDirectory()
        defer { shots.remove() }
        try await TestScope.run("dash-ui") { scope in
            _ = try await scope.startWorker(on: scope.queue, arguments: store.arguments + ["--heartbeat-interval", "1"])
            for pair in [("2", "3"), ("40", "2"), ("7", "8")] {
                _ = try await scope.runCLI(["send", "add", pair.0, pair.1, "--queue", scope.queue, "--wait", "20"] + store.arguments)
            }
            let message = "card declined \(UUID().uuidString.prefix(6))"
            let failed = try await scope.runCLI(["send", "fail", message, "--queue", scope.queue, "--wait", "20"] + store.arguments)
            let uuid = try #require(try ResultMessage(body: Array(failed.stdout.utf8), correlationID: nil, contentType: nil).uuid)
            try await waitUntil("the dead letter", timeout: 30) {
                try await scope.admin.queueInfo(scope.deadLetterQueue)?.messageCount == 1
            }
            let dashboard = try await scope.startDashboard(["--queue", scope.queue] + store.arguments)
            let base = dashboard.baseURL

            try await ChromeDriver.withBrowser { browser in
                // Overview: the queue row with its dead letter, the worker online.
                try await browser.navigate(to: base + "/")
                try await Self.waitUntilReady(browser)
                let row = try await browser.waitForText(scope.queue, css: "#queues tr[data-queue='\(scope.queue)']")
                #expect(try await row.text.contains(scope.queue))
                try await browser.waitUntil("a worker online", timeout: .seconds(20)) {
                    try await browser.findElement(css: "#workers-online").text == "1"
                }
                try await browser.waitUntil("the live indicator", timeout: .seconds(20)) {
                    try await browser.findElement(css: "#live-indicator").attribute("data-state") == "live"
                }
                // The last hour: three succeeded, one failed, each counted
                // once (records before the dashboard, heartbeats after).
                try await browser.waitUntil("the last hour's counts", timeout: .seconds(20)) {
                    let succeeded = try await browser.findElement(css: "#total-succeeded").text
                    let failed = try await browser.findElement(css: "#total-failed").text
                    return succeeded == "3" && failed == "1"
                }
                try await shots.save(browser, "dashboard-overview")

                // Workers: the worker's row.
                try await browser.findElement(css: "#nav a[data-nav=workers]").click()
                try await Self.waitUntilReady(browser)
                let worker = try await browser.findElement(css: "#workers tr[data-worker]")
                let workerText = try await worker.text
                let workerStatus = try await worker.attribute("data-status")
                #expect(workerText.contains(scope.queue) && workerStatus == "online", "\(workerText)")
                try await shots.save(browser, "dashboard-workers")

                // Tasks filtered to errors; the failed task's page shows the traceback.
                try await browser.navigate(to: base + "/tasks?status=error&queue=\(scope.queue)")
                try await Self.waitUntilReady(browser)
                let rows = try await browser.findElements(css: "#tasks tr[data-uuid]")
                #expect(rows.count == 1)
                try await browser.findElement(css: "#tasks tr[data-uuid='\(uuid)'] a").click()
                try await Self.waitUntilReady(browser)
                #expect(try await browser.currentURL == base + "/tasks/\(uuid)")
                let traceback = try await browser.waitForText(message, css: "#traceback")
                #expect(try await traceback.text.contains("ExampleError"))
                #expect(try await browser.findElement(css: "#dead-letter-queue").text.contains(scope.deadLetterQueue))
                #expect(try await browser.findElements(css: "#attempts tr[data-attempt]").count == 1)
                try await shots.save(browser, "dashboard-task")

                // Dead letters: replay the message from its row.
                try await browser.navigate(to: base + "/dead-letters/\(scope.queue)")
                try await Self.waitUntilReady(browser)
                #expect(try await browser.findElement(css: "#messages tr[data-uuid='\(uuid)']").text.contains(message))
                try await shots.save(browser, "dashboard-dead-letters")
                try await browser.findElement(css: "button[data-action=replay][data-uuid='\(uuid)']").click()
                _ = try await browser.waitForText("Replayed task \(uuid)", css: ".notice")

                // It runs again: its page shows a second start (and, as fail
                // always fails, a second dead letter).
                try await browser.waitUntil("the replayed task's second run", timeout: .seconds(20)) {
                    try await browser.navigate(to: base + "/tasks/\(uuid)")
                    try await Self.waitUntilReady(browser)
                    return try await browser.findElements(css: "#events tr[data-kind=started]").count >= 2
                }
                try await waitUntil("the second dead letter", timeout: 30) {
                    try await scope.admin.queueInfo(scope.deadLetterQueue)?.messageCount == 1
                }

                // Purge: dismissed, nothing happens; accepted, the queue is empty.
                try await browser.navigate(to: base + "/dead-letters/\(scope.queue)")
                try await Self.waitUntilReady(browser)
                try await browser.findElement(css: "button[data-action=purge]").click()
                #expect(try await browser.waitForDialog().contains(scope.deadLetterQueue))
                try await browser.dismissDialog()
                #expect(try await scope.admin.queueInfo(scope.deadLetterQueue)?.messageCount == 1)
                try await browser.findElement(css: "button[data-action=purge]").click()
                _ = try await browser.waitForDialog()
                try await browser.acceptDialog()
                try await waitUntil("the purge", timeout: 30) {
                    try await scope.admin.queueInfo(scope.deadLetterQueue)?.messageCount == 0
                }
            }
        }
    }

    /// With credentials, the browser's wrong password gets nothing (the
    /// page stays empty, no data); the right one shows the overview.
    @Test func aWrongPasswordIsRefused() async throws {
        let store = try TestResultStore.sqlite()
        defer { store.remove() }
        let directory = try StateDirectory()
        defer { directory.remove() }
        try await TestScope.run("dash-ui-auth") { scope in
            let password = "pw-\(UUID().uuidString.prefix(8))"
            try Data("ops:\(password)".utf8).write(to: URL(fileURLWithPath: directory.path + "/auth"))
            _ = try await scope.startWorker(on: scope.queue, arguments: store.arguments)
            let dashboard = try await scope.startDashboard(
                ["--queue", scope.queue, "--auth-file", directory.path + "/auth"] + store.arguments)
            try await ChromeDriver.withBrowser { browser in
                try await browser.setBasicAuthentication(user: "ops", password: password + "-wrong")
                try await browser.navigate(to: dashboard.baseURL + "/")
                #expect(try await browser.findElements(css: "#queues").isEmpty, "no page for a wrong password")
                #expect(try await !browser.pageSource.contains(scope.queue))
                // Chromium shows a 401 as an empty page: no script ran.
                #expect(try await browser.executeScript("return document.body === null || document.body.dataset.ready === undefined") == true)

                try await browser.setBasicAuthentication(user: "ops", password: password)
                try await browser.navigate(to: dashboard.baseURL + "/")
                try await Self.waitUntilReady(browser)
                _ = try await browser.waitForText(scope.queue, css: "#queues tr[data-queue='\(scope.queue)']")
                #expect(try await !browser.pageSource.contains(password))
            }
        }
    }

    /// Waits for the page's first data to be shown (`body[data-ready=1]`).
    static func waitUntilReady(_ browser: ChromeDriver) async throws {
        try await browser.waitUntil("the page's data", timeout: .seconds(20)) {
            try await browser.executeScript("return document.body.dataset.ready === '1'") == true
        }
    }
}

/// Where a test's screenshots go: `QTASKS_SCREENSHOT_DIR`, else a
/// temporary directory removed at the end. Every screenshot is checked to
/// be a PNG of some size.
struct ScreenshotDirectory {
    let url: URL
    let isTemporary: Bool

    init() throws {
        if let path = ProcessInfo.processInfo.environment["QTASKS_SCREENSHOT_DIR"], !path.isEmpty {
            url = URL(fileURLWithPath: path)
            isTemporary = false
        } else {
            url = FileManager.default.temporaryDirectory.appendingPathComponent("qtasks-shots-\(UUID().uuidString.prefix(8))")
            isTemporary = true
        }
        try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
    }

    func save(_ browser: ChromeDriver, _ name: String) async throws {
        let png = try await browser.screenshot()
        #expect(png.starts(with: [0x89, 0x50, 0x4E, 0x47]) && png.count > 10_000, "\(name): \(png.count) bytes")
        try png.write(to: url.appendingPathComponent(name + ".png"))
    }

    func remove() {
        if isTemporary { try? FileManager.default.removeItem(at: url) }
    }
}
