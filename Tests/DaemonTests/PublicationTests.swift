import DealstreamTestSupport
import PipelineMetrics
import Testing
import Wire

@testable import Daemon

/// What a publication round does with the workers' results: coalescing, removals,
/// stamping, snapshots, and the saved state a restart serves.
struct PublicationTests {
    private let slot = SeriesOwner(family: .revenue, partition: 0)
    private func topic(_ s: String) -> TopicKey { TopicKey(Array(s.utf8)) }
    private func payload(_ v: Int) -> [UInt8] { Array("{\"metric\":\"revenue\",\"value\":\(v)}".utf8) }

    private func series(_ t: String, _ p: [UInt8]) -> WorkerRegistry.Series {
        .init(topic: topic(t), payload: p, partition: 0)
    }

    @Test func mergedKeepsFirstOrderAndLatestValues() {
        let results: [WorkerRegistry.Result] = [
            .init(logSeq: 3, series: [series("a", payload(1)), series("b", payload(2))]),
            .init(logSeq: 5, series: [series("c", payload(3)), series("a", payload(4))]),
            .init(logSeq: 9, series: [series("b", [])]),
        ]
        let merged = WorkerRegistry.Result.merged(results)
        #expect(merged.logSeq == 9)
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
        #expect(state.topics(of: .revenue, partitions: PartitionSet(count: 4, members: [0])) == [topic("b")])
        #expect(state.topics(of: .revenue, partitions: PartitionSet(count: 4, members: [1])).isEmpty)
    }

    /// A partition's new owner reports its whole state at a switch: values subscribers have
    /// already seen are not sent again (no second message for a series at one log_seq).
    @Test func theSameValueAgainIsNotPublishedAgain() {
        var state = PublishedState()
        var sent: [[[UInt8]]] = []
        state.publish(round: [(topic("a"), payload(1), slot)], logSeq: 4) { sent.append($0) }
        let other = SeriesOwner(family: .revenue, partition: 9)
        state.publish(round: [(topic("a"), payload(1), other), (topic("b"), payload(2), other)], logSeq: 4) {
            sent.append($0)
        }
        let topics = sent.map { String(decoding: $0[0], as: UTF8.self) }
        #expect(topics == ["a", "_progress", "b", "_progress"])
        #expect(state.seq == 2)
        #expect(
            state.topics(of: .revenue, partitions: PartitionSet(count: 16, members: [9])) == [topic("a"), topic("b")]
        )
        state.publish(round: [(topic("a"), payload(3), other)], logSeq: 5) { sent.append($0) }
        #expect(sent.count == 6, "a changed value is published")
    }

    @Test func theSavedStateComesBackOnlyForTheSameFamiliesAndPartitionCount() throws {
        var state = PublishedState()
        state.publish(round: [(topic("revenue/all/*/all"), payload(7), slot)], logSeq: 2) { _ in }
        let layout = PublishedState.Layout(families: [.revenue], partitions: 64)
        let bytes = state.encoded(layout: layout)
        let restored = try PublishedState(encoded: bytes, layout: layout)
        #expect(restored.snapshot(prefix: []).map(\.payload) == state.snapshot(prefix: []).map(\.payload))
        #expect(restored.seq == 1 && restored.logSeq == 2)
        #expect(throws: (any Error).self) {
            try PublishedState(encoded: bytes, layout: .init(families: [.revenue], partitions: 32))
        }
        #expect(throws: (any Error).self) {
            try PublishedState(encoded: bytes, layout: .init(families: [.revenue, .roi], partitions: 64))
        }
    }
}
