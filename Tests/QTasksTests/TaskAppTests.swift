import Foundation
import QTasks
import Testing

struct Point: Codable, Sendable, Equatable {
    var x: Int
    var y: Int
}

@Suite struct TaskAppTests {
    let app: TaskApp

    init() throws {
        app = TaskApp(name: "test")
        try app.register("add", parameters: ["a", "b"]) { (a: Int, b: Int) in a + b }
        try app.register("add_positional") { (a: Int, b: Int) in a + b }
        try app.register("maybe", parameters: ["a", "b"]) { (a: Int, b: String?) in "\(a)-\(b ?? "none")" }
        try app.register("norm", parameters: ["point"]) { (point: Point) in point.x * point.x + point.y * point.y }
        try app.register("slow_double") { (a: Int) async throws -> Int in
            try await Task.sleep(for: .milliseconds(5))
            return a * 2
        }
        try app.register("nothing") { (_: Int) in }
        try app.register("no_args") { "pong" }
    }

    func returning(_ body: String) async throws -> JSONValue? {
        let outcome = await execute(app, body)
        guard case .completed(let result) = outcome else {
            Issue.record("expected success, got \(outcome.result.traceback ?? "?")")
            return nil
        }
        #expect(result.status == .success)
        #expect(result.traceback == nil)
        return result.returning
    }

    func traceback(_ body: String) async -> String? {
        let outcome = await execute(app, body)
        #expect(outcome.isRejected)
        #expect(outcome.result.status == .error)
        #expect(outcome.result.returning == nil)
        return outcome.result.traceback
    }

    @Test func duplicateNameIsRefused() throws {
        let error = #expect(throws: TaskRegistrationError.self) {
            try app.register("add") { (a: Int) in a }
        }
        #expect(error?.code == .duplicateTask)
        #expect(error?.message == "task 'add' is already registered")
    }

    @Test func parameterNamesMustMatchTheHandler() throws {
        let error = #expect(throws: TaskRegistrationError.self) {
            try app.register("bad", parameters: ["a"]) { (a: Int, b: Int) in a + b }
        }
        #expect(error?.code == .invalidParameters)
        #expect(throws: TaskRegistrationError.self) {
            try app.register("bad2", parameters: ["a", "a"]) { (a: Int, b: Int) in a + b }
        }
        #expect(app.taskNames.contains("add"))
        #expect(!app.taskNames.contains("bad"))
    }

    @Test func positionalArguments() async throws {
        #expect(try await returning(#"{"task_name":"add","args":[2,3]}"#) == 5)
        #expect(try await returning(#"{"task_name":"add_positional","args":[2,3]}"#) == 5)
    }

    @Test func keywordArguments() async throws {
        #expect(try await returning(#"{"task_name":"add","kwargs":{"a":2,"b":3}}"#) == 5)
        #expect(try await returning(#"{"task_name":"add","args":[2],"kwargs":{"b":3}}"#) == 5)
    }

    @Test func optionalParameterMayBeOmitted() async throws {
        #expect(try await returning(#"{"task_name":"maybe","args":[1]}"#) == "1-none")
        #expect(try await returning(#"{"task_name":"maybe","args":[1,null]}"#) == "1-none")
        #expect(try await returning(#"{"task_name":"maybe","args":[1],"kwargs":{"b":"x"}}"#) == "1-x")
    }

    @Test func structuredArgument() async throws {
        #expect(try await returning(#"{"task_name":"norm","args":[{"x":3,"y":4}]}"#) == 25)
    }

    @Test func asyncHandler() async throws {
        #expect(try await returning(#"{"task_name":"slow_double","args":[21]}"#) == 42)
    }

    @Test func voidHandlerReturnsNull() async throws {
        let outcome = await execute(app, #"{"task_name":"nothing","args":[1]}"#)
        #expect(outcome.isCompleted)
        #expect(outcome.result.returning == nil)
        let object = try jsonObject(outcome.result.jsonBytes())
        #expect(object["returning"] is NSNull)
    }

    @Test func handlerWithoutParameters() async throws {
        #expect(try await returning(#"{"task_name":"no_args"}"#) == "pong")
        #expect(await traceback(#"{"task_name":"no_args","args":[1]}"#) == "TaskInputError: no_args() takes 0 arguments but 1 was given")
    }

    @Test func tooManyArguments() async {
        #expect(await traceback(#"{"task_name":"add","args":[1,2,3]}"#) == "TaskInputError: add() takes 2 arguments but 3 were given")
    }

    @Test func missingArgument() async {
        #expect(await traceback(#"{"task_name":"add","args":[1]}"#) == "TaskInputError: add() missing argument 'b' (position 2) of type Int")
        #expect(await traceback(#"{"task_name":"add_positional","args":[1]}"#) == "TaskInputError: add_positional() missing argument at position 2 of type Int")
    }

    @Test func unexpectedKeywordArgument() async {
        #expect(await traceback(#"{"task_name":"add","args":[1,2],"kwargs":{"c":3}}"#) == "TaskInputError: add() got an unexpected keyword argument 'c'")
        #expect(await traceback(#"{"task_name":"add_positional","kwargs":{"a":1,"b":2}}"#) == "TaskInputError: add_positional() got an unexpected keyword argument 'a'")
    }

    @Test func argumentGivenTwice() async {
        #expect(await traceback(#"{"task_name":"add","args":[1],"kwargs":{"a":2}}"#) == "TaskInputError: add() got multiple values for argument 'a'")
    }

    @Test func wrongArgumentType() async {
        #expect(await traceback(#"{"task_name":"add","args":[1,"x"]}"#) == #"TaskInputError: add() argument 2 ('b'): expected Int, found string "x""#)
        #expect(await traceback(#"{"task_name":"add","kwargs":{"a":1.5,"b":2}}"#) == "TaskInputError: add() argument 1 ('a'): expected Int, found number 1.5")
        #expect(await traceback(#"{"task_name":"add","args":[null,2]}"#) == "TaskInputError: add() argument 1 ('a'): expected Int, found null")
        #expect(await traceback(#"{"task_name":"add_positional","args":[[1],2]}"#) == "TaskInputError: add_positional() argument 1: expected Int, found array")
    }

    @Test func wrongNestedArgument() async throws {
        let text = try #require(await traceback(#"{"task_name":"norm","args":[{"x":3}]}"#))
        #expect(text == "TaskInputError: norm() argument 1 ('point'): missing key 'y'")
        let nested = try #require(await traceback(#"{"task_name":"norm","args":[{"x":3,"y":"4"}]}"#))
        #expect(nested.hasPrefix("TaskInputError: norm() argument 1 ('point'): at .y: expected Int"), "\(nested)")
    }

    @Test func argumentsOfTheWrongShape() async {
        #expect(await traceback(#"{"task_name":"add","args":{"a":1}}"#) == "TaskInputError: args must be a JSON array, found object")
        #expect(await traceback(#"{"task_name":"add","kwargs":[1]}"#) == "TaskInputError: kwargs must be a JSON object, found array")
    }

    @Test func unknownTask() async {
        let outcome = await execute(app, #"{"uuid":"u-9","task_name":"nope"}"#)
        #expect(outcome.isRejected)
        #expect(outcome.result.traceback == "TaskInputError: unknown task 'nope'")
        #expect(outcome.result.uuid == "u-9")
        #expect(outcome.result.taskName == "nope")
    }

    @Test func registeredAfterTheExecutorIsNotSeen() async throws {
        let app = TaskApp()
        let executor = TaskRunner(app: app, logger: quietLogger)
        try app.register("late") { 1 }
        let outcome = await executor.execute(makeDelivery(#"{"task_name":"late"}"#))
        #expect(outcome.isRejected)
    }
}
