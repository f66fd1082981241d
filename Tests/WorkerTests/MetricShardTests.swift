import DealModel
import DealstreamTestSupport
import PipelineMetrics
import Testing
import Wire
import Worker

/// A worker's engines fed fact batches as the daemon sends them (encoded, decoded, in
/// chunks, with the string table streamed alongside, rebuilt lanes and released
/// partitions) publish what the in-process reference publishes.
struct MetricShardTests {
    /// The daemon's side, played in process: the store, positions, and what was sent.
    private struct Feed {
        var store = RecordStore(model: harnessModel)
        let decoder = EventDecoder(model: harnessModel)
        var logSeq: UInt64 = 0
        var pending: [FactChange] = []

        mutating func take(_ text: String) {
            guard case .success(let event) = decoder.decode(json: Array(text.utf8)) else { return }
            let resolution = store.apply(event)
            if resolution.changedState { logSeq += 1 }
            if let change = resolution.change { pending.append(change) }
        }
    }

    /// One worker session: its shard, the strings sent to it, what it defined in its
    /// results, and what it published (read as the daemon reads it, rendered without the
    /// stamp as `Topics.payload` renders).
    private struct Session {
        var shard: MetricShard
        var stringsSent = 0
        var state: [String: String] = [:]
        var nextLane: UInt32 = 0
        var schema = WorkerLink.ResultSchema()
        var topics: [[UInt8]] = []

        init(_ family: MetricFamily) { shard = MetricShard(family: family, model: harnessModel) }

        mutating func header(logSeq: UInt64, lane: UInt32, last: Bool, strings: [String]) -> [UInt8] {
            defer { stringsSent = max(stringsSent, strings.count) }
            return WorkerLink.FactBatch.encodeHeader(
                logSeq: logSeq,
                wantsResult: lane == WorkerLink.everyLane || last,
                isLastChunk: last,
                lane: lane,
                firstStringID: UInt32(stringsSent),
                strings: stringsSent < strings.count ? strings[stringsSent...] : []
            )
        }

        /// ASSIGN and the whole rebuild of `partitions` from the feed's facts now, in chunks of `chunk`.
        mutating func rebuild(_ partitions: [Int], from feed: Feed, chunk: Int) throws {
            let lane = nextLane
            nextLane += 1
            try shard.assign(.init(lane: lane, logSeq: feed.logSeq, partitionCount: 64, partitions: partitions))
            let projection = FamilyProjection(family: shard.family, model: harnessModel)
            let facts = feed.store.allFacts().compactMap(projection.project)
            var start = 0
            repeat {
                let end = min(start + chunk, facts.count)
                let h = header(
                    logSeq: feed.logSeq,
                    lane: lane,
                    last: end == facts.count,
                    strings: feed.store.strings.strings
                )
                try shard.apply(try .decode(header: h, changes: WorkerLink.FactBatch.encodeChanges(facts[start..<end])))
                start = end
            } while start < facts.count
        }

        mutating func live(_ changes: [FactChange], feed: Feed) throws {
            let projection = FamilyProjection(family: shard.family, model: harnessModel)
            let h = header(
                logSeq: feed.logSeq,
                lane: WorkerLink.everyLane,
                last: false,
                strings: feed.store.strings.strings
            )
            try shard.apply(
                try .decode(
                    header: h,
                    changes: WorkerLink.FactBatch.encodeChanges(changes.compactMap(projection.project))
                )
            )
        }

        /// Applies a flush to `state`; returns the lanes it made whole, and the topics it reported.
        mutating func flush() throws -> (lanes: [UInt32], series: [String]) {
            let (body, complete) = shard.flush()
            let decoded = try schema.decode(body)
            schema.adopt(decoded)
            for s in decoded.series { #expect(!topics.contains(s.topic), "a topic sent twice in one session") }
            topics += decoded.series.map(\.topic)
            var reported: [String] = []
            for entry in decoded.entries {
                let topic = String(decoding: topics[Int(entry.number)], as: UTF8.self)
                reported.append(topic)
                guard entry.offset != WorkerLink.DecodedResult.removed else {
                    #expect(state[topic] != nil, "removal of \(topic), which is not there")
                    state[topic] = nil
                    continue
                }
                var payload = try #require(Topics.labels(ofTopic: topics[Int(entry.number)]))
                let fields = Topics.PayloadFields(schema.shape(of: entry.number))
                decoded.words.withUnsafeBufferPointer { words in
                    let start = Int(entry.offset)
                    Topics.appendFields(
                        fields,
                        UnsafeBufferPointer(rebasing: words[start..<(start + fields.count)]),
                        to: &payload
                    )
                }
                payload.append(UInt8(ascii: "}"))
                state[topic] = String(decoding: payload, as: UTF8.self)
            }
            #expect(Set(reported).count == reported.count, "a series twice in one result")
            return (complete, reported)
        }
    }

    private static func partition(_ topic: String) -> Int {
        let parts = Topics.seriesParts(Array(topic.utf8))!
        return Partitioning.partition(of: parts.dimension, key: parts.key, count: 64)
    }

    @Test(arguments: [1, 13, 500])
    func batchesEqualTheReference(batchSize: Int) throws {
        let events = Scenario.events(seed: 42, deals: 120)
        let expected = publishedState(events)
        var feed = Feed()
        var sessions = MetricFamily.allCases.map(Session.init)
        for i in sessions.indices {
            try sessions[i].rebuild(Array(0..<64), from: feed, chunk: 100)
            #expect(try sessions[i].flush().lanes == [0])
        }
        for text in events {
            feed.take(text)
            if feed.pending.count >= batchSize {
                for i in sessions.indices {
                    try sessions[i].live(feed.pending, feed: feed)
                    _ = try sessions[i].flush()
                }
                feed.pending.removeAll()
            }
        }
        for i in sessions.indices {
            try sessions[i].live(feed.pending, feed: feed)
            _ = try sessions[i].flush()
        }
        let got = sessions.reduce(into: [String: String]()) { $0.merge($1.state) { a, _ in a } }
        #expect(!expected.isEmpty)
        #expect(got.count == expected.count)
        for (topic, payload) in expected { #expect(got[topic] == payload, "\(topic)") }
    }

    /// A move as the daemon makes it, in every family: A serves everything; B is assigned
    /// half the partitions at one position, gets two live batches (which wait in its lane),
    /// then the rebuild of the facts at the assign position, then more live batches; A
    /// releases that half once B's lane is whole. A's series of the half it kept and B's
    /// of the half it took equal the reference.
    @Test(arguments: MetricFamily.allCases)
    func aPartitionMoveMidStreamEqualsTheReference(family: MetricFamily) throws {
        let events = Scenario.events(seed: 7, deals: 150)
        var feed = Feed()
        var a = Session(family)
        var b = Session(family)
        try a.rebuild(Array(0..<64), from: feed, chunk: 50)
        _ = try a.flush()
        let moved = Array(stride(from: 0, to: 64, by: 2))
        var assignedAt: Feed?
        var waited = 0
        for (n, text) in events.enumerated() {
            feed.take(text)
            guard n % 9 == 0 || n == events.count - 1 else { continue }
            try a.live(feed.pending, feed: feed)
            _ = try a.flush()
            if n >= events.count / 3 && assignedAt == nil {
                assignedAt = feed
                try b.shard.assign(.init(lane: 0, logSeq: feed.logSeq, partitionCount: 64, partitions: moved))
            } else if let snapshot = assignedAt, waited < 2 {
                try b.live(feed.pending, feed: feed)
                #expect(try b.flush().series.isEmpty, "a lane being rebuilt publishes nothing")
                waited += 1
                if waited == 2 {
                    let projection = FamilyProjection(family: family, model: harnessModel)
                    let facts = snapshot.store.allFacts().compactMap(projection.project)
                    var start = 0
                    repeat {
                        let end = min(start + 40, facts.count)
                        let h = b.header(
                            logSeq: snapshot.logSeq,
                            lane: 0,
                            last: end == facts.count,
                            strings: snapshot.store.strings.strings
                        )
                        let chunk = WorkerLink.FactBatch.encodeChanges(facts[start..<end])
                        try b.shard.apply(try .decode(header: h, changes: chunk))
                        start = end
                    } while start < facts.count
                    #expect(try b.flush().lanes == [0], "the lane is whole after its last chunk")
                    a.shard.release(moved)
                }
            } else if assignedAt != nil {
                try b.live(feed.pending, feed: feed)
                _ = try b.flush()
            }
            feed.pending.removeAll()
        }
        var got: [String: String] = [:]
        for (topic, payload) in a.state where !moved.contains(Self.partition(topic)) { got[topic] = payload }
        for (topic, payload) in b.state {
            #expect(moved.contains(Self.partition(topic)), "B publishes only what it was given: \(topic)")
            got[topic] = payload
        }
        let want = publishedState(events).filter { topic, _ in
            family.publishes(metricSegment: String(topic.prefix { $0 != "/" }))
        }
        #expect(!want.isEmpty)
        #expect(got.count == want.count, "\(family): \(got.count) series, reference \(want.count)")
        for (topic, payload) in want { #expect(got[topic] == payload, "\(topic)") }
    }

    @Test func aBatchOutOfStepWithTheStringTableIsRefused() throws {
        var shard = MetricShard(family: .revenue, model: harnessModel)
        let batch = WorkerLink.FactBatch(logSeq: 1, wantsResult: true, firstStringID: 5, strings: ["x"], changes: [])
        #expect(throws: BinaryDecodingError.self) { try shard.apply(batch) }
    }
}
