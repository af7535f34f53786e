import Foundation
import QTasks
import Testing
import TestSupport

/// Workflows on the dashboard, in a real headless Chromium, against a real
/// broker and an example worker recording into SQLite: the list, a
/// workflow's tree with each step's status and links to the tasks, a
/// running workflow's page updating live, and the page of a dashboard
/// without a result store.
@Suite(
    .enabled(if: IntegrationEnvironment.enabled, "no RabbitMQ reachable at QTASKS_URL; deploy/test.sh starts one"),
    .enabled(
        if: ChromeDriver.isAvailable || ChromeDriver.isRequired,
        "chromium and chromedriver are not installed (deploy/install-deps.sh installs them)"),
    .serialized, .timeLimit(.minutes(4)))
struct DashboardWorkflowTests {
    static func write(_ json: String) throws -> String {
        let path = NSTemporaryDirectory() + "qtasks-dash-workflow-\(UUID().uuidString).json"
        try json.write(toFile: path, atomically: true, encoding: .utf8)
        return path
    }

    /// The tree of `/api/workflows/<id>` once every step has its record,
    /// as the example worker writes them a moment after each ack.
    static func settledTree(_ base: String, _ id: String, tasks: Int) async throws -> JSONValue {
        try await eventually("the workflow \(id) with every step's record") { () -> JSONValue? in
            let answer = try await HTTP.request(base + "/api/workflows/\(id)")
            guard answer.status == 200, let json = answer.json, json["workflow"]?["status"]?.stringValue != "process" else {
                return nil
            }
            func statuses(_ node: JSONValue) -> [String?] {
                if node["kind"]?.stringValue == "task" { return [node["status"]?.stringValue] }
                return (node["children"]?.arrayValue ?? []).flatMap(statuses)
            }
            let known = statuses(json["tree"] ?? .null)
            return known.count == tasks && known.allSatisfy({ $0 == "success" || $0 == "error" }) ? json : nil
        }
    }

    @Test func theListATreeWithLinksToTasksAndLiveUpdates() async throws {
        let store = try TestResultStore.sqlite()
        defer { store.remove() }
        let shots = try ScreenshotDirectory()
        defer { shots.remove() }
        try await TestScope.run("dash-wf") { scope in
            _ = try await scope.startWorker(on: scope.queue, arguments: store.arguments)
            // A chord under all_settled: one member fails, the callback runs
            // with both outcomes, the workflow succeeds.
            let message = "card declined \(UUID().uuidString.prefix(6))"
            let file = try Self.write(
                #"{"chain": [{"group": [{"task": "add", "args": [1, 2]}, {"task": "fail", "args": ["\#(message)"]}]}, {"task": "echo", "args": ["done"]}]}"#)
            defer { try? FileManager.default.removeItem(atPath: file) }
            let sent = try await scope.runCLI(
                ["workflow", "send", file, "--queue", scope.queue, "--policy", "all_settled", "--wait", "30"])
            #expect(sent.termination == .exited(0), "\(sent)")
            let id = try JSONDecoder().decode(TaskResult.self, from: Data(sent.stdout.utf8)).uuid

            let dashboard = try await scope.startDashboard(["--queue", scope.queue] + store.arguments)
            let base = dashboard.baseURL
            let json = try await Self.settledTree(base, id, tasks: 3)
            let group = try #require(json["tree"]?["children"]?[0])
            let failedMember = try #require(group["children"]?.arrayValue?.first { $0["status"]?.stringValue == "error" })
            let failedUUID = try #require(failedMember["uuid"]?.stringValue)
            #expect(failedMember["error"]?.stringValue?.contains(message) == true, "\(json)")
            let list = try await HTTP.request(base + "/api/workflows?status=success")
            #expect(list.json?["workflows"]?.arrayValue?.first?["id"]?.stringValue == id, "\(list)")
            #expect(list.json?["workflows"]?.arrayValue?.first?["tasks"]?.intValue == 3, "\(list)")

            try await ChromeDriver.withBrowser { browser in
                // The navigation leads to the list; the workflow's row.
                try await browser.navigate(to: base + "/")
                try await DashboardBrowserTests.waitUntilReady(browser)
                try await browser.findElement(css: "#nav a[data-nav=workflows]").click()
                try await DashboardBrowserTests.waitUntilReady(browser)
                #expect(try await browser.currentURL == base + "/workflows")
                let row = try await browser.waitForText("all_settled", css: "#workflows tr[data-workflow='\(id)']")
                #expect(try await row.attribute("data-status") == "success")
                #expect(try await browser.findElement(css: "#nav a[data-nav=workflows]").attribute("aria-current") == "page")
                try await shots.save(browser, "dashboard-workflows")

                // The filter is in the query string: error shows none of it.
                try await browser.navigate(to: base + "/workflows?status=error")
                try await DashboardBrowserTests.waitUntilReady(browser)
                #expect(try await browser.findElements(css: "#workflows tr[data-workflow='\(id)']").isEmpty)
                #expect(try await browser.executeScript("return document.querySelector('#filter-status').value") == "error")

                // The workflow's page: the chain in order, the group's progress,
                // each task with its status and a link, the failed member's error.
                try await browser.navigate(to: base + "/workflows")
                try await DashboardBrowserTests.waitUntilReady(browser)
                try await browser.findElement(css: "#workflows tr[data-workflow='\(id)'] a").click()
                try await DashboardBrowserTests.waitUntilReady(browser)
                #expect(try await browser.currentURL == base + "/workflows/\(id)")
                #expect(try await browser.findElement(css: "#workflow-status").text == "success")
                let tree = try await browser.findElement(css: "#workflow-tree").text
                #expect(tree.contains("2/2 settled, 1 failed, complete"), "\(tree)")
                #expect(tree.contains(message), "the failed member's error: \(tree)")
                #expect(tree.hasPrefix("chain"), "\(tree)")
                // The group first (its members in order), then the callback.
                var names: [String] = []
                for name in try await browser.findElements(css: "#workflow-tree li.wf-task .wf-name") { names.append(try await name.text) }
                #expect(names == ["add", "fail", "echo"], "\(tree)")
                let groupMembers = try await browser.findElements(css: "#workflow-tree > li.wf-chain > ol > li.wf-group li.wf-task")
                #expect(groupMembers.count == 2, "\(tree)")
                let failed = try await browser.findElement(css: "#workflow-tree li.wf-task[data-uuid='\(failedUUID)']")
                #expect(try await failed.attribute("data-status") == "error")
                #expect(try await failed.findElement(css: ".badge").text == "error")
                #expect(try await failed.findElement(css: ".wf-error").text.contains(message))
                try await shots.save(browser, "dashboard-workflow")

                // Its link leads to the task's own page.
                try await failed.findElement(css: "a.wf-link").click()
                try await DashboardBrowserTests.waitUntilReady(browser)
                #expect(try await browser.currentURL == base + "/tasks/\(failedUUID)")
                #expect(try await browser.findElement(css: "#task-name").text == "fail")
                _ = try await browser.waitForText(message, css: "#failure-message")

                // A running workflow's page follows it without a reload.
                let slow = try Self.write(#"{"chain": [{"task": "sleep", "args": [3]}, {"task": "echo"}]}"#)
                defer { try? FileManager.default.removeItem(atPath: slow) }
                let started = try await scope.runCLI(["workflow", "send", slow, "--queue", scope.queue, "--wait", "0"])
                #expect(started.termination == .exited(0), "\(started)")
                let slowID = try #require(
                    started.stdout.split(whereSeparator: \.isWhitespace).map(String.init).first { UUID(uuidString: $0) != nil },
                    "\(started)")
                _ = try await eventually("the running workflow's record") { () -> Bool? in
                    let answer = try await HTTP.request(base + "/api/workflows/\(slowID)")
                    return answer.json?["workflow"]?["status"]?.stringValue == "process" ? true : nil
                }
                try await browser.navigate(to: base + "/workflows/\(slowID)")
                try await DashboardBrowserTests.waitUntilReady(browser)
                // Read in one script: the page may replace the element meanwhile.
                func statusShown() async throws -> String? {
                    try await browser.executeScript("return document.querySelector('#workflow-status').textContent").string
                }
                #expect(try await statusShown() == "process", "opened while it runs")
                _ = try await browser.executeScript("window.__sameDocument = true")
                try await browser.waitUntil("the page showing the workflow's success", timeout: .seconds(30)) {
                    try await statusShown() == "success"
                }
                #expect(try await browser.executeScript("return window.__sameDocument === true") == true, "updated, not reloaded")
                try await browser.waitUntil("both steps succeeded on the page", timeout: .seconds(20)) {
                    try await browser.findElements(css: "#workflow-tree li.wf-task[data-status=success]").count == 2
                }
            }
        }
    }

    /// Without a result store the pages say that workflows need one.
    @Test func withoutAResultStoreThePageSaysSo() async throws {
        try await TestScope.run("dash-wf-none") { scope in
            let dashboard = try await scope.startDashboard(["--queue", scope.queue])
            let answer = try await HTTP.request(dashboard.baseURL + "/api/workflows")
            #expect(answer.status == 503 && answer.json?["error"]?.stringValue?.contains("result store") == true, "\(answer)")
            try await ChromeDriver.withBrowser { browser in
                for path in ["/workflows", "/workflows/some-id"] {
                    try await browser.navigate(to: dashboard.baseURL + path)
                    try await DashboardBrowserTests.waitUntilReady(browser)
                    let text = try await browser.findElement(css: "#workflows-unavailable").text
                    #expect(text.contains("Workflows need a result store"), "\(path): \(text)")
                }
            }
        }
    }
}
