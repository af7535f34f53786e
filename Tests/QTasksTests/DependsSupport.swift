import Foundation
import QTasks
import Synchronization

/// An append-only list of what happened, in order, safe across tasks.
final class EventLog: Sendable {
    private let events = Mutex<[String]>([])

    func record(_ event: String) { events.withLock { $0.append(event) } }
    var all: [String] { events.withLock { $0 } }
    func count(_ event: String) -> Int { events.withLock { $0.filter { $0 == event }.count } }
}

/// A fake resource: numbered, remembers who opened and who closed it.
final class FakeResource: Sendable {
    private static let counter = Atomic<Int>(0)
    let id: Int
    let name: String
    /// The uuid of the task call whose factory created it (nil for worker scope).
    let openedBy: String?
    private let state = Mutex<(closedBy: [String?], outcomes: [String])>(([], []))

    init(_ name: String, openedBy: String?) {
        self.id = Self.counter.add(1, ordering: .relaxed).newValue
        self.name = name
        self.openedBy = openedBy
    }

    func close(by uuid: String?, outcome: DependencyOutcome) {
        state.withLock {
            $0.closedBy.append(uuid)
            $0.outcomes.append(outcome.label)
        }
    }

    /// One entry per close: the uuid of the task call that was current.
    var closedBy: [String?] { state.withLock { $0.closedBy } }
    var outcomes: [String] { state.withLock { $0.outcomes } }
}

/// Every resource made by a dependency, by id.
final class ResourceRegistry: Sendable {
    private let resources = Mutex<[Int: FakeResource]>([:])

    func add(_ resource: FakeResource) { resources.withLock { $0[resource.id] = resource } }
    var all: [FakeResource] { resources.withLock { Array($0.values) } }
}

extension DependencyOutcome {
    /// `success`, `error:<description>`, `cancelled`, `shutdown`.
    var label: String {
        switch self {
        case .success: return "success"
        case .error(let error): return "error:\(error)"
        case .cancelled: return "cancelled"
        case .shutdown: return "shutdown"
        }
    }
}

/// A task-scoped or worker-scoped dependency that logs `setup <name>` when
/// its factory finished and `teardown <name> <outcome>` when torn down.
func loggedResource(
    _ name: String,
    scope: DependencyScope = .task,
    log: EventLog,
    registry: ResourceRegistry? = nil,
    needs: [Dependency<FakeResource>] = []
) -> Dependency<FakeResource> {
    Dependency<FakeResource>(name, scope: scope) { resolver in
        for dependency in needs {
            _ = try await resolver.resolve(dependency)
        }
        let resource = FakeResource(name, openedBy: resolver.context?.uuid)
        registry?.add(resource)
        log.record("setup \(name)")
        return .value(resource, teardown: { resource, outcome in
            resource.close(by: TaskContext.current?.uuid, outcome: outcome)
            log.record("teardown \(name) \(outcome.label)")
        })
    }
}

/// A connection failure, as a database driver would throw it.
struct ConnectionRefused: Error, CustomStringConvertible {
    var description: String { "connection refused" }
}

/// Runs `body`, failing the test (and cancelling `body`) when it takes
/// longer than `timeout`: a hang becomes a failure, not a stuck test run.
func withDeadline<T: Sendable>(
    _ timeout: Duration = .seconds(10),
    _ body: @escaping @Sendable () async throws -> T
) async throws -> T {
    try await withThrowingTaskGroup(of: T?.self) { group in
        group.addTask { try await body() }
        group.addTask {
            try await Task.sleep(for: timeout)
            return nil
        }
        defer { group.cancelAll() }
        let first = try await group.next()
        guard let first, let value = first else {
            throw DeadlineExceeded()
        }
        return value
    }
}

struct DeadlineExceeded: Error, CustomStringConvertible {
    var description: String { "the deadline passed: something hangs" }
}

/// Waits until `count` callers have arrived, so that they continue at the
/// same moment.
final class Gate: Sendable {
    private let arrived = Atomic<Int>(0)
    let count: Int

    init(count: Int) { self.count = count }

    func arriveAndWait() async throws {
        arrived.add(1, ordering: .relaxed)
        while arrived.load(ordering: .relaxed) < count {
            try await Task.sleep(for: .milliseconds(1))
        }
    }
}
