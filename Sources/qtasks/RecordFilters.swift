import ArgumentParser
import Foundation
import QTasks

/// The words `qtasks tasks --status` and `--since` take.
enum RecordFilters {
    /// A status by its QTasks word (`new`, `process`, `success`, `error`,
    /// `cancel`, `retry`) or by the word of its event (`sent`, `received`,
    /// `started`, `running`, `succeeded`, `failed`, `dead_lettered`,
    /// `cancelled`, `retried`, and `pending`, `finished`, `done`).
    static func statuses(_ word: String) -> Set<TaskStatus>? {
        switch word.lowercased() {
        case "new", "sent", "received", "pending", "queued", "requeued": [.new]
        case "process", "started", "running": [.process]
        case "success", "succeeded", "ok": [.success]
        case "error", "failed", "failure", "dead_lettered", "dead-lettered": [.error]
        case "cancel", "cancelled", "canceled": [.cancel]
        case "retry", "retried", "retrying": [.retry]
        case "finished", "done", "ended": [.success, .error, .cancel]
        case "unfinished", "active": [.new, .process, .retry]
        default: nil
        }
    }

    static let statusWords =
        "new|sent|pending, process|started|running, success|succeeded, error|failed, cancel|cancelled, retry|retried, finished, unfinished"

    /// Every status the `--status` values name (each may be a
    /// comma-separated list); nil when none is given.
    ///
    /// - Throws: `ValidationError` naming an unknown word.
    static func statuses(in values: [String]) throws -> Set<TaskStatus>? {
        let words = values.flatMap { $0.split(separator: ",") }.map { $0.trimmingCharacters(in: .whitespaces) }
        guard !words.isEmpty else { return nil }
        var result: Set<TaskStatus> = []
        for word in words {
            guard let statuses = statuses(word) else {
                throw ValidationError("unknown --status '\(word)'; use \(statusWords)")
            }
            result.formUnion(statuses)
        }
        return result
    }

    /// A length of time as `90`, `90s`, `30m`, `1h`, `2d`, `1h30m`, `1.5h`.
    ///
    /// - Throws: `ValidationError` for anything else, or zero.
    static func age(_ text: String) throws -> Duration {
        let units: [Character: Double] = ["s": 1, "m": 60, "h": 3600, "d": 86_400, "w": 604_800]
        var seconds = 0.0
        var number = ""
        var sawUnit = false
        for character in text.lowercased() {
            if character.isNumber || character == "." {
                number.append(character)
            } else if let unit = units[character], let value = Double(number) {
                seconds += value * unit
                number = ""
                sawUnit = true
            } else {
                throw ValidationError("--since must be like 90s, 30m, 1h, 2d or 1h30m, not '\(text)'")
            }
        }
        if !number.isEmpty {
            guard !sawUnit, let value = Double(number) else {
                throw ValidationError("--since must be like 90s, 30m, 1h, 2d or 1h30m, not '\(text)'")
            }
            seconds += value
        }
        guard seconds > 0, seconds.isFinite, seconds <= 366 * 86_400 * 10 else {
            throw ValidationError("--since must be more than 0 and at most 10 years, not '\(text)'")
        }
        return Seconds.duration(seconds)
    }
}
