import QTasks

/// An error from the State module: a ``code`` to switch on and a message for
/// people.
///
/// Messages name the state (`namespace/key`), the field and the backend
/// (Redis URLs with the password replaced by `***`); they never contain a
/// password. Errors thrown by a ``StateStore/modify(_:ttl:_:)`` closure are not
/// wrapped: they reach the caller unchanged.
public struct StateError: Error, Sendable, CustomStringConvertible {
    /// What went wrong, as a value to compare against (`error.code == .unavailable`).
    ///
    /// A struct over a private enum (as in swift-jobs' `JobQueueError`), so
    /// that codes can be added without breaking exhaustive switches.
    public struct Code: Hashable, Sendable, CustomStringConvertible {
        private enum Base: String, Hashable, Sendable {
            case invalidURL
            case invalidArgument
            case unavailable
            case rejected
            case corrupted
            case decoding
            case encoding
            case conflict
            case closed
            case unsupported
        }

        private let base: Base
        private init(_ base: Base) { self.base = base }

        /// The backend URL is malformed or names an unknown scheme.
        public static let invalidURL = Code(.invalidURL)
        /// An argument breaks a rule: an empty namespace, a namespace with
        /// `:`, an empty key, a time-to-live that is not positive, a
        /// non-finite number.
        public static let invalidArgument = Code(.invalidArgument)
        /// The backend cannot be reached or used right now: Redis down, the
        /// connection lost or timed out, authentication refused, the SQLite
        /// file cannot be opened or stays locked past the busy timeout. The
        /// operation may be tried again; Redis stores reconnect by
        /// themselves on the next operation.
        public static let unavailable = Code(.unavailable)
        /// The backend refused the operation for another reason (a Redis
        /// error reply such as `OOM`, a read-only or full SQLite disk).
        public static let rejected = Code(.rejected)
        /// What the backend holds is not a State document: a field that is
        /// not JSON, a Redis key that is not a hash, a damaged SQLite file.
        public static let corrupted = Code(.corrupted)
        /// A stored value does not decode as the type that was asked for
        /// (``StateHandle/get(_:as:)``, ``StateHandle/increment(_:by:)``).
        public static let decoding = Code(.decoding)
        /// A value to store could not be encoded as JSON.
        public static let encoding = Code(.encoding)
        /// An atomic read-modify-write kept losing to concurrent writers
        /// (Redis optimistic transactions) and gave up after
        /// ``StateStoreConfiguration/maxModifyAttempts`` attempts.
        public static let conflict = Code(.conflict)
        /// The store was closed with ``StateStore/close()``.
        public static let closed = Code(.closed)
        /// The store does not offer the operation: a `StateStore` written
        /// outside this package that does not implement the listing
        /// operations (``StateStore/namespaces(limit:)``,
        /// ``StateStore/keys(in:limit:)``).
        public static let unsupported = Code(.unsupported)

        public var description: String { base.rawValue }
    }

    /// What went wrong.
    public var code: Code
    /// What happened, for people and logs.
    public var message: String

    /// Creates an error.
    public init(_ code: Code, _ message: String) {
        self.code = code
        self.message = message
    }

    /// `StateError(unavailable): <message>`.
    public var description: String { "StateError(\(code)): \(message)" }
}

extension StateError: TransientError {
    /// `.unavailable` only (Redis down, a connection lost or timed out, an
    /// SQLite file still locked after the busy timeout): the worker retries
    /// a task that fails with it (``QTasks/TransientRetryPolicy``).
    public var isTransient: Bool { code == .unavailable }
}
