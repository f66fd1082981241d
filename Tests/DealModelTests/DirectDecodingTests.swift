import DealstreamTestSupport
import Foundation
import Testing

@testable import DealModel

/// The one-pass fast path (`EventDecoder.decodeDirect(json:)`) against the reference path
/// (`decodeThroughValue`, a `JSONValue` tree): whatever the fast path accepts, the reference
/// accepts as the same `Event` (digest included); what it does not accept, `decode(json:)`
/// leaves to the reference, so `decode(json:)` always equals the reference, rejections
/// (field and reason) included.
struct DirectDecodingTests {
    let decoder = EventDecoder(model: harnessModel)

    /// Events of unusual but valid shapes the fast path must get exactly right.
    static let valid: [String] = [
        deal("d1", v: 3, amount: 12000.5, created: "2026-11-02T09:00:00Z"),
        deal(
            "d2",
            status: "won",
            amount: 14285.714285714286,
            created: "2026-01-01T00:00:00Z",
            closed: "2026-02-01T00:00:00.5+01:00"
        ),
        #"{"kind":"deal","source":"hubspot-eu","id":"9041","version":1732790100000,"occurred_at":"2026-11-28T10:15:00Z","deal":{"pipeline":"default","stage":"proposal","status":"open","amount":12000.5,"currency":"EUR","owner":"rep-17","team":"EMEA","lead_source":"webinar","account":"acme","created_at":"2026-11-02T09:00:00Z","closed_at":null}}"#,
        #" {"deal" : {"closed_at":null,"created_at":"2026-11-02t09:00:00z","account":null,"lead_source":"","team":null,"owner":"","currency":"USD","amount":0,"status":"open","stage":"lead","pipeline":"default"} ,"version":0,"id":"x","source":"s","kind":"deal"}  "#,
        #"{"kind":"deal","source":"s\u00e9","id":"caf\u00e9 \"q\" \\ \/ \b\f\n\r\t \ud83d\ude00","version":-0,"deal":{"pipeline":"Enterprise Sales","stage":"demo\/trial","status":"lost","amount":1e3,"currency":"EUR","owner":"Zoë","team":"Ünit","created_at":"2026-03-01T00:00:00Z","closed_at":"2026-03-01T00:00:00Z"}}"#,
        #"{"kind":"deal","source":"s","id":"i","version":9223372036854775807,"extra":true,"n":null,"f":-1.5E-7,"big":9007199254740993,"deal":{"pipeline":"renewals","stage":"quote","status":"open","amount":0.000123,"currency":"USD","created_at":"2026-03-01T00:00:00Z","note":"hi","k":false}}"#,
        #"{"kind":"deal_deleted","source":"crm","id":"d1","version":5,"deal":{"whatever":1},"spend":7,"account":null}"#,
        #"{"kind":"deal_deleted","source":"crm","id":"d1","version":5,"occurred_at":null,"tags":[1]}"#,
        spend("s1", v: 2, amount: 5000, date: "2026-11-30"),
        #"{"kind":"spend","source":"m","id":"s","version":1,"spend":{"amount":-0.0,"currency":"EUR","date":"2026-02-28","lead_source":null,"z":"\u0000"}}"#,
        account("a1", v: 7, status: "churned", at: "2026-12-03T08:00:00Z"),
        #"{"kind":"account","source":"crm","id":"a","version":1,"account":{"status":"active","changed_at":"2026-01-01T00:00:00.123456789123Z"},"deal":{"pipeline":1}}"#,
        #"{"kind":"deal","source":"s","id":"i","version":1,"deal":{"pipeline":"default","stage":"lead","status":"open","amount":123456789012345678901234567890,"currency":"USD","created_at":"2026-03-01T00:00:00Z"}}"#,
        #"{"kind":"deal","source":"s","id":"i","version":1,"deal":{"pipeline":"default","stage":"lead","status":"open","amount":1.7976931348623157e308,"currency":"USD","created_at":"2026-03-01T00:00:00Z"}}"#,
        #"{"kind":"deal","source":"s","id":"i","version":1,"deal":{"pipeline":"default","stage":"lead","status":"open","amount":4.9e-324,"currency":"USD","created_at":"2026-03-01T00:00:00Z"}}"#,
        #"{"kind":"deal","source":"s","id":"i","version":1,"deal":{"pipeline":"default","stage":"lead","status":"open","amount":0.1e23,"currency":"USD","created_at":"2026-03-01T00:00:00Z"}}"#,
    ]

    /// Pieces the mutations splice in: numbers of every spelling, escapes, non-ASCII text,
    /// names the model knows and does not, containers, broken tokens.
    static let pieces: [String] = [
        "0", "-0", "1", "-1", "5.0", "1e2", "1E+2", "2.5e-3", "-0.0", "0.1", "100.25", "9007199254740993",
        "9223372036854775807", "9223372036854775808", "-9223372036854775808", "18446744073709551616", "1e400",
        "1e-400", "123456789.123456789", "0.30000000000000004", "3.14159265358979323846", "1e22", "1e23", "01", "1.",
        ".5", "1e", "--1", "true", "false", "null", "nul", "[]", "{}", #"{"a":1}"#, "[1,2]", #""""#, #""open""#,
        #""won""#, #""lost""#, #""deal""#, #""spend""#, #""account""#, #""deal_deleted""#, #""active""#,
        #""churned""#, #""default""#, #""renewals""#, #""quote""#, #""review""#, #""USD""#, #""EUR""#, #""XXX""#,
        #""2026-02-29T00:00:00Z""#, #""2024-02-29T00:00:00Z""#, #""2026-01-01T00:00:60Z""#,
        #""0001-01-01T00:00:00+01:00""#, #""9999-12-31T23:59:59-01:00""#, #""2026-12-01""#, #""2026-1-01""#,
        #""\u0064eal""#, #""\ud800""#, #""\udc00\ud800""#, #""\u00e9""#, #""é""#, #""\u212A""#, #""a\"b""#,
        #""\x""#, "\"\u{1}\"", #""\/""#, #""😀""#, ",", ":", "\"", "{", "}", " ", "\n", "\t", "\u{0B}",
    ]

    static let alphabet = Array("{}[]\",:0123456789.eE+-tfnul\\ \u{1}xé".utf8)

    /// One event changed at random: a byte replaced, inserted or removed, a cut, a value
    /// replaced by a piece, a member repeated or added.
    static func mutate(_ bytes: [UInt8], _ rng: inout SplitMix64) -> [UInt8] {
        var b = bytes
        guard !b.isEmpty else { return b }
        switch Int.random(in: 0..<8, using: &rng) {
        case 0: b[Int.random(in: 0..<b.count, using: &rng)] = alphabet.randomElement(using: &rng)!
        case 1: b.insert(alphabet.randomElement(using: &rng)!, at: Int.random(in: 0...b.count, using: &rng))
        case 2: b.remove(at: Int.random(in: 0..<b.count, using: &rng))
        case 3: b = Array(b.prefix(Int.random(in: 0..<b.count, using: &rng)))
        case 4, 5:
            // A value (what follows a ':') replaced by a piece.
            let colons = b.indices.filter { b[$0] == UInt8(ascii: ":") }
            guard let at = colons.randomElement(using: &rng) else { return b }
            var end = at + 1
            var depth = 0
            var inString = false
            while end < b.count {
                let c = b[end]
                if inString {
                    if c == UInt8(ascii: "\\") { end += 1 } else if c == UInt8(ascii: "\"") { inString = false }
                } else if c == UInt8(ascii: "\"") {
                    inString = true
                } else if c == UInt8(ascii: "{") || c == UInt8(ascii: "[") {
                    depth += 1
                } else if c == UInt8(ascii: "}") || c == UInt8(ascii: "]") {
                    if depth == 0 { break }
                    depth -= 1
                } else if c == UInt8(ascii: ","), depth == 0 {
                    break
                }
                end += 1
            }
            b.replaceSubrange((at + 1)..<min(end, b.count), with: Array(pieces.randomElement(using: &rng)!.utf8))
        case 6:
            // A known key repeated, or a member added right after the first '{' of an object.
            let keys = [
                "kind", "source", "id", "version", "occurred_at", "deal", "spend", "account", "pipeline", "stage",
                "status", "amount", "currency", "owner", "team", "lead_source", "created_at", "closed_at", "date",
                "changed_at", "extra", "K",
            ]
            let braces = b.indices.filter { b[$0] == UInt8(ascii: "{") }
            guard let at = braces.randomElement(using: &rng) else { return b }
            let member = "\"\(keys.randomElement(using: &rng)!)\":\(pieces.randomElement(using: &rng)!),"
            b.insert(contentsOf: Array(member.utf8), at: at + 1)
        default:
            // Keys in other spellings.
            let text = String(decoding: b, as: UTF8.self)
            let swaps = [
                ("\"kind\"", "\"ki\\u006ed\""), ("\"currency\"", "\"currenc\\u0079\""), ("\"USD\"", "\"U\\u0053D\""),
                ("\"lead\"", "\"le\\u0061d\""), ("\"team\"", "\"t\u{E9}am\""), ("\"EUR\"", "\"E\u{212A}R\""),
            ]
            let (from, to) = swaps.randomElement(using: &rng)!
            guard let r = text.range(of: from) else { return b }
            b = Array(text.replacingCharacters(in: r, with: to).utf8)
        }
        return b
    }

    private func check(
        _ bytes: [UInt8],
        with decoder: EventDecoder,
        accepted: inout Int,
        sourceLocation: SourceLocation = #_sourceLocation
    ) {
        let reference = decoder.decodeThroughValue(json: bytes)
        if let direct = decoder.decodeDirect(json: bytes) {
            accepted += 1
            #expect(
                reference == .success(direct),
                "\(String(decoding: bytes, as: UTF8.self))",
                sourceLocation: sourceLocation
            )
        }
        #expect(decoder.decode(json: bytes) == reference, sourceLocation: sourceLocation)
    }

    @Test func everyScenarioEventTakesTheFastPathAndEqualsTheReference() {
        let events = Scenario.events(seed: 11, deals: 600)
        var accepted = 0
        var valid = 0
        for text in events {
            let bytes = Array(text.utf8)
            if case .success = decoder.decodeThroughValue(json: bytes) { valid += 1 }
            check(bytes, with: decoder, accepted: &accepted)
        }
        #expect(valid > 1000)
        #expect(accepted == valid, "the fast path refused valid events of the normal shape")
    }

    @Test func unusualValidShapesEqualTheReference() {
        var accepted = 0
        for text in Self.valid {
            let bytes = Array(text.utf8)
            guard case .success = decoder.decodeThroughValue(json: bytes) else {
                Issue.record("not valid: \(text)")
                continue
            }
            check(bytes, with: decoder, accepted: &accepted)
        }
        // All but the two that need what the fast path leaves alone (an array, a big integer).
        #expect(accepted == Self.valid.count - 2)
    }

    /// Thousands of mutations of valid events: same event or same rejection, and a good
    /// share of the mutants (still valid, with other values) go through the fast path.
    @Test func mutatedEventsEqualTheReference() {
        var rng = SplitMix64(state: 42)
        let bases = Self.valid + Scenario.events(seed: 5, deals: 40)
        var accepted = 0
        var compared = 0
        for base in bases {
            var bytes = Array(base.utf8)
            for round in 0..<250 {
                if round % 5 == 0 { bytes = Array(base.utf8) }  // chains of up to five mutations
                bytes = Self.mutate(bytes, &rng)
                check(bytes, with: decoder, accepted: &accepted)
                compared += 1
            }
        }
        #expect(compared > 20_000)
        #expect(accepted > 2_000)
    }

    /// A model whose names are not all ASCII (and a currency the Kelvin sign spells in a
    /// `String`-equal way): the fast path must match names exactly as `String` does.
    @Test func namesMatchAsStringsDo() {
        let model = try! Model.parse(
            Array(
                #"""
                {"fx":{"DKK":7.4,"É":2},
                 "pipelines":{"Négoce":{"stages":["prés","Kontakt"],"qualified_stage":"prés"},
                              "plain":{"stages":["a","b"],"qualified_stage":"a"}}}
                """#.utf8
            )
        )
        let decoder = EventDecoder(model: model)
        var accepted = 0
        for (pipeline, stage, currency) in [
            ("Négoce", "prés", "DKK"), ("Ne\u{301}goce", "pre\u{301}s", "D\u{212A}K"),
            ("N\\u00e9goce", "\\u212Aontakt", "\\u00c9"),
            ("plain", "b", "E\u{301}"), ("plain", "a", "D\\u212AK"), ("plain", "c", "DKK"),
        ] {
            let text =
                #"{"kind":"deal","source":"s","id":"i","version":1,"deal":{"pipeline":"\#(pipeline)","stage":"\#(stage)","status":"open","amount":10,"currency":"\#(currency)","created_at":"2026-03-01T00:00:00Z"}}"#
            check(Array(text.utf8), with: decoder, accepted: &accepted)
        }
        #expect(accepted >= 3)
    }
}
