/// Runs `body` until it returns, retrying every 100 ms after an error that
/// `isRetried` accepts, for at most `timeout`; then the last error is
/// thrown. An error `isRetried` refuses is thrown at once.
///
/// For a call whose success is the point but whose time is not: a store
/// call with a short timeout of its own (set short to keep a fault test
/// fast), made while a starved machine may need longer than that timeout
/// for one round trip. Retry the timeouts only, so that any other failure
/// still fails the test.
public func retrying<T>(
    timeout: Duration = .seconds(60), isolation: isolated (any Actor)? = #isolation,
    while isRetried: (any Error) -> Bool, _ body: () async throws -> T
) async throws -> T {
    let deadline = ContinuousClock.now + timeout
    while true {
        do {
            return try await body()
        } catch {
            guard isRetried(error), ContinuousClock.now < deadline else { throw error }
            try await Task.sleep(for: .milliseconds(100))
        }
    }
}

/// Whether `error` says a Redis store call ran out of its time (the
/// message of `RedisDeadline`: "timed out after 5 s").
public func isRedisTimeout(_ error: any Error) -> Bool {
    "\(error)".contains("timed out after")
}

/// Waits until `condition` holds, checking every 50 ms, for at most
/// `timeout`; false when it never did. The default is long: a condition
/// that holds returns at once, and a starved machine may need seconds for
/// what takes milliseconds on a quiet one.
public func awaitCondition(
    timeout: Duration = .seconds(30), isolation: isolated (any Actor)? = #isolation, _ condition: () async throws -> Bool
) async rethrows -> Bool {
    let deadline = ContinuousClock.now + timeout
    while ContinuousClock.now < deadline {
        if try await condition() { return true }
        try? await Task.sleep(for: .milliseconds(50))
    }
    return try await condition()
}
