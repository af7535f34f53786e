import QTasks
import QTasksScheduler
import Testing

struct TypedEntryTests {
    static let cleanup = TaskDefinition(
        "cleanup", parameters: ["folder", "days"], arguments: String.self, Int.self,
        options: TaskOptions(queue: "maintenance"))

    @Test func aTypedEntrySendsTheTaskByNameWithItsArgumentsAndQueue() throws {
        let entry = try ScheduleEntry(Self.cleanup, "tmp", 7, schedule: .every(.seconds(60)))
        #expect(entry.taskName == "cleanup")
        #expect(entry.args == ["tmp", 7])
        #expect(entry.queue == "maintenance")
        // The same entry as the name-based form: the same claims, the same
        // task uuids in every scheduler process.
        let byName = ScheduleEntry(taskName: "cleanup", args: ["tmp", 7], queue: "maintenance", schedule: .every(.seconds(60)))
        #expect(entry == byName)
        #expect(entry.taskUUID(forTick: 42) == byName.taskUUID(forTick: 42))
        #expect(try ScheduleEntry(Self.cleanup, "tmp", 7, queue: "urgent", schedule: .every(.seconds(60))).queue == "urgent")
    }
}
