import DealModel
import DealstreamTestSupport
import Testing

@testable import PipelineMetrics

/// Each metric of METRICS.md §3 on a small example worked out by hand.
struct MetricDefinitionTests {
    static let events = [
        deal(
            "D1",
            stage: "lead",
            status: "won",
            amount: 100,
            created: "2026-01-10T00:00:00Z",
            closed: "2026-02-10T00:00:00Z"
        ),
        deal(
            "D2",
            stage: "proposal",
            status: "lost",
            amount: 50,
            created: "2026-01-20T00:00:00Z",
            closed: "2026-02-15T00:00:00Z",
            owner: "rep-b",
            lead: "seo",
            account: ""
        ),
        deal("D3", stage: "qualified", amount: 30, created: "2026-02-01T00:00:00Z", owner: "rep-b", lead: "seo"),
        spend("S1", amount: 40, date: "2026-02-05"),
    ]
    let state = publishedState(MetricDefinitionTests.events)

    private func field(_ topic: String, _ name: String) -> String? {
        guard let payload = state[topic] else { return nil }
        let value = try? JSONParser.parse(Array(payload.utf8))
        guard let v = value?[name] else { return nil }
        switch v {
        case .int(let i): return String(i)
        case .double(let d): return String(d)
        case .null: return "null"
        case .string(let s): return s
        default: return "\(v)"
        }
    }

    @Test func newOpportunitiesAndQualification() {
        #expect(field("new_opportunities/all/%2A/2026-01", "value") == "2")
        #expect(field("new_opportunities/all/%2A/2026-02", "value") == "1")
        #expect(field("new_opportunities/all/%2A/2026-Q1", "value") == "3")
        #expect(field("new_opportunities/owner/rep-b/all", "value") == "2")
        #expect(field("qualified_leads/all/%2A/all", "value") == "3")
        #expect(field("qualification_rate/all/%2A/all", "value") == "1.0")
        #expect(field("qualification_rate/all/%2A/all", "denominator") == "3")
    }

    @Test func winRateUsesTheClosedCohort() {
        #expect(field("win_rate/all/%2A/2026-02", "value") == "0.5")
        #expect(field("win_rate/all/%2A/2026-02", "numerator") == "1")
        #expect(field("win_rate/all/%2A/2026-02", "denominator") == "2")
        #expect(state["win_rate/all/%2A/2026-01"] == nil)  // nothing closed in January
    }

    @Test func stageConversionIsACumulativeFunnel() {
        let base = "stage_conversion:default:"
        #expect(field(base + "lead:qualified/all/%2A/all", "value") == "1.0")
        #expect(field(base + "qualified:proposal/all/%2A/all", "numerator") == "2")
        #expect(field(base + "qualified:proposal/all/%2A/all", "denominator") == "3")
        #expect(field(base + "proposal:negotiation/all/%2A/all", "value") == "0.5")
        #expect(field(base + "proposal:negotiation/all/%2A/all", "metric") == "stage_conversion")
        #expect(field(base + "proposal:negotiation/all/%2A/all", "from") == "proposal")
        #expect(state["stage_conversion:renewals:review:quote/all/%2A/all"] == nil)  // no renewals deals
    }

    @Test func revenueDealSizeAndOrderValue() {
        #expect(field("revenue/all/%2A/2026-02", "value") == "100.0")
        #expect(field("revenue/all/%2A/2026-02", "count") == "1")
        #expect(field("revenue/owner/rep-b/2026-02", "value") == "0.0")  // only a lost deal: revenue 0
        #expect(field("average_order_value/owner/rep-b/2026-02", "value") == "null")
        #expect(field("deal_size/all/%2A/all", "value") == "60.0")
        #expect(field("deal_size/all/%2A/all", "sum") == "180.0")
        let p50 = Double(field("deal_size/all/%2A/all", "p50") ?? "") ?? 0
        let p90 = Double(field("deal_size/all/%2A/all", "p90") ?? "") ?? 0
        #expect(abs(p50 - 50) / 50 < 0.01)
        #expect(abs(p90 - 100) / 100 < 0.01)
        #expect(field("average_order_value/all/%2A/2026-02", "value") == "100.0")
    }

    @Test func cycleLengthAndVelocity() {
        #expect(field("sales_cycle_length/all/%2A/2026-02", "value") == "31.0")
        #expect(field("sales_velocity/all/%2A/2026-02", "value") == String(1 * 0.5 * 100.0 / 31.0))
        #expect(field("sales_velocity/all/%2A/2026-02", "opportunities") == "1")
        // created but nothing closed: the population exists, the value is null
        #expect(field("sales_velocity/all/%2A/2026-01", "value") == "null")
        #expect(field("sales_velocity/all/%2A/2026-01", "opportunities") == "2")
    }

    @Test func roiCombinesRevenueAndSpend() {
        #expect(field("roi/all/%2A/2026-02", "value") == "1.5")
        #expect(field("roi/lead_source/web/2026-02", "value") == "1.5")
        #expect(field("roi/lead_source/seo/2026-02", "value") == "null")  // no spend on seo
        #expect(state["roi/owner/rep-a/2026-02"] == nil)  // roi is for all and lead_source only
    }

    @Test func retentionFollowsCustomersAcrossBoundaries() {
        #expect(field("customer_retention_rate/all/%2A/2026-02", "value") == "null")
        #expect(field("customer_retention_rate/all/%2A/2026-02", "end") == "1")
        #expect(field("customer_retention_rate/all/%2A/2026-02", "new") == "1")
        #expect(state["customer_retention_rate/all/%2A/all"] == nil)
        let churned = publishedState(
            MetricDefinitionTests.events + [account("acme", v: 1, status: "churned", at: "2026-04-15T00:00:00Z")]
        )
        func f(_ topic: String, _ name: String) -> String? {
            (try? JSONParser.parse(Array((churned[topic] ?? "").utf8)))?[name].map { v in
                if case .double(let d) = v { return String(d) }
                if case .int(let i) = v { return String(i) }
                return "\(v)"
            }
        }
        #expect(f("customer_retention_rate/all/%2A/2026-03", "value") == "1.0")
        #expect(f("customer_retention_rate/all/%2A/2026-04", "value") == "0.0")
        #expect(f("customer_retention_rate/all/%2A/2026-Q2", "start") == "1")
        #expect(f("customer_retention_rate/all/%2A/2026-Q2", "end") == "0")
        #expect(churned["customer_retention_rate/all/%2A/2026-05"] == nil)
    }

    @Test func deletingTheOnlyDealRemovesItsSeries() {
        let removed = publishedState(MetricDefinitionTests.events + [deletion("D3", v: 2)])
        #expect(removed["new_opportunities/all/%2A/2026-02"] == nil)
        #expect(removed["new_opportunities/all/%2A/2026-01"] != nil)
    }
}
