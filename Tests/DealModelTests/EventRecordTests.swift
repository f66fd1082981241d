import Testing

@testable import DealModel

/// The event log's binary records: what a replay decodes instead of the JSON frame.
struct EventRecordTests {
    private let decoder = EventDecoder(model: testModel)

    private func same(_ a: Event, _ b: Event) -> Bool {
        a.kind == b.kind && a.source == b.source && a.id == b.id && a.version == b.version && a.body == b.body
            && a.digest == b.digest
    }

    @Test func everyKindDecodesToTheEventItWasWrittenFrom() throws {
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
            dealJSON(id: String(repeating: "x", count: 128), source: String(repeating: "s", count: 128), version: 1),
            dealJSON(id: "C", created: "0001-01-01T00:00:00Z"),
            deleteJSON(id: "A", version: 4),
            #"{"kind":"spend","source":"m","id":"s","version":2,"spend":{"amount":5,"currency":"JPY","date":"2026-06-30"}}"#,
            #"{"kind":"account","source":"crm","id":"acme","version":3,"account":{"status":"churned","changed_at":"9999-12-31T23:59:59Z"}}"#,
        ]
        for text in texts {
            let event = try decode(text).get()
            let record = EventRecord.encode(event, model: testModel)
            #expect(record.first == EventRecord.format)
            #expect(record.count < text.utf8.count, "a record is smaller than its JSON")
            let back = try decoder.decode(record: record).get()
            #expect(same(back, event), "\(text)")
            // Cut anywhere, a record is an error, never another event.
            for cut in [1, 2, record.count / 2, record.count - 1] {
                #expect(throws: BinaryDecodingError.self) { _ = try decoder.decode(record: Array(record.prefix(cut))) }
            }
        }
    }

    @Test func aReplayConvertsAndChecksUnderTheModelOfTheDay() throws {
        let event = try decode(dealJSON(id: "A", amount: "10", currency: "EUR")).get()
        let record = EventRecord.encode(event, model: testModel)
        let newRate = try Model.parse(
            Array(
                #"""
                {"reporting_currency":"USD","fx":{"USD":1.0,"EUR":2.0},
                 "pipelines":{"default":{"stages":["lead","qualified","proposal","negotiation"],"qualified_stage":"qualified"}}}
                """#.utf8
            )
        )
        guard case .deal(let p) = try EventDecoder(model: newRate).decode(record: record).get().body else {
            Issue.record("a deal record decodes to a deal")
            return
        }
        #expect(p.amount == 20)
        #expect(p.pipeline == 0 && p.stage == 0)
        let noEuro = try Model.parse(
            Array(
                #"""
                {"reporting_currency":"USD","fx":{"USD":1.0},
                 "pipelines":{"default":{"stages":["lead","qualified"],"qualified_stage":"qualified"}}}
                """#.utf8
            )
        )
        #expect(try EventDecoder(model: noEuro).decode(record: record).failure?.field == "deal.currency")
        let renewalsOnly = try Model.parse(
            Array(
                #"""
                {"reporting_currency":"USD","fx":{"USD":1.0,"EUR":1.1},
                 "pipelines":{"renewals":{"stages":["review","quote"],"qualified_stage":"review"}}}
                """#.utf8
            )
        )
        #expect(try EventDecoder(model: renewalsOnly).decode(record: record).failure?.field == "deal.pipeline")
    }
}

extension Result {
    fileprivate var failure: Failure? {
        if case .failure(let f) = self { return f }
        return nil
    }
}
