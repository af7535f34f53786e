import Foundation
import QTasks
import Testing

@Suite struct JSONValueTests {
    let sample: JSONValue = [
        "name": "Привет/мир",
        "count": 3,
        "ratio": 2.5,
        "ok": true,
        "nothing": nil,
        "list": [1, "two", [3.0], ["k": "v"]],
    ]

    @Test func roundTripsThroughJSONEncoderAndDecoder() throws {
        let data = try JSONEncoder().encode(sample)
        let decoded = try JSONDecoder().decode(JSONValue.self, from: data)
        #expect(decoded == sample)
    }

    @Test func descriptionIsCompactSortedJSON() throws {
        let value: JSONValue = ["b": [1, 2.5, "x/y", nil, true], "a": "é\"\\\n"]
        #expect(value.description == #"{"a":"é\"\\\n","b":[1,2.5,"x/y",null,true]}"#)
        let reparsed = try JSONDecoder().decode(JSONValue.self, from: Data(value.description.utf8))
        #expect(reparsed == value)
    }

    @Test func descriptionRoundTripsTheSample() throws {
        let reparsed = try JSONDecoder().decode(JSONValue.self, from: Data(sample.description.utf8))
        #expect(reparsed == sample)
        #expect(sample.description.contains("Привет/мир"))
    }

    @Test func controlCharactersAreEscaped() throws {
        let value = JSONValue.string("a\u{1}b\tc")
        #expect(value.description == #""a\u0001b\tc""#)
        #expect(try JSONDecoder().decode(JSONValue.self, from: Data(value.description.utf8)) == value)
    }

    @Test func integersAndDoublesStayDistinct() throws {
        let decoded = try JSONDecoder().decode(JSONValue.self, from: Data("[1, 1.5, 1e3, -7, 9223372036854775808]".utf8))
        #expect(decoded == [.int(1), .double(1.5), .double(1000), .int(-7), .double(9223372036854775808)])
        if case .double(let big)? = decoded[4] { #expect(big == 9223372036854775808) } else { Issue.record("beyond Int64 must be a double") }
        if case .double? = decoded[1] {} else { Issue.record("1.5 must be a double") }
        #expect(JSONValue.int(3) == .double(3.0))
        #expect(Set<JSONValue>([.int(3), .double(3.0)]).count == 1)
        #expect(JSONValue.int(3) != .double(3.5))
        #expect(JSONValue.double(3).description == "3.0")
        #expect(JSONValue.double(.nan).description == "null")
    }

    @Test func booleansDoNotDecodeAsNumbers() throws {
        let decoded = try JSONDecoder().decode(JSONValue.self, from: Data("[true, 0, false, 1]".utf8))
        #expect(decoded == [true, 0, false, 1])
    }

    @Test func accessors() {
        #expect(sample["name"]?.stringValue == "Привет/мир")
        #expect(sample["count"]?.intValue == 3)
        #expect(sample["ratio"]?.doubleValue == 2.5)
        #expect(sample["list"]?[1] == "two")
        #expect(sample["nothing"]?.isNull == true)
        #expect(sample["missing"] == Optional<JSONValue>.none)
        #expect(JSONValue.object([:]).kindName == "object")
    }

    @Test func encodingAnyEncodable() throws {
        struct Point: Encodable { var x: Int; var label: String }
        #expect(try JSONValue(encoding: Point(x: 1, label: "a")) == ["x": 1, "label": "a"])
        #expect(try JSONValue(encoding: 5) == 5)
        #expect(try JSONValue(encoding: [1, 2]) == [1, 2])
        #expect(try JSONValue(encoding: NoResult()) == .null)
        #expect(try JSONValue(encoding: Optional<Int>.none) == .null)
    }
}
