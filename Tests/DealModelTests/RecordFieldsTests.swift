import DealstreamTestSupport
import Testing

@testable import DealModel

/// The replay's string-free path: an event record decoded in place (`RecordFields`) and
/// resolved with its strings interned from the record's bytes must decide and store
/// exactly what decoding it into an `Event` and resolving that does.
struct RecordFieldsTests {
    private let decoder = EventDecoder(model: testModel)

    private func record(_ text: String) throws -> [UInt8] {
        EventRecord.encode(try decode(text).get(), model: testModel)
    }

    @Test func everyKindDecodesInPlaceToTheSameEvent() throws {
        let texts = [
            dealJSON(id: "A", version: 3),
            dealJSON(
                id: "B",
                version: 9,
                pipeline: "renewals",
                stage: "quote",
                status: "won",
                amount: "12.5",
                currency: "EUR",
                closed: "2026-07-01T00:00:00.123456789Z",
                owner: "null"
            ),
            dealJSON(id: "Zoë", source: "crm-ü", owner: "\"José\""),
            dealJSON(id: String(repeating: "x", count: 128), source: String(repeating: "s", count: 128), version: 1),
            deleteJSON(id: "A", version: 4),
            #"{"kind":"spend","source":"m","id":"s","version":2,"spend":{"amount":5,"currency":"JPY","date":"2026-06-30"}}"#,
            #"{"kind":"account","source":"crm","id":"acme","version":3,"account":{"status":"churned","changed_at":"9999-12-31T23:59:59Z"}}"#,
        ]
        for text in texts {
            let bytes = try record(text)
            let expected = try decode(text).get()  // the event the record was written from
            let fields = try decoder.decodeFields(record: bytes).get()
            #expect(fields.event(model: testModel) == expected, "\(text)")
            for cut in [1, 2, bytes.count / 2, bytes.count - 1] {
                #expect(throws: BinaryDecodingError.self) {
                    _ = try decoder.decodeFields(record: Array(bytes.prefix(cut)))
                }
            }
        }
    }

    @Test func aStringThatIsNotUTF8IsAnErrorAsInTheOtherPath() throws {
        var bytes = try record(dealJSON(id: "A", owner: "\"rep-é\""))
        // The owner's "é" is C3 A9: make it C3 28, not UTF-8.
        let owner: [UInt8] = Array("rep-é".utf8)
        let at = bytes.indices.first { Array(bytes[$0..<min($0 + owner.count, bytes.count)]) == owner }!
        bytes[at + owner.count - 1] = 0x28
        #expect(throws: BinaryDecodingError.self) { _ = try decoder.decode(record: bytes) }
        #expect(throws: BinaryDecodingError.self) { _ = try decoder.decodeFields(record: bytes) }
    }

    @Test func aChangedModelRejectsTheSameFieldsInPlace() throws {
        // Checked against the JSON path: a changed model converts and rejects a record as
        // it would the event's JSON.
        let texts = [
            dealJSON(id: "A", stage: "proposal", amount: "10", currency: "EUR"),
            #"{"kind":"spend","source":"m","id":"s","version":2,"spend":{"amount":5,"currency":"EUR","date":"2026-06-30"}}"#,
        ]
        let records = try texts.map { (text: $0, bytes: try record($0)) }
        let models = [
            #"{"reporting_currency":"USD","fx":{"USD":1.0,"EUR":2.0},"pipelines":{"default":{"stages":["lead","proposal"],"qualified_stage":"lead"}}}"#,
            #"{"reporting_currency":"USD","fx":{"USD":1.0},"pipelines":{"default":{"stages":["lead","proposal"],"qualified_stage":"lead"}}}"#,
            #"{"reporting_currency":"USD","fx":{"USD":1.0,"EUR":1.1},"pipelines":{"default":{"stages":["lead"],"qualified_stage":"lead"}}}"#,
            #"{"reporting_currency":"USD","fx":{"USD":1.0,"EUR":1.1},"pipelines":{"renewals":{"stages":["review"],"qualified_stage":"review"}}}"#,
        ]
        var rejected: [String] = []
        for text in models {
            let model = try Model.parse(Array(text.utf8))
            let decoder = EventDecoder(model: model)
            for (json, bytes) in records {
                switch (decode(json, model: model), try decoder.decodeFields(record: bytes)) {
                case (.success(let event), .success(let fields)):
                    #expect(fields.event(model: model) == event)
                case (.failure(let a), .failure(let b)):
                    #expect(a == b)
                    rejected.append(a.field)
                default:
                    Issue.record("the two paths disagree under \(text)")
                }
            }
        }
        #expect(Set(rejected) == ["deal.currency", "spend.currency", "deal.stage", "deal.pipeline"])
    }

    /// A long random history (resends, stale versions, deletions, spends, accounts, non-ASCII
    /// keys, one of them canonically equal to another) resolved both ways: every resolution
    /// and the stores' checkpoints are the same.
    @Test func resolvingFromTheBytesGivesTheSameStoreAndResolutions() throws {
        var rng = SplitMix64(state: 5)
        let owners = ["\"rep-1\"", "\"rep-2\"", "null", "\"José\"", "\"Jose\u{301}\"", "\"K\"", "\"\u{212A}\""]
        var records: [[UInt8]] = []
        for n in 0..<6_000 {
            let id = "d\(Int.random(in: 0..<400, using: &rng))"
            let version = Int64.random(in: 1...8, using: &rng)
            let text: String
            switch Int.random(in: 0..<20, using: &rng) {
            case 0: text = deleteJSON(id: id, version: version)
            case 1:
                text =
                    #"{"kind":"spend","source":"m","id":"s\#(n % 50)","version":\#(version),"spend":{"amount":\#(n % 90),"currency":"EUR","lead_source":"web\#(n % 3)","date":"2026-06-30"}}"#
            case 2:
                text =
                    #"{"kind":"account","source":"crm","id":"acct-\#(n % 40)","version":\#(version),"account":{"status":"\#(n % 2 == 0 ? "active" : "churned")","changed_at":"2026-06-01T00:00:00Z"}}"#
            default:
                let won = Int.random(in: 0..<5, using: &rng) == 0
                text = dealJSON(
                    id: id,
                    source: n % 7 == 0 ? "crm-ü" : "crm",
                    version: version,
                    stage: ["lead", "qualified", "proposal", "negotiation"][Int.random(in: 0..<4, using: &rng)],
                    status: won ? "won" : "open",
                    amount: "\(Int.random(in: 1...500, using: &rng))",
                    closed: won ? "2026-07-01T00:00:00Z" : nil,
                    owner: owners[Int.random(in: 0..<owners.count, using: &rng)]
                )
            }
            let bytes = try record(text)
            records.append(bytes)
            // Resends: the same record again, sometimes.
            if Int.random(in: 0..<10, using: &rng) == 0 { records.append(bytes) }
        }
        var byEvent = RecordStore(model: testModel)
        var byFields = RecordStore(model: testModel)
        var asReplayed = RecordStore(model: testModel)
        for bytes in records {
            let a = byEvent.apply(try decoder.decode(record: bytes).get())
            let fields = try decoder.decodeFields(record: bytes).get()
            let b = byFields.apply(fields)
            let c = asReplayed.apply(fields, derivingChange: false)
            #expect(a.outcome == b.outcome && a.changedState == b.changedState)
            #expect(a.change == b.change)
            #expect(c.outcome == a.outcome && c.changedState == a.changedState)
        }
        // As the replay does it: records copied into one buffer, decoded in place there.
        var inPlace = RecordStore(model: testModel)
        var buffer: [UInt8] = [42]
        var decoded: [RecordFields] = []
        for bytes in records {
            decoded.append(try bytes.withUnsafeBytes { try decoder.decodeFields(record: $0, at: buffer.count) }.get())
            buffer += bytes
        }
        buffer.withUnsafeBytes { raw in
            for fields in decoded { _ = inPlace.apply(fields, in: raw, derivingChange: false) }
        }
        #expect(byFields.encoded() == byEvent.encoded())
        #expect(asReplayed.encoded() == byEvent.encoded())
        #expect(inPlace.encoded() == byEvent.encoded())
        #expect(asReplayed.liveDealCount == byEvent.liveDealCount)
        #expect(byFields.strings.strings == byEvent.strings.strings)
        #expect(byFields.liveDealCount == byEvent.liveDealCount)
        #expect(byFields.allFacts() == byEvent.allFacts())
    }
}

/// Interning from bytes gives the ids interning the string gives, canonical equivalence
/// included.
struct StringTableBytesTests {
    @Test func bytesAndStringsShareIdsThroughGrowth() {
        var a = StringTable()
        var b = StringTable()
        var names: [String] = []
        for i in 0..<5_000 { names.append(i % 3 == 0 ? "acct-\(i)" : "owner-\(i % 700)-é") }
        // "K" and the Kelvin sign are equal strings: one id, whichever comes first.
        names += ["\u{212A}", "K", "Jose\u{301}", "José", ""]
        for name in names + names.reversed() {
            var bytes = name
            let fromBytes = bytes.withUTF8 { a.intern(utf8: UnsafeRawBufferPointer($0)) }
            #expect(fromBytes == b.intern(name), "\(name)")
        }
        #expect(a.strings == b.strings)
        var c = StringTable()
        let kelvin = Array("\u{212A}".utf8)
        let k = kelvin.withUnsafeBytes { c.intern(utf8: $0) }
        #expect(c.intern("K") == k)
        #expect(Array("K".utf8).withUnsafeBytes { c.intern(utf8: $0) } == k)
        #expect(c.count == 1)
    }
}
