/// Turns a `DecodingError` into one readable line.
enum DecodingErrorText {
    /// - Parameter droppingPathPrefix: leading coding-path components the
    ///   caller already named (for example `args`, `[1]`).
    static func describe(_ error: any Error, droppingPathPrefix: Int = 0) -> String {
        guard let error = error as? DecodingError else { return plain(String(describing: error)) }
        switch error {
        case .typeMismatch(let type, let context):
            return located(context, droppingPathPrefix, "expected \(typeName(type)): \(context.debugDescription)")
        case .valueNotFound(let type, let context):
            return located(context, droppingPathPrefix, "expected \(typeName(type)), found null")
        case .keyNotFound(let key, let context):
            return located(context, droppingPathPrefix, "missing key '\(key.stringValue)'")
        case .dataCorrupted(let context):
            return located(context, droppingPathPrefix, plain(context.debugDescription))
        @unknown default:
            return plain(String(describing: error))
        }
    }

    /// What a field holds, for "must be X, found Y": its JSON kind, or, when
    /// it does not even read as JSON values (a number out of range, a lone
    /// UTF-16 surrogate in a string), what is wrong with it.
    static func kind<Key: CodingKey>(of key: Key, in container: KeyedDecodingContainer<Key>) -> String {
        do {
            return try container.decode(JSONValue.self, forKey: key).kindName
        } catch {
            return "a value that cannot be read (\(describe(error, droppingPathPrefix: Int.max)))"
        }
    }

    /// Foundation's words for JSON it cannot represent, in plain words:
    /// `numberIsNotRepresentableInSwift(parsed: "1e400")` becomes
    /// `the number 1e400 is out of range`.
    static func plain(_ text: String) -> String {
        if let range = text.range(of: #"numberIsNotRepresentableInSwift\(parsed: "([^"]*)"\)"#, options: .regularExpression) {
            let number = text[range].split(separator: "\"").dropFirst().first.map(String.init) ?? "?"
            return "the number \(number) is out of range"
        }
        if text.contains("LowSurrogate") || text.contains("HighSurrogate") || text.contains("Surrogate") {
            let column = text.range(of: #"column: \d+"#, options: .regularExpression).map { " (\(text[$0]))" } ?? ""
            return "a string holds half of a UTF-16 surrogate pair, which is not text\(column)"
        }
        return text
    }

    /// `Int`, `String?`, `[Int]` rather than `Optional<String>` and `Array<Int>`.
    static func typeName(_ type: Any.Type) -> String {
        var name = String(describing: type)
        if name.hasPrefix("Optional<"), name.hasSuffix(">") {
            name = String(name.dropFirst("Optional<".count).dropLast()) + "?"
        } else if name.hasPrefix("Array<"), name.hasSuffix(">") {
            name = "[" + String(name.dropFirst("Array<".count).dropLast()) + "]"
        }
        return name
    }

    private static func located(_ context: DecodingError.Context, _ dropping: Int, _ text: String) -> String {
        let path = context.codingPath.dropFirst(dropping)
        guard !path.isEmpty else { return text }
        let rendered = path.map { key in key.intValue.map { "[\($0)]" } ?? ".\(key.stringValue)" }.joined()
        return "at \(rendered): \(text)"
    }
}
