import DealModel
import DealstreamTestSupport
import Testing

@testable import Metrics

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
            #expect(differing.isEmpty, "shards \(shards): \(differing.prefix(3)) e.g. \(differing.first.map { "\(actual[$0] ?? "missing") vs \(expected[$0]!)" } ?? "")")
        }
    }
}
