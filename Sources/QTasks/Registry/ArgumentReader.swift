/// Where a task's arguments are read from: the body's top-level container
/// (the `JSONDecoder` path, whose errors are the ones shown), or the values
/// ``JSONParser`` already read (the worker's fast path, which only has to
/// agree with that path on success: any failure there falls back to it).
enum ArgumentSource {
    case container(KeyedDecodingContainer<EnvelopeKey>)
    case values(ParsedArguments)
}

/// `args` and `kwargs` as ``JSONParser`` read them (absent or null: empty),
/// and what the decoders of the parameter types see.
struct ParsedArguments {
    var args: [JSONValue]
    var kwargs: [String: JSONValue]
    /// The catalog, for the `userInfo` of the `Decoder` that user types
    /// read (the same as `JSONDecoder`'s on the other path).
    var catalog: TaskCatalog?
    /// The body's size in bytes (``TaskArguments``).
    var bodySize: Int

    /// The arguments as the handler's context shows them.
    var taskArguments: TaskArguments {
        TaskArguments(args: args, kwargs: kwargs, sourceSize: bodySize)
    }
}

/// Reads a task's arguments, one parameter at a time, from the body's `args`
/// and `kwargs`, with Python's call semantics: positional first, then by
/// name; an omitted `Optional` parameter is nil; too many positional
/// arguments, unknown or duplicate keyword arguments and missing ones are
/// errors worded like Python's.
///
/// Two sources (``ArgumentSource``): Codable containers from `JSONDecoder`,
/// or the parsed values, read without any container (opening `args` and
/// `kwargs` through containers was half of a task's decoding). On the
/// values, every failure is `JSONValueDecoder.Unsupported` or the same
/// ``TaskInputError`` as on containers; the caller then reads the body
/// again through `JSONDecoder`, whose error is the one shown, worded as it
/// always was.
///
/// A class because parameter-pack expansion calls ``next(_:)`` once per
/// parameter and each call advances the shared position.
final class ArgumentReader {
    private let taskName: String
    private let names: [String]?
    private var positional: UnkeyedDecodingContainer?
    private let positionalCount: Int
    private let keywords: KeyedDecodingContainer<ArgumentKey>?
    /// The fast path's values (nil: read from the containers above).
    private let values: ParsedArguments?
    private var position = 0
    /// The task's arguments are secret (``TaskOptions/recordsArguments``
    /// false): errors name the kind of a wrong value, never the value, since
    /// they go to results, logs, result stores and the events exchange.
    private let secretArguments: Bool

    /// Checks the shape and the count of the arguments against the
    /// parameters before any of them is decoded, so arity errors win over
    /// type errors (as in Python).
    ///
    /// - Throws: ``TaskInputError``.
    convenience init(
        taskName: String,
        parameterNames names: [String]?,
        parameterCount count: Int,
        container: KeyedDecodingContainer<EnvelopeKey>,
        secretArguments: Bool = false
    ) throws {
        try self.init(
            taskName: taskName, parameterNames: names, parameterCount: count, source: .container(container),
            secretArguments: secretArguments)
    }

    /// The same, from either source.
    ///
    /// - Throws: ``TaskInputError``; for parsed values, also
    ///   `JSONValueDecoder.Unsupported`.
    init(
        taskName: String,
        parameterNames names: [String]?,
        parameterCount count: Int,
        source: ArgumentSource,
        secretArguments: Bool = false
    ) throws {
        self.taskName = taskName
        self.names = names
        self.secretArguments = secretArguments
        switch source {
        case .values(let parsed):
            values = parsed
            positional = nil
            keywords = nil
            positionalCount = parsed.args.count
            try Self.checkArity(taskName, names: names, count: count, given: positionalCount, keywords: parsed.kwargs.keys)
            return
        case .container(let container):
            values = nil
            if Self.isPresent(.args, in: container) {
                do {
                    positional = try container.nestedUnkeyedContainer(forKey: .args)
                } catch {
                    throw Self.fieldError(.args, "a JSON array", in: container)
                }
            }
            positionalCount = positional?.count ?? 0
            if Self.isPresent(.kwargs, in: container) {
                do {
                    keywords = try container.nestedContainer(keyedBy: ArgumentKey.self, forKey: .kwargs)
                } catch {
                    throw Self.fieldError(.kwargs, "a JSON object", in: container)
                }
            } else {
                keywords = nil
            }
            try Self.checkArity(
                taskName, names: names, count: count, given: positionalCount, keywords: (keywords?.allKeys ?? []).lazy.map(\.stringValue))
        }
    }

    /// Too many positional arguments, then the keyword arguments in sorted
    /// order (so that the error names the same key every time): unknown,
    /// or given positionally too.
    private static func checkArity(
        _ taskName: String, names: [String]?, count: Int, given positionalCount: Int, keywords: some Collection<String>
    ) throws {
        if positionalCount > count {
            throw TaskInputError(
                .invalidArguments,
                "\(taskName)() takes \(count) argument\(count == 1 ? "" : "s") but \(positionalCount) \(positionalCount == 1 ? "was" : "were") given"
            )
        }
        guard !keywords.isEmpty else { return }
        for key in keywords.sorted() {
            guard let index = names?.firstIndex(of: key) else {
                throw TaskInputError(.invalidArguments, "\(taskName)() got an unexpected keyword argument '\(key)'")
            }
            if index < positionalCount {
                throw TaskInputError(.invalidArguments, "\(taskName)() got multiple values for argument '\(key)'")
            }
        }
    }

    /// Whether a call given `args` and `kwargs` (parsed) fits a handler of
    /// no parameters: then it needs no reader at all.
    static func fitsNoParameters(_ parsed: ParsedArguments) -> Bool {
        parsed.args.isEmpty && parsed.kwargs.isEmpty
    }

    /// Decodes the next parameter.
    ///
    /// - Throws: ``TaskInputError`` naming the parameter, the expected type
    ///   and what was found.
    func next<Value: Decodable>(_ type: Value.Type) throws -> Value {
        let index = position
        position += 1
        let name = names?[index]
        if let values {
            return try next(Value.self, index: index, name: name, from: values)
        }
        if index < positionalCount, var container = positional {
            defer { positional = container }
            do {
                return try container.decode(Value.self)
            } catch {
                let found = try? container.decode(JSONValue.self)
                throw mismatch(Value.self, index: index, name: name, found: found, error: error, pathPrefix: 2)
            }
        }
        if let name, let keywords, keywords.contains(ArgumentKey(stringValue: name)) {
            let key = ArgumentKey(stringValue: name)
            do {
                return try keywords.decode(Value.self, forKey: key)
            } catch {
                let found = try? keywords.decode(JSONValue.self, forKey: key)
                throw mismatch(Value.self, index: index, name: name, found: found, error: error, pathPrefix: 2)
            }
        }
        if let optional = Value.self as? any OptionalParameter.Type {
            return optional.omitted as! Value
        }
        let label = name.map { "'\($0)' (position \(index + 1))" } ?? "at position \(index + 1)"
        throw TaskInputError(.invalidArguments, "\(taskName)() missing argument \(label) of type \(DecodingErrorText.typeName(Value.self))")
    }

    /// ``next(_:)`` on the parsed values: each value through
    /// ``JSONValueDecoder``, as the containers over them did; any error is
    /// left to the `JSONDecoder` path to word.
    private func next<Value: Decodable>(_ type: Value.Type, index: Int, name: String?, from values: ParsedArguments) throws -> Value {
        let value: JSONValue
        if index < values.args.count {
            value = values.args[index]
        } else if let name, let keyword = values.kwargs[name] {
            value = keyword
        } else if let optional = Value.self as? any OptionalParameter.Type {
            return optional.omitted as! Value
        } else {
            throw JSONValueDecoder.Unsupported()
        }
        return try JSONValueDecoder.decode(Value.self, from: value, codingPath: [], userInfo: userInfo)
    }

    /// What `JSONDecoder` gives the decoders of parameter types: the catalog.
    private lazy var userInfo: [CodingUserInfoKey: Any] = values?.catalog.map { [TaskEnvelope.catalogKey: $0] } ?? [:]

    private func mismatch(
        _ type: Any.Type,
        index: Int,
        name: String?,
        found: JSONValue?,
        error: any Error,
        pathPrefix: Int
    ) -> TaskInputError {
        let label = "\(taskName)() argument \(index + 1)" + (name.map { " ('\($0)')" } ?? "")
        let isTopLevel: Bool
        if let error = error as? DecodingError {
            switch error {
            case .typeMismatch(_, let context), .valueNotFound(_, let context), .dataCorrupted(let context):
                isTopLevel = context.codingPath.count <= pathPrefix
            case .keyNotFound(_, let context):
                isTopLevel = context.codingPath.count < pathPrefix
            @unknown default:
                isTopLevel = false
            }
        } else {
            // Foundation's own number errors (e.g. 1.5 for an Int) carry no path.
            isTopLevel = true
        }
        if isTopLevel, let found {
            let what = secretArguments ? (found.isNull ? "null" : found.kindName) : Self.describe(found)
            return TaskInputError(.invalidArguments, "\(label): expected \(DecodingErrorText.typeName(type)), found \(what)")
        }
        if secretArguments {
            // DecodingError's own words may quote the value (a number that
            // does not fit): the type alone.
            return TaskInputError(.invalidArguments, "\(label): expected \(DecodingErrorText.typeName(type))")
        }
        return TaskInputError(.invalidArguments, "\(label): \(DecodingErrorText.describe(error, droppingPathPrefix: pathPrefix))")
    }

    /// `string "abc"`, `number 1.5`, `object`: short, never a whole payload.
    private static func describe(_ value: JSONValue) -> String {
        switch value {
        case .array, .object: return value.kindName
        default:
            var text = value.description
            if text.count > 40 { text = String(text.prefix(37)) + "..." }
            return value.isNull ? "null" : "\(value.kindName) \(text)"
        }
    }

    private static func isPresent(_ key: EnvelopeKey, in container: KeyedDecodingContainer<EnvelopeKey>) -> Bool {
        // decodeNil throws for an absent key: one lookup, not two.
        (try? container.decodeNil(forKey: key)) == false
    }

    /// "args must be a JSON array, found an object"; or, when what is there
    /// does not even read as JSON values, what is wrong inside it.
    private static func fieldError(
        _ key: EnvelopeKey, _ expected: String, in container: KeyedDecodingContainer<EnvelopeKey>
    ) -> TaskInputError {
        do {
            let found = try container.decode(JSONValue.self, forKey: key)
            return TaskInputError(.invalidField, "\(key.stringValue) must be \(expected), found \(found.kindName)")
        } catch {
            return TaskInputError(
                .invalidField,
                "\(key.stringValue) could not be read: \(DecodingErrorText.describe(error, droppingPathPrefix: 1))")
        }
    }

    /// Reads `args` and `kwargs` as they are, for tasks that take any
    /// arguments and for ``TaskMessage``.
    ///
    /// - Throws: ``TaskInputError`` when `args` is not an array or `kwargs`
    ///   not an object.
    static func raw(from container: KeyedDecodingContainer<EnvelopeKey>) throws -> TaskArguments {
        var args: [JSONValue] = []
        var kwargs: [String: JSONValue] = [:]
        if isPresent(.args, in: container) {
            guard case .array(let values)? = try? container.decode(JSONValue.self, forKey: .args) else {
                throw fieldError(.args, "a JSON array", in: container)
            }
            args = values
        }
        if isPresent(.kwargs, in: container) {
            guard case .object(let values)? = try? container.decode(JSONValue.self, forKey: .kwargs) else {
                throw fieldError(.kwargs, "a JSON object", in: container)
            }
            kwargs = values
        }
        return TaskArguments(args: args, kwargs: kwargs)
    }
}
