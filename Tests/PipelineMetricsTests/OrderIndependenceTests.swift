import DealModel
import DealstreamTestSupport
import Testing

@testable import PipelineMetrics

/// METRICS.md: the same events in any order, with any duplicates, on any number of
/// shards give the same published state.
struct OrderIndependenceTests {
    @Test(arguments: [1, 2, 3] as [UInt64])
    func shuffledDuplicatedAndShardedGiveTheSameState(seed: UInt64) {
        let events = Scenario.events(seed: seed, deals: 150)
        let expected = publishedState(events, shards: 1, flushEvery: 1_000_000)
        #expect(expected.count > 500)
        var rng = SplitMix64(state: seed &* 31)
        for shards in [1, 2, 3] {
            var shuffled = events + events.filter { _ in Int.random(in: 0..<5, using: &rng) == 0 }
            shuffled.shuffle(using: &rng)
            let actual = publishedState(shuffled, shards: shards, flushEvery: Int.random(in: 1...50, using: &rng))
            #expect(actual.count == expected.count, "shards \(shards)")
            let differing = expected.keys.filter { actual[$0] != expected[$0] }.sorted()
            #expect(
                differing.isEmpty,
                "shards \(shards): \(differing.prefix(3)) e.g. \(differing.first.map { "\(actual[$0] ?? "missing") vs \(expected[$0]!)" } ?? "")"
            )
        }
    }

    /// The daemon sends each family only its projection of the facts, and nothing when
    /// that projection did not change: the series must be exactly those of full facts.
    @Test(arguments: [4, 5] as [UInt64])
    func familyProjectionsGiveTheSameState(seed: UInt64) {
        let events = Scenario.events(seed: seed, deals: 200)
        let full = publishedState(events, shards: 2, flushEvery: 5)
        let projected = publishedState(events, shards: 2, flushEvery: 5, projected: true)
        #expect(full.count > 500)
        let differing = full.keys.filter { projected[$0] != full[$0] }.sorted()
        #expect(projected.count == full.count)
        #expect(
            differing.isEmpty,
            "\(differing.prefix(3)) e.g. \(differing.first.map { "\(projected[$0] ?? "missing") vs \(full[$0]!)" } ?? "")"
        )
    }

    /// A stage move of an open deal cannot move win rate, revenue or retention: the
    /// projection drops it for them, and keeps it for stage conversion.
    @Test func projectionDropsChangesAFamilyCannotSee() {
        let model = harnessModel
        let open = DealFacts(
            source: 1,
            pipeline: 2,
            owner: 3,
            team: 4,
            leadSource: 5,
            account: 6,
            status: .open,
            pipelineIndex: 0,
            furthest: 1,
            amount: 100,
            createdAt: Instant(nanoseconds: 0),
            closedAt: nil
        )
        var moved = open
        moved.furthest = 2
        let change = FactChange.deal(old: open, new: moved)
        #expect(FamilyProjection(family: .winRate, model: model).project(change) == nil)
        #expect(FamilyProjection(family: .revenue, model: model).project(change) == nil)
        #expect(FamilyProjection(family: .customerRetentionRate, model: model).project(change) == nil)
        guard case .deal(let old, let new)? = FamilyProjection(family: .stageConversion, model: model).project(change)
        else {
            Issue.record("stage conversion must see a stage move")
            return
        }
        #expect(old?.furthest == 1 && new?.furthest == 2 && new?.amount == 0)
    }
}
