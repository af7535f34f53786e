import Foundation
import Testing

@testable import QTasks

struct TaskUUIDTests {
    @Test func uuidsAreVersion4InPythonsLowercaseForm() throws {
        for _ in 0..<1000 {
            let text = TaskUUID.make()
            #expect(text.count == 36)
            #expect(text == text.lowercased())
            let characters = Array(text)
            #expect([8, 13, 18, 23].allSatisfy { characters[$0] == "-" })
            #expect(characters[14] == "4", "version nibble of \(text)")
            #expect("89ab".contains(characters[19]), "variant of \(text)")
            let parsed = try #require(UUID(uuidString: text))
            #expect(parsed.uuidString.lowercased() == text)
        }
    }

    @Test func uuidsDoNotRepeat() {
        let uuids = (0..<20_000).map { _ in TaskUUID.make() }
        #expect(Set(uuids).count == uuids.count)
    }
}
