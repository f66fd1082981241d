import DealModel
import Testing

/// `JSONSyntax.isObject` (the daemon's check of every payload a worker reports) agrees
/// with the full parser: what the parser reads as an object passes, anything it refuses
/// (other than a repeated key, which only the parser checks) does not.
struct JSONSyntaxTests {
    static let valid = [
        #"{"metric":"revenue","dimension":"owner","key":"Ann \u00e9","period":"2024-Q1","value":12.5,"count":3}"#,
        #"{"value":null,"numerator":0,"denominator":-1.25e-3,"flags":[true,false,{"x":[]}],"k":"é€😀"}"#,
        #"  { }  "#, #"{"a":{"b":{"c":[1,2,[3]]}}}"#, #"{"s":"\"\\\/\b\f\n\r\t"}"#,
    ]
    static let invalid = [
        "", "[]", "1", #""x""#, "{", "}", #"{"a":}"#, #"{"a" 1}"#, #"{"a":1,}"#, #"{,"a":1}"#, #"{'a':1}"#,
        #"{"a":01}"#, #"{"a":1.}"#, #"{"a":.5}"#, #"{"a":1e}"#, #"{"a":tru}"#, #"{"a":"\x"}"#, #"{"a":"\u12"}"#,
        "{\"a\":\"tab\there\"}", #"{"a":1}{"#, #"{"a":1} x"#, #"{"a":NaN}"#, #"{"a":[1,]}"#,
    ]

    @Test func knownObjectsPassAndKnownNonObjectsFail() {
        for text in Self.valid { #expect(JSONSyntax.isObject(Array(text.utf8)), "\(text)") }
        for text in Self.invalid { #expect(!JSONSyntax.isObject(Array(text.utf8)), "\(text)") }
        #expect(!JSONSyntax.isObject([0x7B, 0x22, 0x61, 0x22, 0x3A, 0x22, 0xC3, 0x22, 0x7D]), "bad UTF-8")
        #expect(!JSONSyntax.isObject([0x7B, 0x22, 0xED, 0xA0, 0x80, 0x22, 0x3A, 0x31, 0x7D]), "a surrogate")
        let deep = String(repeating: #"{"a":"#, count: 40) + "1" + String(repeating: "}", count: 40)
        #expect(!JSONSyntax.isObject(Array(deep.utf8)), "deeper than the limit")
    }

    /// Every truncation and thousands of byte mutations of real payloads: the two agree.
    @Test func agreesWithTheParserOnMutations() {
        var generator = SystemRandomNumberGenerator()
        var compared = 0
        for text in Self.valid {
            let bytes = Array(text.utf8)
            for n in 0..<bytes.count {
                let cut = Array(bytes.prefix(n))
                #expect(JSONSyntax.isObject(cut) == Self.parsesAsObject(cut), "\(String(decoding: cut, as: UTF8.self))")
            }
            for _ in 0..<2000 {
                var mutated = bytes
                let at = Int.random(in: 0..<mutated.count, using: &generator)
                mutated[at] = Array("{}[]\",:0123456789.eE+-tfnul\\ \u{1}xé".utf8).randomElement(using: &generator)!
                guard let expected = Self.parsesAsObjectUnlessRepeatedKey(mutated) else { continue }
                #expect(JSONSyntax.isObject(mutated) == expected, "\(String(decoding: mutated, as: UTF8.self))")
                compared += 1
            }
        }
        #expect(compared > 5000)
    }

    static func parsesAsObject(_ bytes: [UInt8]) -> Bool {
        guard case .object? = try? JSONParser.parse(bytes) else { return false }
        return true
    }

    /// The parser's verdict, or nil when it refused a repeated key (JSONSyntax does not check those).
    static func parsesAsObjectUnlessRepeatedKey(_ bytes: [UInt8]) -> Bool? {
        do {
            guard case .object = try JSONParser.parse(bytes) else { return false }
            return true
        } catch {
            return error.reason.contains("repeated") || error.reason.contains("duplicate") ? nil : false
        }
    }
}
