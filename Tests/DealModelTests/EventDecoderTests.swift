import Foundation
import Testing

@testable import DealModel

struct EventDecoderTests {
    @Test func acceptsAValidDealAndConvertsTheAmount() throws {
        let event = try decode(dealJSON(amount: "1000", currency: "EUR")).get()
        guard case .deal(let d) = event.body else {
            Issue.record("expected a deal")
            return
        }
        #expect(d.amount == 1000 * 1.08)
        #expect(d.owner == "rep-1")
        #expect(d.leadSource == "web")
        #expect(event.version == 1)
    }

    @Test func missingOrEmptyKeysAreUnknownAndNoAccount() throws {
        let text =
            #"{"kind":"deal","source":"s","id":"i","version":0,"deal":{"pipeline":"default","stage":"lead","status":"open","amount":0,"currency":"USD","created_at":"2026-01-01T00:00:00Z","owner":"","team":null,"account":""}}"#
        guard case .deal(let d) = try decode(text).get().body else {
            Issue.record("expected a deal")
            return
        }
        #expect(d.owner == "unknown")
        #expect(d.team == "unknown")
        #expect(d.leadSource == "unknown")
        #expect(d.account == "")
    }

    /// Every rule of METRICS.md §4, each with the field its reason must name.
    @Test(arguments: [
        ("[1]", "event"),
        ("{\"kind\":", "event"),
        (dealJSON().replacingOccurrences(of: "\"kind\":\"deal\"", with: "\"kind\":\"invoice\""), "kind"),
        (dealJSON(source: ""), "source"),
        (dealJSON(source: String(repeating: "s", count: 129)), "source"),
        (dealJSON().replacingOccurrences(of: "\"source\":\"crm\"", with: "\"source\":7"), "source"),
        (dealJSON(id: ""), "id"),
        (dealJSON(id: String(repeating: "€", count: 43)), "id"),
        (dealJSON().replacingOccurrences(of: "\"version\":1", with: "\"version\":-1"), "version"),
        (dealJSON().replacingOccurrences(of: "\"version\":1", with: "\"version\":9223372036854775808"), "version"),
        (dealJSON().replacingOccurrences(of: "\"version\":1", with: "\"version\":5.0"), "version"),
        (dealJSON().replacingOccurrences(of: "\"version\":1", with: "\"version\":\"5\""), "version"),
        (dealJSON().replacingOccurrences(of: "\"version\":1", with: "\"version\":true"), "version"),
        (
            dealJSON().replacingOccurrences(
                of: "\"occurred_at\":\"2026-06-01T09:00:00Z\"",
                with: "\"occurred_at\":\"yesterday\""
            ), "occurred_at"
        ),
        (dealJSON(pipeline: "partners"), "deal.pipeline"),
        (dealJSON(stage: "quote"), "deal.stage"),
        (dealJSON(status: "pending"), "deal.status"),
        (dealJSON(amount: "-1"), "deal.amount"),
        (dealJSON(amount: "1e400"), "deal.amount"),
        (dealJSON(amount: "\"100\""), "deal.amount"),
        (dealJSON(amount: "null"), "deal.amount"),
        (dealJSON(currency: "XYZ"), "deal.currency"),
        (dealJSON(created: "02/06/2026"), "deal.created_at"),
        (dealJSON(status: "won"), "deal.closed_at"),
        (dealJSON(status: "open", closed: "2026-06-02T00:00:00Z"), "deal.closed_at"),
        (dealJSON(status: "lost", closed: "2026-05-01T00:00:00Z"), "deal.closed_at"),
        (
            dealJSON(status: "won", created: "2026-06-02T02:00:00-05:00", closed: "2026-06-02T03:00:00Z"),
            "deal.closed_at"
        ),
        (dealJSON(owner: "17"), "deal.owner"),
        (#"{"kind":"deal","source":"s","id":"i","version":1}"#, "deal"),
        (#"{"kind":"deal","source":"s","id":"i","version":1,"deal":"open"}"#, "deal"),
        (
            #"{"kind":"spend","source":"s","id":"i","version":1,"spend":{"amount":-5,"currency":"USD","date":"2026-06-30"}}"#,
            "spend.amount"
        ),
        (
            #"{"kind":"spend","source":"s","id":"i","version":1,"spend":{"amount":5,"currency":"XYZ","date":"2026-06-30"}}"#,
            "spend.currency"
        ),
        (#"{"kind":"spend","source":"s","id":"i","version":1,"spend":{"amount":5,"currency":"USD"}}"#, "spend.date"),
        (
            #"{"kind":"spend","source":"s","id":"i","version":1,"spend":{"amount":5,"currency":"USD","date":"2026-6-30"}}"#,
            "spend.date"
        ),
        (
            #"{"kind":"spend","source":"s","id":"i","version":1,"spend":{"amount":5,"currency":"USD","date":"2026-06-30","lead_source":5}}"#,
            "spend.lead_source"
        ),
        (
            #"{"kind":"account","source":"s","id":"i","version":1,"account":{"status":"paused","changed_at":"2026-06-30T00:00:00Z"}}"#,
            "account.status"
        ),
        (#"{"kind":"account","source":"s","id":"i","version":1,"account":{"status":"churned"}}"#, "account.changed_at"),
    ])
    func rejectsNamingTheField(_ text: String, _ field: String) {
        switch decode(text) {
        case .success:
            Issue.record("accepted an invalid event: \(text)")
        case .failure(let rejection):
            #expect(rejection.field == field, "\(rejection)")
            #expect(rejection.description.hasPrefix(field))
        }
    }

    @Test func acceptsTheEdgesOfTheRules() throws {
        _ = try decode(dealJSON(id: String(repeating: "€", count: 42) + "ok")).get()  // 128 bytes
        _ = try decode(dealJSON().replacingOccurrences(of: "\"version\":1", with: "\"version\":9223372036854775807"))
            .get()
        _ = try decode(dealJSON(extra: ",\"unknown_field\":{\"kept\":false}")).get()
        // closed_at's text sorts before created_at's, but its instant is later.
        _ = try decode(dealJSON(status: "won", created: "2026-06-02T09:00:00Z", closed: "2026-06-02T08:30:00-01:00"))
            .get()
        _ = try decode(#"{"kind":"deal_deleted","source":"s","id":"never-seen","version":7}"#).get()
    }
}
