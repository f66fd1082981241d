import Testing

@testable import DealModel

struct JSONParserTests {
    @Test func integersStayApartFromFloats() throws {
        #expect(try JSONParser.parse(Array("5".utf8)) == .int(5))
        guard case .double(let d) = try JSONParser.parse(Array("5.0".utf8)) else {
            Issue.record("5.0 must parse as a float literal")
            return
        }
        #expect(d == 5)
        guard case .bigInt(let digits, _) = try JSONParser.parse(Array("9223372036854775808".utf8)) else {
            Issue.record("2^63 must not fit Int64")
            return
        }
        #expect(digits == "9223372036854775808")
        #expect(try JSONParser.parse(Array("-9223372036854775808".utf8)) == .int(.min))
    }

    @Test func booleansAreNotNumbers() throws {
        let v = try JSONParser.parse(Array("true".utf8))
        #expect(v == .bool(true))
        #expect(v.numberValue == nil)
    }

    @Test(arguments: [
        "NaN", "Infinity", "-Infinity", "{\"a\":1,}", "[1,]", "01", "1.", ".5", "\"\\x\"", "{\"a\" 1}",
        "\"abc", "{\"a\":1} x", "", "[", "tru", "\"\u{01}\"", "\"\\ud800\"", "\"\\udc00x\"", "-", "1e",
    ])
    func rejectsWhatIsNotJSON(_ text: String) {
        #expect(throws: JSONParseError.self) { try JSONParser.parse(Array(text.utf8)) }
    }

    @Test func rejectsInvalidUTF8InStrings() {
        #expect(throws: JSONParseError.self) { try JSONParser.parse([0x22, 0xFF, 0xFE, 0x22]) }
        #expect(throws: JSONParseError.self) { try JSONParser.parse([0x22, 0xC3, 0x28, 0x22]) }
    }

    @Test func limitsNesting() throws {
        let deep = String(repeating: "[", count: 100) + String(repeating: "]", count: 100)
        #expect(throws: JSONParseError.self) { try JSONParser.parse(Array(deep.utf8)) }
        let fine = String(repeating: "[", count: 10) + String(repeating: "]", count: 10)
        _ = try JSONParser.parse(Array(fine.utf8))
    }

    @Test func decodesEscapesAndSurrogatePairs() throws {
        let v = try JSONParser.parse(Array(#""a\"b\\c\/\n\u00fc\ud83d\ude00""#.utf8))
        #expect(v == .string("a\"b\\c/\nü😀"))
    }

    @Test func refusesARepeatedKeyNamingIt() throws {
        #expect(throws: JSONParseError(offset: 7, reason: #"duplicate key "a""#)) {
            try JSONParser.parse(Array(#"{"a":1,"a":2}"#.utf8))
        }
        // Also nested, and for keys that differ only in their escapes.
        #expect(throws: JSONParseError(offset: 22, reason: #"duplicate key "amount""#)) {
            try JSONParser.parse(Array(#"{"deal":{"amount":100,"amount":5e6}}"#.utf8))
        }
        // Past 16 members too (where a set of keys takes over), and not before it repeats.
        let many = (0..<40).map { "\"k\($0)\":\($0)" }.joined(separator: ",")
        #expect(try JSONParser.parse(Array("{\(many)}".utf8))["k39"] == .int(39))
        #expect(throws: JSONParseError.self) { try JSONParser.parse(Array("{\(many),\"k3\":0}".utf8)) }
        #expect(throws: JSONParseError.self) { try JSONParser.parse(Array("{\(many),\"k20\":0}".utf8)) }
        // The same key in sibling objects is no repetition.
        #expect(
            try JSONParser.parse(Array(#"[{"a":1},{"a":2}]"#.utf8))
                == .array([.object([("a", .int(1))]), .object([("a", .int(2))])])
        )
    }

    @Test func digestIgnoresKeyOrderWhitespaceAndNumberSpelling() throws {
        let a = try JSONParser.parse(Array(#"{"b": [1, 2.0], "a": {"y": 1e2, "x": "é"}}"#.utf8))
        let b = try JSONParser.parse(Array(#"{"a":{"x":"\u00e9","y":100},"b":[1.0,2]}"#.utf8))
        #expect(a == b)
        #expect(a.digest() == b.digest())
        let c = try JSONParser.parse(Array(#"{"a":{"x":"é","y":100},"b":[1,3]}"#.utf8))
        #expect(a.digest() != c.digest())
        // members moved between objects, or swapped between keys, must not collide
        let d = try JSONParser.parse(Array(#"{"a":{"x":"é"},"b":[1,2],"y":100}"#.utf8))
        #expect(a.digest() != d.digest())
        let e = try JSONParser.parse(Array(#"{"a":1,"b":2}"#.utf8))
        let f = try JSONParser.parse(Array(#"{"a":2,"b":1}"#.utf8))
        #expect(e.digest() != f.digest())
        #expect(try JSONParser.parse(Array("[1,2]".utf8)).digest() != JSONParser.parse(Array("[2,1]".utf8)).digest())
    }
}

struct StableHashTests {
    @Test func isStableAcrossRunsAndInputForms() {
        // A fixed value: shard ownership and duplicate detection depend on it never changing.
        let bytes = Array("revenue/team/EMEA".utf8)
        #expect(StableHash.hash64(bytes) == StableHash.hash64("revenue/team/EMEA"))
        #expect(StableHash.hash64(bytes[...]) == StableHash.hash64(bytes))
        #expect(StableHash.hash64("a") != StableHash.hash64("b"))
        #expect(StableHash.hash64("") != StableHash.hash64("\u{0}"))
    }

    @Test func writingAValueAndParsingItBackGivesTheSameValue() throws {
        let text = #"{"a":[1,-2.5,"x\"y\n",true,false,null],"b":{"c":12345678901234567890123,"d":0.1},"":""}"#
        let value = try JSONParser.parse(Array(text.utf8))
        var out: [UInt8] = []
        JSONWriter.append(value, to: &out)
        #expect(try JSONParser.parse(out) == value)
        #expect(
            String(decoding: out, as: UTF8.self).hasPrefix(
                #"{"a":[1,-2.5,"x\"y\n",true,false,null],"b":{"c":12345678901234567890123,"#
            )
        )
    }
}
