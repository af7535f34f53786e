import Foundation
import Synchronization

/// A task's arguments exactly as the message carried them, as JSON values.
///
/// The worker's parser reads them with the rest of the body, once; when a
/// body goes to `JSONDecoder` instead (a `\u` escape, invalid UTF-8, a
/// value that parser does not decide), a typed task's arguments are parsed
/// from the body only on first access.
public struct TaskArguments: Sendable {
    private let storage: Storage

    /// Arguments given as values.
    public init(args: [JSONValue], kwargs: [String: JSONValue]) {
        storage = .decoded(args, kwargs, sourceSize: nil)
    }

    /// Arguments already read from a task message body of `sourceSize`
    /// bytes (the worker parsed the body once, for the envelope and the
    /// arguments alike).
    init(args: [JSONValue], kwargs: [String: JSONValue], sourceSize: Int) {
        storage = .decoded(args, kwargs, sourceSize: sourceSize)
    }

    /// Arguments to be read from a task message body on first access.
    init(body: [UInt8]) {
        storage = .lazy(LazyBody(body: body))
    }

    /// Positional arguments (`args`); empty when absent.
    public var args: [JSONValue] {
        switch storage {
        case .decoded(let args, _, _): return args
        case .lazy(let body): return body.values.args
        }
    }

    /// Keyword arguments (`kwargs`); empty when absent.
    public var kwargs: [String: JSONValue] {
        switch storage {
        case .decoded(_, let kwargs, _): return kwargs
        case .lazy(let body): return body.values.kwargs
        }
    }

    /// The size of the message body the arguments were read from, in bytes;
    /// nil for arguments given as values. Their JSON text is never much
    /// longer than the body that carried it (JSONValue writes no escape a
    /// valid body did not already have).
    var bodySize: Int? {
        switch storage {
        case .decoded(_, _, let size): return size
        case .lazy(let body): return body.size
        }
    }

    private enum Storage: Sendable {
        case decoded([JSONValue], [String: JSONValue], sourceSize: Int?)
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
