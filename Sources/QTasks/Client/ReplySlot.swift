import Synchronization

/// Where one task's result lands: it may arrive before anyone waits, and
/// several callers may wait for it.
final class ReplySlot: Sendable {
    private struct State {
        var result: TaskResult?
        var headers: [String: HeaderValue]?
        var failure: TaskClientError?
        var nextWaiter = 0
        var waiters: [Int: CheckedContinuation<TaskResult, any Error>] = [:]
    }

    private let state = Mutex(State())

    /// The result, if it arrived.
    var result: TaskResult? { state.withLock { $0.result } }
    /// The AMQP headers of the result message, set with the result.
    var headers: [String: HeaderValue]? { state.withLock { $0.headers } }

    func deliver(_ result: TaskResult, headers: [String: HeaderValue]) {
        let waiters = state.withLock { state -> [CheckedContinuation<TaskResult, any Error>] in
            guard state.result == nil else { return [] }
            state.result = result
            state.headers = headers
            defer { state.waiters = [:] }
            return Array(state.waiters.values)
        }
        for waiter in waiters { waiter.resume(returning: result) }
    }

    /// Fails the waiters, now and later, unless the result is in already.
    func fail(_ error: TaskClientError) {
        let waiters = state.withLock { state -> [CheckedContinuation<TaskResult, any Error>] in
            guard state.result == nil, state.failure == nil else { return [] }
            state.failure = error
            defer { state.waiters = [:] }
            return Array(state.waiters.values)
        }
        for waiter in waiters { waiter.resume(throwing: error) }
    }

    /// Waits for the result; a cancelled caller is removed and gets a
    /// `CancellationError`.
    func wait() async throws -> TaskResult {
        let id = state.withLock { state -> Int in
            state.nextWaiter += 1
            return state.nextWaiter
        }
        return try await withTaskCancellationHandler {
            try await withCheckedThrowingContinuation { continuation in
                let immediate: Result<TaskResult, any Error>? = state.withLock { state in
                    if let result = state.result { return .success(result) }
                    if let failure = state.failure { return .failure(failure) }
                    if Task.isCancelled { return .failure(CancellationError()) }
                    state.waiters[id] = continuation
                    return nil
                }
                if let immediate { continuation.resume(with: immediate) }
            }
        } onCancel: {
            let waiter = state.withLock { $0.waiters.removeValue(forKey: id) }
            waiter?.resume(throwing: CancellationError())
        }
    }
}
