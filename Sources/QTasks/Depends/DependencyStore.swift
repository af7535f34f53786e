import Logging
import Synchronization

/// The instances of one scope: one task call's (task scope) or one worker's
/// (worker scope).
///
/// Each dependency is set up at most once per store: the first resolution
/// creates it, concurrent ones wait for that creation (single flight). In
/// task scope the first resolver runs the factory itself; in worker scope
/// the factory runs in a detached task, so that cancelling the task that
/// asked first does not fail the others, and the task-locals of whichever
/// task came first do not leak into a shared instance.
///
/// Cycles: a resolver's chain catches a dependency that needs itself along
/// one chain. When chains meet (two tasks resolving `a` and `b` at once,
/// with `a` needing `b` and `b` needing `a`), each waits for the other's
/// creation; the store keeps which creation waits for which (the wait
/// graph) and refuses a wait that would close a loop in it, naming the
/// path.
final class DependencyStore: Sendable {
    let scope: DependencyScope
    private let logger: Logger
    /// The task call of a task-scoped store, added to what it logs: kept as
    /// strings and made metadata only when a teardown fails, since a
    /// logger's metadata setter is costly with some handlers
    /// (`StreamLogHandler` re-renders all its metadata on every set) and
    /// this store exists once per task.
    private let call: (uuid: String, taskName: String)?
    private let state = Mutex(State())
    private let waiterIDs = Atomic<Int>(0)

    /// A set-up instance's teardown, in setup order.
    private struct Setup: Sendable {
        var name: String
        var teardown: @Sendable (DependencyOutcome) async throws -> Void
    }

    private struct Creation {
        /// Resolutions waiting for this creation, by waiter id.
        var waiters: [Int: CheckedContinuation<Admission, any Error>] = [:]
        /// The detached task running the factory (worker scope).
        var task: Task<Void, Never>?
    }

    private struct State {
        var ready: [DependencyKey: any Sendable] = [:]
        var creating: [DependencyKey: Creation] = [:]
        /// The wait graph: a creation in progress → the dependencies its
        /// factory is waiting for (one entry per pending resolution).
        var waits: [DependencyKey: [DependencyKey]] = [:]
        var setups: [Setup] = []
        /// Set by `close`: why no new resolution is admitted.
        var closedReason: String?
        /// Set once the setups were handed to teardown: an instance whose
        /// creation ends later is torn down at once with this outcome.
        var drained: DependencyOutcome?
    }

    /// What a resolution learns when it asks the store.
    private enum Admission: Sendable {
        /// Already set up; no wait-graph edge was added.
        case cached(any Sendable)
        /// Refused at once (closed, cycle, cancelled); no edge was added.
        case rejected(any Error)
        /// Set up by another resolution while this one waited.
        case created(any Sendable)
        /// This resolution must run the factory itself (task scope).
        case create
    }

    /// - Parameters:
    ///   - logger: where failed teardowns are logged.
    ///   - call: the task call of a task-scoped store: its `uuid` and `task`
    ///     go into the log lines' metadata, as ``TaskContext/logger`` does.
    init(scope: DependencyScope, logger: Logger, call: (uuid: String, taskName: String)? = nil) {
        self.scope = scope
        self.logger = logger
        self.call = call
    }

    /// Returns the store's instance of `key`, creating it on first use.
    ///
    /// - Throws: ``DependencyError`` (`.factoryFailed`, `.cycle`,
    ///   `.unavailable`) or `CancellationError`.
    func resolve(
        _ key: DependencyKey,
        requester: DependencyResolver,
        factory: @escaping @Sendable (DependencyResolver) async throws -> ErasedProvision
    ) async throws -> any Sendable {
        // The creation whose factory is asking, when it belongs to this
        // store: the source of the wait-graph edge this resolution adds.
        let waiter = requester.chain.last.flatMap { $0.scope == scope ? $0 : nil }
        let id = waiterIDs.add(1, ordering: .relaxed).newValue
        let admission: Admission
        do {
            admission = try await withTaskCancellationHandler {
                try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<Admission, any Error>) in
                    let immediate = state.withLock { state -> Admission? in
                        if let reason = state.closedReason {
                            return .rejected(DependencyError.unavailable(key.name, reason))
                        }
                        if let value = state.ready[key] { return .cached(value) }
                        if Task.isCancelled { return .rejected(CancellationError()) }
                        if state.creating[key] != nil {
                            if let waiter, let loop = Self.path(from: key, to: waiter, in: state.waits) {
                                return .rejected(DependencyError.cycle(requester.chain + loop))
                            }
                            state.creating[key]?.waiters[id] = continuation
                            if let waiter { state.waits[waiter, default: []].append(key) }
                            return nil
                        }
                        if let waiter { state.waits[waiter, default: []].append(key) }
                        guard scope == .worker else {
                            state.creating[key] = Creation()
                            return .create
                        }
                        var creation = Creation()
                        creation.waiters[id] = continuation
                        let resolver = requester.child(for: key)
                        creation.task = Task.detached {
                            _ = await self.create(key, resolver: resolver, factory: factory)
                        }
                        state.creating[key] = creation
                        return nil
                    }
                    if let immediate { continuation.resume(returning: immediate) }
                }
            } onCancel: {
                let continuation = state.withLock { $0.creating[key]?.waiters.removeValue(forKey: id) }
                continuation?.resume(throwing: CancellationError())
            }
        } catch {
            removeEdge(from: waiter, to: key)
            throw error
        }
        switch admission {
        case .cached(let value):
            return value
        case .rejected(let error):
            throw error
        case .created(let value):
            removeEdge(from: waiter, to: key)
            return value
        case .create:
            defer { removeEdge(from: waiter, to: key) }
            return try await create(key, resolver: requester.child(for: key), factory: factory).get()
        }
    }

    /// Runs the factory of `key` (marked as creating), then records the
    /// instance and hands it, or the error, to every waiting resolution.
    private func create(
        _ key: DependencyKey,
        resolver: DependencyResolver,
        factory: @Sendable (DependencyResolver) async throws -> ErasedProvision
    ) async -> Result<any Sendable, any Error> {
        let result: Result<ErasedProvision, any Error>
        do {
            result = .success(try await factory(resolver))
        } catch let error as DependencyError {
            result = .failure(error)
        } catch let error as CancellationError {
            result = .failure(error)
        } catch {
            result = .failure(DependencyError.factoryFailed(resolver.chain, error))
        }
        switch result {
        case .success(let provision):
            let setup = provision.teardown.map { Setup(name: key.name, teardown: $0) }
            let (waiters, late) = state.withLock { state -> ([CheckedContinuation<Admission, any Error>], DependencyOutcome?) in
                let waiters = Array((state.creating.removeValue(forKey: key)?.waiters ?? [:]).values)
                if let drained = state.drained { return (waiters, drained) }
                state.ready[key] = provision.value
                if let setup { state.setups.append(setup) }
                return (waiters, nil)
            }
            if let late {
                // The scope ended while the factory ran: nobody will tear
                // this instance down later, so do it now.
                let error = DependencyError.unavailable(key.name, "its scope ended while it was being set up")
                for waiter in waiters { waiter.resume(throwing: error) }
                _ = await Self.tearDown(setup.map { [$0] } ?? [], outcome: late, logger: logger, call: call)
                return .failure(error)
            }
            for waiter in waiters { waiter.resume(returning: .created(provision.value)) }
            return .success(provision.value)
        case .failure(let error):
            // Not cached: the next resolution tries again.
            let waiters = state.withLock { Array(($0.creating.removeValue(forKey: key)?.waiters ?? [:]).values) }
            for waiter in waiters { waiter.resume(throwing: error) }
            return .failure(error)
        }
    }

    /// Ends the scope: refuses new resolutions, lets creations in flight
    /// finish (worker scope: they are cancelled first, as no task waits for
    /// them any more), then runs every teardown in reverse order of setup,
    /// each once, in a task that cancellation of the caller cannot skip.
    ///
    /// - Parameters:
    ///   - outcome: what the teardowns are told.
    ///   - reason: the end of "dependency 'x' is unavailable: …" for later
    ///     resolutions.
    /// - Returns: the first teardown error (all are logged at `error`).
    func close(_ outcome: DependencyOutcome, reason: String) async -> DependencyError? {
        let tasks = state.withLock { state -> [Task<Void, Never>] in
            state.closedReason = state.closedReason ?? reason
            return state.creating.values.compactMap(\.task)
        }
        for task in tasks { task.cancel() }
        for task in tasks { await task.value }
        let setups = state.withLock { state -> [Setup] in
            guard state.drained == nil else { return [] }
            state.drained = outcome
            defer {
                state.setups = []
                state.ready = [:]
            }
            return state.setups
        }
        return await Self.tearDown(setups, outcome: outcome, logger: logger, call: call)
    }

    /// ``close(_:reason:)`` for a store that nothing was set up in and
    /// nothing is being created in (most task calls resolve nothing): done
    /// at once under the lock, with no suspension and no teardown task.
    ///
    /// - Returns: false, having changed nothing, when the store has
    ///   something to tear down or wait for: call ``close(_:reason:)``.
    func closeIfUnused(_ outcome: DependencyOutcome, reason: String) -> Bool {
        state.withLock { state in
            guard state.creating.isEmpty, state.setups.isEmpty, state.drained == nil else { return false }
            state.closedReason = state.closedReason ?? reason
            state.drained = outcome
            state.ready = [:]
            return true
        }
    }

    private func removeEdge(from waiter: DependencyKey?, to key: DependencyKey) {
        guard let waiter else { return }
        state.withLock { state in
            guard let index = state.waits[waiter]?.firstIndex(of: key) else { return }
            state.waits[waiter]?.remove(at: index)
            if state.waits[waiter]?.isEmpty == true { state.waits[waiter] = nil }
        }
    }

    /// A path `start → … → target` along the wait graph, if any.
    private static func path(
        from start: DependencyKey,
        to target: DependencyKey,
        in waits: [DependencyKey: [DependencyKey]]
    ) -> [DependencyKey]? {
        var stack: [[DependencyKey]] = [[start]]
        var seen: Set<DependencyKey> = [start]
        while let path = stack.popLast() {
            let node = path[path.count - 1]
            if node == target { return path }
            for next in waits[node] ?? [] where seen.insert(next).inserted {
                stack.append(path + [next])
            }
        }
        return nil
    }

    /// Runs `setups`' teardowns in reverse order in an unstructured task,
    /// awaited: cancellation of the caller neither skips nor interrupts
    /// them. A throwing teardown is logged and the rest still run.
    ///
    /// - Returns: the first error, as ``DependencyError`` `.teardownFailed`.
    private static func tearDown(
        _ setups: [Setup], outcome: DependencyOutcome, logger: Logger, call: (uuid: String, taskName: String)?
    ) async -> DependencyError? {
        guard !setups.isEmpty else { return nil }
        let logger = call.map { TaskContext.taskLogger(logger, uuid: $0.uuid, taskName: $0.taskName) } ?? logger
        let task = Task {
            var first: DependencyError?
            for setup in setups.reversed() {
                do {
                    try await setup.teardown(outcome)
                } catch {
                    let failure = DependencyError.teardownFailed(setup.name, error)
                    logger.error(
                        "dependency teardown failed",
                        metadata: ["dependency": .string(setup.name), "error": .string(failure.message)]
                    )
                    if first == nil { first = failure }
                }
            }
            return first
        }
        return await task.value
    }
}
