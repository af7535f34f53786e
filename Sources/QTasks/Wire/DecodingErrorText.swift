/// Turns a `DecodingError` into one readable line.
enum DecodingErrorText {
    /// - Parameter droppingPathPrefix: leading coding-path components the
    ///   caller already named (for example `args`, `[1]`).
    static func describe(_ error: any Error, droppingPathPrefix: Int = 0) -> String {
        guard let error = error as? DecodingError else { return String(describing: error) }
        switch error {
        case .typeMismatch(let type, let context):
            return located(context, droppingPathPrefix, "expected \(typeName(type)): \(context.debugDescription)")
        case .valueNotFound(let type, let context):
            return located(context, droppingPathPrefix, "expected \(typeName(type)), found null")
        case .keyNotFound(let key, let context):
            return located(context, droppingPathPrefix, "missing key '\(key.stringValue)'")
        case .dataCorrupted(let context):
            return located(context, droppingPathPrefix, context.debugDescription)
        @unknown default:
            return String(describing: error)
        }
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
