import Synchronization

/// Counts the deliveries whose settling goes on after their task's
/// concurrency slot was freed (a result published, its delivery acked when
/// the confirm arrives), so that a consuming session ends only once each
/// of them is acked or handed back: a graceful shutdown must not close the
/// connection under a confirmed result whose ack is still to go, or the
/// task would run again.
final class SettlementsInFlight: Sendable {
    private struct State {
        var count = 0
        var nextWaiter = 0
        var waiters: [Int: CheckedContinuation<Bool, Never>] = [:]
    }

    private let state = Mutex(State())

    var count: Int { state.withLock { $0.count } }

    func enter() {
        state.withLock { $0.count += 1 }
    }

    func leave() {
        let waiters = state.withLock { state -> [CheckedContinuation<Bool, Never>] in
            state.count -= 1
            guard state.count == 0 else { return [] }
            defer { state.waiters = [:] }
            return Array(state.waiters.values)
        }
        for waiter in waiters { waiter.resume(returning: true) }
    }

    /// Returns true once nothing is in flight, false if something still is
    /// after `timeout` (a broker that blocked publishing for a resource
    /// alarm holds confirms back for as long as the alarm lasts).
    func waitUntilNone(timeout: Duration) async -> Bool {
        let (id, done): (Int, Bool) = state.withLock { state in
            defer { state.nextWaiter += 1 }
            return (state.nextWaiter, state.count == 0)
        }
        if done { return true }
        let timer = Task { [self] in
            try? await Task.sleep(for: timeout)
            state.withLock { $0.waiters.removeValue(forKey: id) }?.resume(returning: false)
        }
        defer { timer.cancel() }
        return await withCheckedContinuation { (continuation: CheckedContinuation<Bool, Never>) in
            let now = state.withLock { state -> Bool in
                if state.count == 0 { return true }
                state.waiters[id] = continuation
                return false
            }
            if now { continuation.resume(returning: true) }
        }
    }
}
