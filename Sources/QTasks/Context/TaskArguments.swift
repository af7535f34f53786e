import Foundation
import Synchronization

/// A task's arguments exactly as the message carried them, as JSON values.
///
/// For tasks with typed parameters the values are decoded from the body
/// only on first access (the typed decoding does not build them); for tasks
/// that take only the context they come decoded already.
public struct TaskArguments: Sendable {
    private let storage: Storage

    /// Arguments given as values.
    public init(args: [JSONValue], kwargs: [String: JSONValue]) {
        storage = .decoded(args, kwargs)
    }

    /// Arguments to be read from a task message body on first access.
    init(body: [UInt8]) {
        storage = .lazy(LazyBody(body: body))
    }

    /// Positional arguments (`args`); empty when absent.
    public var args: [JSONValue] {
        switch storage {
        case .decoded(let args, _): return args
        case .lazy(let body): return body.values.args
        }
    }

    /// Keyword arguments (`kwargs`); empty when absent.
    public var kwargs: [String: JSONValue] {
        switch storage {
        case .decoded(_, let kwargs): return kwargs
        case .lazy(let body): return body.values.kwargs
        }
    }

    /// The size of the message body the arguments are read from, in bytes;
    /// nil for arguments given as values. Their JSON text is never much
    /// longer than the body that carried it (JSONValue writes no escape a
    /// valid body did not already have).
    var bodySize: Int? {
        switch storage {
        case .decoded: return nil
        case .lazy(let body): return body.size
        }
    }

    private enum Storage: Sendable {
        case decoded([JSONValue], [String: JSONValue])
        case lazy(LazyBody)
    }

    /// Decodes once, shared by all copies of the arguments.
    private final class LazyBody: Sendable {
        private let body: [UInt8]
        private let cache = Mutex<(args: [JSONValue], kwargs: [String: JSONValue])?>(nil)

        init(body: [UInt8]) { self.body = body }

        var size: Int { body.count }

        var values: (args: [JSONValue], kwargs: [String: JSONValue]) {
            cache.withLock { cache in
                if let cache { return cache }
                // The worker parsed this body before running the task, so
                // failure is not expected; empty arguments are the fallback.
                // JSONParser rather than JSONDecoder: several times cheaper,
                // and the recorder of task events reads every task's
                // arguments (TaskEventRecording).
                var values: (args: [JSONValue], kwargs: [String: JSONValue]) = ([], [:])
                if case .object(let object)? = try? JSONParser.parse(body) {
                    if case .array(let args)? = object["args"] { values.args = args }
                    if case .object(let kwargs)? = object["kwargs"] { values.kwargs = kwargs }
                }
                cache = values
                return values
            }
        }
    }
}
