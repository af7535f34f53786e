import QTasks

/// The example worker's tasks, declared once: their names, argument types
/// and result types. A Swift producer sends them with
/// `client.send(Example.add, 2, 3)`; other producers by name
/// (`{"task_name": "add", "args": [2, 3]}`). The parameter names let
/// `kwargs` fill the arguments (`{"kwargs": {"a": 2, "b": 3}}`).
enum Example {
    /// add(a, b): whole sums come back as integers, as Python's 2 + 3 == 5.
    static let add = TaskDefinition("add", parameters: ["a", "b"], arguments: Double.self, Double.self, returning: JSONValue.self)
    /// echo(...): any arguments, returned as received.
    static let echo = TaskDefinition<JSONValue>(acceptingAnyArguments: "echo", returning: JSONValue.self)
    /// sleep(seconds): waits, cooperatively; returns the seconds slept.
    static let sleep = TaskDefinition("sleep", parameters: ["seconds"], arguments: Double.self, returning: Double.self)
    /// long_sleep(seconds): as sleep, for tasks longer than the broker's
    /// consumer_timeout: acknowledged when it starts (at most once).
    static let longSleep = TaskDefinition(
        "long_sleep", parameters: ["seconds"], arguments: Double.self, returning: Double.self,
        options: TaskOptions(acknowledgement: .onStart))
    /// fail(message?): always throws.
    static let fail = TaskDefinition("fail", parameters: ["message"], arguments: String?.self, returning: JSONValue.self)
    /// word_count(text, top?): word statistics of a text.
    static let wordCount = TaskDefinition("word_count", parameters: ["text", "top"], arguments: String.self, Int?.self, returning: WordCount.self)
    /// mask_card(number): a card number masked but for its last four
    /// digits (`**** **** **** 1234`). Its arguments are secret: a worker
    /// that records task events leaves them out (`{"omitted": true}`).
    static let maskCard = TaskDefinition(
        "mask_card", parameters: ["number"], arguments: String.self, returning: String.self,
        options: TaskOptions(recordsArguments: false))
    /// test_depends(): the seed's Depends example.
    static let testDepends = TaskDefinition("test_depends")

    /// always_fail(message?): throws every time, printing its attempt.
    static let alwaysFail = TaskDefinition("always_fail", parameters: ["message"], arguments: String?.self, returning: JSONValue.self)
    /// limited_sleep(seconds): sleeps under its own time limit of 1 s.
    static let limitedSleep = TaskDefinition(
        "limited_sleep", parameters: ["seconds"], arguments: Double.self, returning: Double.self,
        options: TaskOptions(timeLimit: .seconds(1)))
    /// give_up(reason?): cancels itself.
    static let giveUp = TaskDefinition("give_up", parameters: ["reason"], arguments: String?.self, returning: JSONValue.self)
    /// crash(): a test task that aborts the worker process.
    static let crash = TaskDefinition("crash", returning: JSONValue.self)

    /// work(ms?): sleeps, returns where it ran (`{"pid", "queue"}`).
    static let work = TaskDefinition("work", parameters: ["ms"], arguments: Int?.self, returning: JSONValue.self)

    /// step1(user?), step2(user?): the seed's State example.
    static let step1 = TaskDefinition("step1", parameters: ["user"], arguments: JSONValue?.self, returning: String.self)
    static let step2 = TaskDefinition("step2", parameters: ["user"], arguments: JSONValue?.self, returning: String.self)

    /// The registration form as a workflow (docs/workflows.md): each step
    /// returns the user, which the chain hands to the next step; State
    /// carries the form between them.
    static let registerAsk = TaskDefinition("register_ask", parameters: ["user"], arguments: String.self, returning: String.self)
    static let registerPhone = TaskDefinition(
        "register_phone", parameters: ["user", "phone"], arguments: String.self, String.self, returning: String.self)
    static let registerConfirm = TaskDefinition("register_confirm", parameters: ["user"], arguments: String.self, returning: JSONValue.self)

    /// `register_ask(user) | register_phone(phone) | register_confirm()`:
    /// step 1 asks for the phone, step 2 takes it once it arrived, step 3
    /// confirms and clears the form.
    static func registration(user: String, phone: String) throws -> Workflow<JSONValue> {
        try Workflow.task(registerAsk, user).then(registerPhone, phone).then(registerConfirm)
    }
}
