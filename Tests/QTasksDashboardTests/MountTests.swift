import Foundation
import Hummingbird
import QTasks
import Synchronization
import Testing
#if canImport(FoundationNetworking)
import FoundationNetworking
#endif

@testable import QTasksDashboard

/// The dashboard mounted in a Hummingbird server of one's own, under a
/// path, as docs/dashboard.md shows: pages and API under the prefix, the
/// page told its prefix, a missing source said so.
struct MountTests {
    @Test(.timeLimit(.minutes(1))) func mountedUnderAPathInAnotherServer() async throws {
        let store = MemoryResultStore()
        try await store.record([
            TaskEvent(kind: .received, uuid: "u-1", taskName: "add", queue: "default", attempt: 1, workerID: "w")
        ])
        let dashboard = Dashboard(configuration: DashboardConfiguration(resultStore: store))
        let router = Router()
        router.get("/health") { _, _ in "ok" }
        dashboard.addRoutes(to: router, at: "/qtasks/")
        let port = Mutex<Int?>(nil)
        let app = Application(
            router: router, configuration: ApplicationConfiguration(address: .hostname("127.0.0.1", port: 0)),
            services: [dashboard],
            onServerRunning: { channel in port.withLock { $0 = channel.localAddress?.port } })
        let server = Task { try await app.runService(gracefulShutdownSignals: []) }
        defer { server.cancel() }
        var bound: Int?
        for _ in 0..<200 where bound == nil {
            bound = port.withLock { $0 }
            if bound == nil { try await Task.sleep(for: .milliseconds(50)) }
        }
        let base = "http://127.0.0.1:\(try #require(bound))"

        let page = try await Self.get(base + "/qtasks/tasks/u-1")
        #expect(page.status == 200 && page.text.contains(#"<meta name="qtasks-base" content="/qtasks">"#), "\(page.text.prefix(300))")
        #expect(page.text.contains(#"src="/qtasks/assets/app.js""#))
        let task = try await Self.get(base + "/qtasks/api/tasks/u-1")
        #expect(task.status == 200 && task.text.contains(#""task_name":"add""#), "\(task.text)")
        let letters = try await Self.get(base + "/qtasks/api/dead-letters")
        #expect(letters.status == 503 && letters.text.contains("no broker configured"), "\(letters.text)")
        let schedules = try await Self.get(base + "/qtasks/api/schedules")
        #expect(schedules.status == 200 && schedules.text.contains(#""available":false"#), "\(schedules.text)")
        let health = try await Self.get(base + "/health")
        #expect(health.status == 200 && health.text == "ok", "the host app's own routes are untouched")
        let outside = try await Self.get(base + "/api/overview")
        #expect(outside.status == 404, "nothing outside the prefix")
    }

    static func get(_ url: String) async throws -> (status: Int, text: String) {
        let (data, response) = try await URLSession.shared.data(from: URL(string: url)!)
        return ((response as? HTTPURLResponse)?.statusCode ?? 0, String(decoding: data, as: UTF8.self))
    }
}
