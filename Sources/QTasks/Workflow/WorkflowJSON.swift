import Foundation

/// How the durable workflow stores write their values (records, joins,
/// outcomes, step results): compact JSON with sorted keys and Unix-second
/// dates, so every backend stores the same text for the same value.
public enum WorkflowJSON {
    /// The JSON text of `value`.
    ///
    /// - Throws: `EncodingError`.
    public static func text(of value: some Encodable) throws -> String {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.withoutEscapingSlashes, .sortedKeys]
        encoder.dateEncodingStrategy = .secondsSince1970
        return String(decoding: try encoder.encode(value), as: UTF8.self)
    }

    /// `text` decoded as `type`.
    ///
    /// - Throws: ``ResultStoreError`` `.corrupt`, naming `what` (a key, or
    ///   an entry and the file it is in).
    public static func decode<T: Decodable>(_ type: T.Type, _ text: String, what: String) throws -> T {
        let decoder = JSONDecoder()
        decoder.dateDecodingStrategy = .secondsSince1970
        do {
            return try decoder.decode(T.self, from: Data(text.utf8))
        } catch {
            throw ResultStoreError(.corrupt, "\(what) does not decode: \(error)")
        }
    }
}
