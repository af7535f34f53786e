import Foundation
import QTasksState
import QTasksStateStores
import Testing

/// Lost updates across processes: two OS processes (the QTasksStateStress
/// helper) each increment one counter of the same state 1,000 times through
/// the atomic operation; the final value must be exactly 2,000.
@Suite("Cross-process atomicity")
struct CrossProcessTests {
    static let incrementsPerProcess = 1_000

    /// The helper executable, built next to the test bundle.
    static var helperPath: String {
        #if os(Linux)
            let products = URL(fileURLWithPath: "/proc/self/exe").resolvingSymlinksInPath().deletingLastPathComponent()
        #else
            let bundle = Bundle.allBundles.first { $0.bundlePath.hasSuffix(".xctest") } ?? Bundle.main
            let products = bundle.bundleURL.deletingLastPathComponent()
        #endif
        return products.appendingPathComponent("QTasksStateStress").path
    }

    @Test(arguments: Backend.shared)
    func twoProcessesLoseNoIncrement(_ backend: Backend) async throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        let url = backend == .sqlite ? "sqlite://\(directory.path)/state.db" : TestRedis.url
        let namespace = uniqueNamespace("Stress")
        #expect(FileManager.default.isExecutableFile(atPath: Self.helperPath), "missing \(Self.helperPath)")

        // Both start at the same moment, after their startup.
        let startAt = String(Date().timeIntervalSince1970 + 1.5)
        let workers = (0..<2).map { _ in
            ChildProcess(
                Self.helperPath,
                [url, namespace, "counter", "count", String(Self.incrementsPerProcess), startAt])
        }
        for worker in workers { try worker.run() }
        for (index, worker) in workers.enumerated() {
            let status = await worker.wait(timeout: .seconds(120))
            #expect(status == 0, "worker \(index) (\(backend)): \(worker.text)")
            print("[\(backend)] worker \(index): \(worker.text.trimmingCharacters(in: .whitespacesAndNewlines))")
        }

        let store = try await StateStores.open(url: url)
        let state = AnyState(namespace: namespace, key: "counter", store: store)
        let final = try await state.get("count", as: Int.self)
        print(
            "[\(backend)] final counter: \(final.map(String.init) ?? "nil") (expected \(2 * Self.incrementsPerProcess))"
        )
        #expect(final == 2 * Self.incrementsPerProcess)
        try await state.clear()
        await store.close()
    }

    /// Two processes each running 1,000 increments of one counter from 8
    /// tasks at once: the SQLite store commits each process's waiting
    /// writes in one transaction (group commit), and still no increment of
    /// either process is lost.
    @Test func twoProcessesWithConcurrentTasksLoseNoIncrementOnSQLite() async throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        let url = "sqlite://\(directory.path)/state.db"
        let startAt = String(Date().timeIntervalSince1970 + 1.5)
        let workers = (0..<2).map { _ in
            ChildProcess(
                Self.helperPath, [url, "Concurrent", "counter", "count", String(Self.incrementsPerProcess), startAt],
                environment: ["QTASKS_STRESS_CONCURRENCY": "8"])
        }
        for worker in workers { try worker.run() }
        for (index, worker) in workers.enumerated() {
            let status = await worker.wait(timeout: .seconds(120))
            #expect(status == 0, "process \(index): \(worker.text)")
        }
        let store = try await StateStores.open(url: url)
        let final = try await AnyState(namespace: "Concurrent", key: "counter", store: store).get("count", as: Int.self)
        #expect(final == 2 * Self.incrementsPerProcess)
        await store.close()
    }

    /// Several worker processes starting together on a fresh SQLite file:
    /// opening switches the file to WAL mode, which SQLite refuses with
    /// SQLITE_BUSY (without waiting) while another process does the same.
    /// Every process must open it and count.
    @Test func processesOpeningAFreshSQLiteFileTogetherAllSucceed() async throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        let url = "sqlite://\(directory.path)/fresh.db"
        let processes = 8
        let increments = 50
        let startAt = String(Date().timeIntervalSince1970 + 1.5)
        let workers = (0..<processes).map { _ in
            ChildProcess(
                Self.helperPath, [url, "Fresh", "counter", "count", String(increments), startAt],
                environment: ["QTASKS_STRESS_OPEN_AT_START": "1"])
        }
        for worker in workers { try worker.run() }
        for (index, worker) in workers.enumerated() {
            let status = await worker.wait(timeout: .seconds(120))
            #expect(status == 0, "process \(index): \(worker.text)")
        }
        let store = try await StateStores.open(url: url)
        let final = try await AnyState(namespace: "Fresh", key: "counter", store: store).get("count", as: Int.self)
        #expect(final == processes * increments)
        await store.close()
    }
}
