import DealModel
import DealstreamTestSupport
import EventEncoding
import Testing

/// The one-pass protobuf reader (`ProtobufEvent.decodeDirect`) against the reference path
/// (SwiftProtobuf, `jsonValue(of:)`, the `JSONValue` validation): whatever the reader
/// accepts, the reference accepts as the same `Event`, digest included; `decode` always
/// equals the reference, rejections included.
struct ProtobufDirectTests {
    let decoder = EventDecoder(model: harnessModel)

    static func frame(_ json: String) -> [UInt8] {
        try! ProtobufEvent.encode(json: try! JSONParser.parse(Array(json.utf8)))
    }

    /// Events of unusual but valid shapes.
    static let valid: [String] = [
        #"{"kind":"deal","source":"sé","id":"😀","version":0,"occurred_at":"2026-11-28T10:15:00Z","deal":{"pipeline":"Enterprise Sales","stage":"demo/trial","status":"won","amount":0.1,"currency":"EUR","owner":"","team":"Ünit","lead_source":"web","account":"","created_at":"2026-11-02T09:00:00Z","closed_at":"2026-11-02T09:00:00Z"}}"#,
        #"{"kind":"deal_deleted","source":"crm","id":"d1","version":9223372036854775807,"deal":{},"spend":{"amount":3},"account":{"status":"active"}}"#,
        #"{"kind":"spend","source":"m","id":"s","version":1,"spend":{"amount":-0.0,"currency":"USD","date":"2026-02-28"},"deal":{"status":"lost","amount":1e300}}"#,
        #"{"kind":"account","source":"crm","id":"a","version":1,"account":{"status":"churned","changed_at":"2026-01-01T00:00:00.123Z"}}"#,
    ]

    /// Wire snippets the mutations append or insert: repeated and unknown fields, wrong
    /// wire types, enum values outside the schema, broken UTF-8, overlong varints.
    static let snippets: [[UInt8]] = [
        [0x08, 0x01], [0x08, 0x00], [0x08, 0x05], [0x08, 0xFF, 0xFF, 0xFF, 0xFF, 0x0F],
        [0x08, 0x81, 0x80, 0x80, 0x80, 0x10],
        [0x12, 0x01, 0x61], [0x12, 0x00], [0x12, 0x02, 0xC3, 0x28], [0x1A, 0x01, 0x62], [0x20, 0x05],
        [0x20, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0x01], [0x20, 0x80, 0x00],
        [0x21, 0, 0, 0, 0, 0, 0, 0, 0],
        [0x2A, 0x01, 0x78], [0x32, 0x00], [0x32, 0x02, 0x18, 0x02], [0x32, 0x02, 0x18, 0x07], [0x3A, 0x00],
        [0x42, 0x00],
        [0x42, 0x02, 0x08, 0x03], [0x48, 0x01], [0x52, 0x01, 0x7A], [0x00], [0x0F], [0x0B, 0x0C], [0x12, 0x05, 0x61],
        [0x21, 0, 0, 0, 0, 0, 0, 0xF8, 0x7F], [0x32, 0x09, 0x21, 0, 0, 0, 0, 0, 0, 0xF0, 0x7F], [0xFF],
        [0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x01],
    ]

    static func mutate(_ bytes: [UInt8], _ rng: inout SplitMix64) -> [UInt8] {
        var b = bytes
        guard !b.isEmpty else { return b }
        switch Int.random(in: 0..<6, using: &rng) {
        case 0: b[Int.random(in: 0..<b.count, using: &rng)] = UInt8.random(in: 0...255, using: &rng)
        case 1: b[Int.random(in: 0..<b.count, using: &rng)] ^= 1 << UInt8.random(in: 0..<8, using: &rng)
        case 2: b = Array(b.prefix(Int.random(in: 0..<b.count, using: &rng)))
        case 3: b.append(contentsOf: snippets.randomElement(using: &rng)!)
        case 4: b.insert(contentsOf: snippets.randomElement(using: &rng)!, at: 0)
        default: b.remove(at: Int.random(in: 0..<b.count, using: &rng))
        }
        return b
    }

    private func check(_ bytes: [UInt8], accepted: inout Int, sourceLocation: SourceLocation = #_sourceLocation) {
        let reference = ProtobufEvent.decodeThroughValue(bytes, with: decoder)
        if let direct = ProtobufEvent.decodeDirect(bytes, with: decoder) {
            accepted += 1
            #expect(reference == .success(direct), "\(bytes)", sourceLocation: sourceLocation)
        }
        #expect(ProtobufEvent.decode(bytes, with: decoder) == reference, sourceLocation: sourceLocation)
    }

    @Test func everyScenarioEventTakesTheFastPathAndEqualsTheReference() {
        var accepted = 0
        var valid = 0
        for text in Scenario.events(seed: 13, deals: 600) + Self.valid {
            let bytes = Self.frame(text)
            if case .success = ProtobufEvent.decodeThroughValue(bytes, with: decoder) { valid += 1 }
            check(bytes, accepted: &accepted)
        }
        #expect(valid > 1000)
        #expect(accepted == valid, "the fast path refused valid events of the normal shape")
    }

    /// Thousands of mutated frames: same event or same rejection, and some of the mutants
    /// (still valid, with other values) go through the fast path.
    @Test func mutatedFramesEqualTheReference() {
        var rng = SplitMix64(state: 7)
        let bases = (Self.valid + Scenario.events(seed: 3, deals: 40)).map(Self.frame)
        var accepted = 0
        var compared = 0
        for base in bases {
            var bytes = base
            for round in 0..<250 {
                if round % 4 == 0 { bytes = base }
                bytes = Self.mutate(bytes, &rng)
                check(bytes, accepted: &accepted)
                compared += 1
            }
        }
        #expect(compared > 20_000)
        #expect(accepted > 1_000)
    }

    /// The same event as JSON and as protobuf: both fast paths give the same event.
    @Test func jsonAndProtobufFastPathsAgree() {
        var compared = 0
        for text in Scenario.events(seed: 17, deals: 200) {
            guard let a = decoder.decodeDirect(json: Array(text.utf8)),
                let b = ProtobufEvent.decodeDirect(Self.frame(text), with: decoder)
            else {
                continue
            }
            #expect(a == b, "\(text)")
            compared += 1
        }
        #expect(compared > 300)
    }
}
