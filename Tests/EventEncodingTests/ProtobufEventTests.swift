import DealModel
import DealstreamTestSupport
import EventEncoding
import Testing

/// The protobuf content type stands for the JSON event with the same keys: the same
/// validated event, the same digest (so the two forms are duplicates), the same rejections.
struct ProtobufEventTests {
    let decoder = EventDecoder(model: harnessModel)

    private func both(
        _ text: String
    ) throws -> (json: Result<Event, EventRejection>, protobuf: Result<Event, EventRejection>) {
        let frame = try ProtobufEvent.encode(json: try JSONParser.parse(Array(text.utf8)))
        return (
            EventEncoding.json.decode(Array(text.utf8), with: decoder),
            EventEncoding.protobuf.decode(frame, with: decoder)
        )
    }

    @Test func everyScenarioEventDecodesToTheSameEvent() throws {
        let events = Scenario.events(seed: 9, deals: 200)
        var compared = 0
        for text in events {
            let (json, protobuf) = try both(text)
            switch (json, protobuf) {
            case (.success(let a), .success(let b)):
                #expect(a.kind == b.kind && a.source == b.source && a.id == b.id && a.version == b.version, "\(text)")
                #expect(a.body == b.body, "\(text)")
                if !text.contains("null") { #expect(a.digest == b.digest, "\(text)") }
                compared += 1
            case (.failure(let a), .failure(let b)):
                #expect(a == b, "\(text)")
            default:
                Issue.record("JSON and protobuf disagree on \(text): \(json) vs \(protobuf)")
            }
        }
        #expect(compared > 300)
    }

    @Test(arguments: [
        (#"{"source":"crm","id":"1","version":1}"#, "kind"),
        (#"{"kind":"deal","source":"crm","id":"1","version":-3,"deal":{}}"#, "version"),
        (#"{"kind":"deal","id":"1","version":3,"deal":{}}"#, "source"),
        (#"{"kind":"deal","source":"crm","id":"1","version":3}"#, "deal"),
        (
            #"{"kind":"deal","source":"crm","id":"1","version":3,"deal":{"pipeline":"default","stage":"lead","amount":1,"currency":"USD","created_at":"2026-01-01T00:00:00Z"}}"#,
            "deal.status"
        ),
        (
            #"{"kind":"deal","source":"crm","id":"1","version":3,"deal":{"pipeline":"default","stage":"lead","status":"open","amount":-1,"currency":"USD","created_at":"2026-01-01T00:00:00Z"}}"#,
            "deal.amount"
        ),
        (
            #"{"kind":"deal","source":"crm","id":"1","version":3,"deal":{"pipeline":"default","stage":"lead","status":"open","amount":1,"currency":"XXX","created_at":"2026-01-01T00:00:00Z"}}"#,
            "deal.currency"
        ),
        (
            #"{"kind":"deal","source":"crm","id":"1","version":3,"deal":{"pipeline":"default","stage":"lead","status":"open","amount":1,"currency":"USD","created_at":"2026-01-01T00:00:00Z","closed_at":"2026-02-01T00:00:00Z"}}"#,
            "deal.closed_at"
        ),
        (
            #"{"kind":"spend","source":"m","id":"s","version":1,"spend":{"amount":5,"currency":"USD","date":"2026-13-01"}}"#,
            "spend.date"
        ),
        (
            #"{"kind":"account","source":"crm","id":"a","version":1,"account":{"changed_at":"2026-01-01T00:00:00Z"}}"#,
            "account.status"
        ),
    ])
    func rejectionsNameTheSameField(text: String, field: String) throws {
        let (json, protobuf) = try both(text)
        guard case .failure(let a) = json, case .failure(let b) = protobuf else {
            Issue.record("expected both to be rejected: \(json) / \(protobuf)")
            return
        }
        #expect(a.field == field)
        #expect(a == b)
    }

    @Test func bytesThatAreNotAnEventAreRejected() {
        let result = EventEncoding.protobuf.decode([0xFF, 0xFF, 0xFF, 0x07], with: decoder)
        guard case .failure(let rejection) = result else {
            Issue.record("garbage accepted: \(result)")
            return
        }
        #expect(rejection.field == "event")
        #expect(rejection.reason.hasPrefix("not a dealstream.v1.Event protobuf message"))
    }

    @Test func aValueTheSchemaCannotHoldIsAnErrorNamingTheField() throws {
        #expect(throws: ProtobufEvent.ConversionError.self) {
            try ProtobufEvent.encode(json: try JSONParser.parse(Array(#"{"kind":"deal","deal":{"amount":"12"}}"#.utf8)))
        }
        do {
            _ = try ProtobufEvent.encode(
                json: try JSONParser.parse(Array(#"{"kind":"deal","deal":{"amount":"12"}}"#.utf8))
            )
        } catch let error as ProtobufEvent.ConversionError {
            #expect(error.field == "deal.amount")
        }
    }
}
