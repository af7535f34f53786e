import Foundation
import QTasks

/// The JSON text of the `record` and `heartbeat` columns: the `Codable`
/// forms of ``TaskRecord`` and ``WorkerHeartbeat`` (snake_case keys, times
/// in Unix seconds). Records through QTasks' `TaskRecordJSON`, the package's
/// one hand-written form of records (what the Redis store keeps too; a time
/// read back is within a microsecond of the one written); heartbeats, one
/// per worker every few seconds, through `JSONEncoder` (slashes not
/// escaped).
///
/// Non-finite numbers in a heartbeat, which JSON has no spelling for, are
/// written as the strings `"NaN"`, `"Infinity"` and `"-Infinity"` and read
/// back as numbers (in a record's result or arguments they are `null`).
enum RecordCoding {
    static func makeEncoder() -> JSONEncoder {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.withoutEscapingSlashes]
        encoder.nonConformingFloatEncodingStrategy = .convertToString(
            positiveInfinity: "Infinity", negativeInfinity: "-Infinity", nan: "NaN")
        return encoder
    }

    static func makeDecoder() -> JSONDecoder {
        let decoder = JSONDecoder()
        decoder.nonConformingFloatDecodingStrategy = .convertFromString(
            positiveInfinity: "Infinity", negativeInfinity: "-Infinity", nan: "NaN")
        return decoder
    }

    /// The JSON text of a record.
    static func text(of record: TaskRecord) -> String {
        TaskRecordJSON.encode(record)
    }

    /// The JSON text of a heartbeat.
    static func text(of heartbeat: WorkerHeartbeat) throws -> String {
        String(decoding: try makeEncoder().encode(heartbeat), as: UTF8.self)
    }

    /// A stored record.
    ///
    /// - Throws: ``ResultStoreError`` `.corrupt` naming the task and the file.
    static func decodeRecord(_ data: Data, uuid: String, path: String) throws -> TaskRecord {
        do {
            return try TaskRecordJSON.decode(data)
        } catch {
            throw ResultStoreError(
                .corrupt, "the record of task \(uuid) in SQLite file \(path) is not a task record's JSON: \(error)")
        }
    }

    /// A stored heartbeat.
    ///
    /// - Throws: ``ResultStoreError`` `.corrupt` naming the worker and the file.
    static func decodeHeartbeat(_ data: Data, workerID: String, path: String) throws -> WorkerHeartbeat {
        do {
            return try makeDecoder().decode(WorkerHeartbeat.self, from: data)
        } catch {
            throw ResultStoreError(
                .corrupt, "the heartbeat of worker \(workerID) in SQLite file \(path) is not a heartbeat's JSON: \(error)")
        }
    }
}
