/// The arithmetic of a group's join, with no I/O: what the stores apply
/// inside their transaction (SQLite), lock (memory) or script (Redis: the
/// same rules in Lua), so that every backend counts alike.
///
/// A member counts once, when it first ends; `started - settled` members
/// are in flight, at most `window`; the member whose end settles the last
/// one completes the join, once (under fail fast only when none failed).
public enum JoinLedger {
    public struct Counters: Sendable, Hashable, Codable {
        public var total: Int
        public var window: Int
        /// Members published so far (indexes below it).
        public var started: Int
        /// Members that ended.
        public var settled: Int
        /// Members whose latest end is a failure.
        public var failed: Int
        /// Failed fast: start nothing more, never complete (until a replayed
        /// member succeeds and no failure is left).
        public var halted: Bool
        public var completed: Bool
        public var failFast: Bool

        public init(total: Int, window: Int, started: Int, settled: Int, failed: Int, halted: Bool, completed: Bool, failFast: Bool) {
            self.total = total
            self.window = window
            self.started = started
            self.settled = settled
            self.failed = failed
            self.halted = halted
            self.completed = completed
            self.failFast = failFast
        }
    }

    /// What one member's end led to, kept with the member so that
    /// recording the same end again gives the same answer.
    public struct Answer: Sendable, Hashable, Codable {
        public var start: [Int] = []
        public var completes = false
        public var failedWorkflow = false

        public init(start: [Int] = [], completes: Bool = false, failedWorkflow: Bool = false) {
            self.start = start
            self.completes = completes
            self.failedWorkflow = failedWorkflow
        }
    }

    /// A new join's counters and the members to start at once.
    public static func open(total: Int, window: Int?, policy: WorkflowPolicy) -> (Counters, [Int]) {
        let first = min(total, max(1, window ?? total))
        let counters = Counters(
            total: total, window: max(1, window ?? total), started: first, settled: 0, failed: 0, halted: false,
            completed: total == 0, failFast: policy == .failFast)
        return (counters, Array(0..<first))
    }

    /// Applies a member's end.
    ///
    /// - Parameters:
    ///   - previous: the member's recorded outcome, nil when it had none.
    ///   - previousAnswer: what recording that outcome answered.
    /// - Returns: the answer, and whether it is a repeat of an earlier one
    ///   (the member had ended before, and this end changes nothing).
    public static func settle(
        _ counters: inout Counters, previous: WorkflowMemberResult<JSONValue>?, previousAnswer: Answer?,
        succeeded: Bool
    ) -> (answer: Answer, isRepeat: Bool) {
        if let previous, let previousAnswer {
            // Only a failure that now succeeds (a replayed dead letter)
            // changes anything; any other second end is a duplicate.
            guard !previous.succeeded, succeeded else { return (previousAnswer, true) }
            counters.failed -= 1
        } else {
            counters.settled += 1
            if !succeeded { counters.failed += 1 }
        }
        var answer = Answer()
        if counters.failFast, counters.failed > 0, !counters.halted, !counters.completed {
            counters.halted = true
            answer.failedWorkflow = true
        }
        if counters.halted, counters.failed == 0 {
            // Resumed: the replayed member succeeded and no failure is left.
            counters.halted = false
        }
        guard !counters.halted else { return (answer, false) }
        while counters.started < counters.total, counters.started - counters.settled < counters.window {
            answer.start.append(counters.started)
            counters.started += 1
        }
        if counters.settled == counters.total, !counters.completed, !(counters.failFast && counters.failed > 0) {
            counters.completed = true
            answer.completes = true
        }
        return (answer, false)
    }
}
