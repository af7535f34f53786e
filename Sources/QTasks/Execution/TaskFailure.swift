/// Why a task run did not succeed: the error's type name and message.
public struct TaskFailure: Sendable, Hashable, CustomStringConvertible {
    /// The Swift type name of the error (`TaskInputError` for bad input).
    public var errorType: String
    /// One line; for bad input it says what is wrong with the message.
    public var message: String

    /// A failure from its parts, for example to report bad input.
    public init(errorType: String, message: String) {
        self.errorType = errorType
        self.message = message
    }

    /// Describes a thrown error: `errorDescription` for a `LocalizedError`,
    /// else `String(describing:)`.
    public init(_ error: any Error) {
        if let wrapper = error as? NonRetryableError {
            self = wrapper.failure
            return
        }
        self.errorType = String(describing: type(of: error))
        self.message = Self.message(of: error)
    }

    /// `"ErrorType: message"`, the result's `traceback`.
    public var traceback: String { "\(errorType): \(message)" }

    public var description: String { traceback }
}
