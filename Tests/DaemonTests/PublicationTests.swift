import DealstreamTestSupport
import PipelineMetrics
import Testing
import Wire

@testable import Daemon

/// What a publication round does with the workers' results: coalescing, removals,
/// stamping, snapshots, and the saved state a restart serves.
struct PublicationTests {
    private let slot = Slot(family: .revenue, shard: 0)
    private func topic(_ s: String) -> TopicKey { TopicKey(Array(s.utf8)) }
    private func payload(_ v: Int) -> [UInt8] { Array("{\"metric\":\"revenue\",\"value\":\(v)}".utf8) }

    @Test func mergedKeepsFirstOrderAndLatestValuesAndFullness() {
        let results: [WorkerRegistry.Result] = [
            .init(logSeq: 3, isFull: true, series: [(topic("a"), payload(1)), (topic("b"), payload(2))]),
            .init(logSeq: 5, isFull: false, series: [(topic("c"), payload(3)), (topic("a"), payload(4))]),
            .init(logSeq: 9, isFull: false, series: [(topic("b"), [])]),
        ]
        let merged = WorkerRegistry.Result.merged(results)
        #expect(merged.logSeq == 9)
        #expect(merged.isFull)
        #expect(merged.series.map(\.topic) == [topic("a"), topic("b"), topic("c")])
        #expect(merged.series.map(\.payload) == [payload(4), [], payload(3)])
    }

    @Test func aRoundStampsEachChangeOnceAndRemovesWithItsLabels() {
        var state = PublishedState()
        var sent: [[[UInt8]]] = []
        state.publish(round: [(topic("a"), payload(1), slot), (topic("b"), payload(2), slot)], logSeq: 4) {
            sent.append($0)
        }
        state.publish(round: [(topic("a"), [], slot), (topic("zzz"), [], slot)], logSeq: 6) { sent.append($0) }
        let texts = sent.map { $0.map { String(decoding: $0, as: UTF8.self) } }
        #expect(
            texts == [
                ["a", #"{"metric":"revenue","value":1,"seq":1,"log_seq":4}"#],
                ["b", #"{"metric":"revenue","value":2,"seq":2,"log_seq":4}"#],
                ["_progress", #"{"seq":2,"log_seq":4}"#],
                // A removal of a series never published ("zzz") sends nothing.
                ["a", #"{"metric":"revenue","value":null,"removed":true,"seq":3,"log_seq":6}"#],
                ["_progress", #"{"seq":3,"log_seq":6}"#],
            ]
        )
        #expect(state.snapshot(prefix: []).map(\.topic) == [Array("b".utf8)])
        #expect(state.topics(of: slot) == [topic("b")])
    }

    @Test func theSavedStateComesBackOnlyForTheSameWorkerLayout() throws {
        var state = PublishedState()
        state.publish(round: [(topic("revenue/all/*/all"), payload(7), slot)], logSeq: 2) { _ in }
        let bytes = state.encoded(slots: [slot])
        let restored = try PublishedState(encoded: bytes, slots: [slot])
        #expect(restored.snapshot(prefix: []).map(\.payload) == state.snapshot(prefix: []).map(\.payload))
        #expect(restored.seq == 1 && restored.logSeq == 2)
        #expect(throws: (any Error).self) {
            try PublishedState(encoded: bytes, slots: [slot, Slot(family: .revenue, shard: 1)])
        }
    }
}
