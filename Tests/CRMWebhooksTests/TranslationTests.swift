import CRMWebhooks
import DealstreamTestSupport
import Foundation
import Testing

/// Each vendor's fixture sequence (creation → stage changes → amount → won/lost →
/// deletion, with batches, a late delivery and a retry) translates to exactly the events
/// in its `expected.ndjson`.
struct TranslationTests {
    @Test(arguments: Vendor.allCases)
    func sequenceTranslatesToTheExpectedEvents(_ vendor: Vendor) throws {
        let bodies = try FixtureFiles.sequence(vendor).map(\.body)
        let (events, _) = try translateSequence(vendor, bodies: bodies, mapping: try FixtureFiles.mapping(vendor))
        // RECORD_EXPECTED=1 rewrites expected.ndjson (review the diff before committing it)
        // and then fails, so a run can never pass by rewriting its own expectation.
        let environment = ProcessInfo.processInfo.environment
        if environment["RECORD_EXPECTED"] != nil {
            try #require(environment["CI"] == nil, "RECORD_EXPECTED is refused in CI")
            try Data((events.joined(separator: "\n") + "\n").utf8)
                .write(to: FixtureFiles.fixtures.appendingPathComponent("\(vendor.rawValue)/expected.ndjson"))
            Issue.record(
                "expected.ndjson of \(vendor.rawValue) rewritten: review the diff, then run without RECORD_EXPECTED"
            )
            return
        }
        #expect(events == (try FixtureFiles.expected(vendor)))
    }
}
