import DealModel
import DealstreamTestSupport
import PipelineMetrics
import Testing
import Wire
import Worker

/// A worker's engine fed fact batches as the daemon sends them (encoded, decoded, in
/// chunks, with the string table streamed alongside) publishes what the in-process
/// reference publishes.
struct MetricShardTests {
    /// Every family's shard, fed the daemon's batches through the wire encoding.
    private func shardsState(_ events: [String], batchSize: Int) throws -> [String: String] {
        var store = RecordStore(model: harnessModel)
        let decoder = EventDecoder(model: harnessModel)
        var shards = MetricFamily.allCases.map {
            MetricShard(family: $0, model: harnessModel, assignment: ShardAssignment(shard: 0, shards: 1))
        }
        var state: [String: String] = [:]
        var stringsSent = 0
        var pending: [FactChange] = []
        var logSeq: UInt64 = 0
        func send() throws {
            let strings = store.strings.strings
            for i in shards.indices {
                let projection = FamilyProjection(family: shards[i].family, model: harnessModel)
                let header = WorkerLink.FactBatch.encodeHeader(
                    logSeq: logSeq,
                    wantsResult: true,
                    firstStringID: UInt32(stringsSent),
                    strings: strings[stringsSent...]
                )
                let batch = try WorkerLink.FactBatch.decode(
                    header: header,
                    changes: WorkerLink.FactBatch.encodeChanges(pending.compactMap(projection.project))
                )
                try shards[i].apply(batch)
                for rendered in shards[i].flush() {
                    let topic = String(decoding: rendered.topic, as: UTF8.self)
                    state[topic] = rendered.payload.isEmpty ? nil : String(decoding: rendered.payload, as: UTF8.self)
                }
            }
            stringsSent = strings.count
            pending.removeAll()
        }
        for text in events {
            guard case .success(let event) = decoder.decode(json: Array(text.utf8)) else { continue }
            let resolution = store.apply(event)
            if resolution.changedState { logSeq += 1 }
            if let change = resolution.change { pending.append(change) }
            if pending.count >= batchSize { try send() }
        }
        try send()
        return state
    }

    @Test(arguments: [1, 13, 500])
    func batchesEqualTheReference(batchSize: Int) throws {
        let events = Scenario.events(seed: 42, deals: 120)
        let expected = publishedState(events)
        let got = try shardsState(events, batchSize: batchSize)
        #expect(!expected.isEmpty)
        #expect(got.count == expected.count)
        for (topic, payload) in expected {
            #expect(got[topic] == payload, "\(topic)")
        }
    }

    @Test func aBatchOutOfStepWithTheStringTableIsRefused() throws {
        var shard = MetricShard(
            family: .revenue,
            model: harnessModel,
            assignment: ShardAssignment(shard: 0, shards: 1)
        )
        let batch = WorkerLink.FactBatch(logSeq: 1, wantsResult: true, firstStringID: 5, strings: ["x"], changes: [])
        #expect(throws: BinaryDecodingError.self) { try shard.apply(batch) }
    }
}
