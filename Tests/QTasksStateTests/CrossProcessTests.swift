import Foundation
import QTasksState
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
}
