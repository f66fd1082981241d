import DealModel
import DealstreamTestSupport
import PipelineMetrics
import Testing
import Wire
import Worker

@testable import Daemon

/// What a publication round does with the workers' results: coalescing, removals,
/// stamping, snapshots, the saved state a restart serves, and that what the daemon renders
/// is byte for byte the reference payload (`Topics.payload`) with its stamp.
struct PublicationTests {
    private let catalog = SeriesCatalog(partitionCount: 64)
    private static let revenueShape = MetricName.revenue.shape

    /// Catalog id of `revenue/owner/<key>/all`.
    private func id(_ key: String) -> UInt32 {
        catalog.series(topic: Array("revenue/owner/\(key)/all".utf8), family: .revenue)!
    }
    private func partition(_ id: UInt32) -> Int { catalog.owners[Int(id)].partition }

    /// A result of revenue series: a value (revenue, count) or a removal (nil) for each key.
    private func result(_ logSeq: UInt64, _ values: [(String, Double?)]) -> WorkerRegistry.Result {
        let shape = catalog.shape(Self.revenueShape)
        var r = WorkerRegistry.Result(logSeq: logSeq, series: [])
        for (key, value) in values {
            let series = id(key)
            guard let value else {
                r.series.append(.removal(series, partition: partition(series)))
                continue
            }
            r.series.append(
                .init(id: series, partition: partition(series), shape: shape, fields: 2, offset: r.words.count)
            )
            r.words += [FieldWord.number(value), FieldWord.count(Int(value))]
        }
        return r
    }

    private func publish(_ state: inout PublishedState, _ r: WorkerRegistry.Result, into sent: inout [String]) throws {
        try state.apply(r, logSeq: r.logSeq).render { topic, payload in
            sent.append(String(decoding: topic, as: UTF8.self) + " " + String(decoding: payload, as: UTF8.self))
        }
    }

    @Test func mergedKeepsFirstOrderAndLatestValues() {
        let merged = WorkerRegistry.Result.merged([
            result(3, [("a", 1), ("b", 2)]), result(5, [("c", 3), ("a", 4)]), result(9, [("b", nil)]),
        ])
        #expect(merged.logSeq == 9)
        #expect(merged.series.map(\.id) == [id("a"), id("b"), id("c")])
        #expect(merged.series.map(\.isRemoval) == [false, true, false])
        #expect(merged.words == [FieldWord.number(4), FieldWord.count(4), FieldWord.number(3), FieldWord.count(3)])
        #expect(merged.series[2].offset == 2)
    }

    @Test func aRoundStampsEachChangeOnceAndRemovesWithItsLabels() throws {
        var state = PublishedState(catalog: catalog)
        var sent: [String] = []
        try publish(&state, result(4, [("a", 1.5), ("b", 2)]), into: &sent)
        // A removal of a series never published ("zzz") sends nothing.
        try publish(&state, result(6, [("a", nil), ("zzz", nil)]), into: &sent)
        let labels = { (key: String) in #"{"metric":"revenue","dimension":"owner","key":"\#(key)","period":"all""# }
        #expect(
            sent == [
                #"revenue/owner/a/all \#(labels("a")),"value":1.5,"count":1,"seq":1,"log_seq":4}"#,
                #"revenue/owner/b/all \#(labels("b")),"value":2.0,"count":2,"seq":2,"log_seq":4}"#,
                #"_progress {"seq":2,"log_seq":4}"#,
                #"revenue/owner/a/all \#(labels("a")),"value":null,"removed":true,"seq":3,"log_seq":6}"#,
                #"_progress {"seq":3,"log_seq":6}"#,
            ]
        )
        let snapshot = state.snapshot(prefix: [])
        #expect(snapshot.map { String(decoding: $0.topic, as: UTF8.self) } == ["revenue/owner/b/all"])
        #expect(sent[1].hasSuffix(String(decoding: snapshot[0].payload, as: UTF8.self)), "the snapshot is the update")
        let b = id("b")
        #expect(
            state.topics(of: .revenue, partitions: PartitionSet(count: 64, members: [partition(b)])) == [
                b: partition(b)
            ]
        )
        #expect(state.topics(of: .winRate, partitions: PartitionSet(count: 64, members: Array(0..<64))).isEmpty)
    }

    /// A partition's new owner reports its whole state at a switch: values subscribers have
    /// already seen are not sent again (no second message for a series at one log_seq).
    @Test func theSameValueAgainIsNotPublishedAgain() throws {
        var state = PublishedState(catalog: catalog)
        var sent: [String] = []
        try publish(&state, result(4, [("a", 1)]), into: &sent)
        try publish(&state, result(4, [("a", 1), ("b", 2)]), into: &sent)
        #expect(
            sent.map { $0.prefix { $0 != " " } } == [
                "revenue/owner/a/all", "_progress", "revenue/owner/b/all", "_progress",
            ]
        )
        #expect(state.seq == 2)
        try publish(&state, result(5, [("a", 3)]), into: &sent)
        #expect(sent.count == 6, "a changed value is published")
        // −0 is 0, and every non-finite number is null: equal words, equal text.
        try publish(&state, result(6, [("a", 0)]), into: &sent)
        try publish(&state, result(7, [("a", -0.0)]), into: &sent)
        #expect(sent.count == 9 && state.seq == 4)
    }

    @Test func theSavedStateComesBackOnlyForTheSameFamiliesAndPartitionCount() throws {
        var state = PublishedState(catalog: catalog)
        var sent: [String] = []
        try publish(&state, result(2, [("a", 7), ("b", 8)]), into: &sent)
        try publish(&state, result(3, [("b", 9)]), into: &sent)
        let layout = PublishedState.Layout(families: [.revenue], partitions: 64)
        let bytes = state.encoded(layout: layout)
        let fresh = SeriesCatalog(partitionCount: 64)
        let restored = try PublishedState(encoded: bytes, layout: layout, catalog: fresh)
        #expect(restored.snapshot(prefix: []).map(\.payload) == state.snapshot(prefix: []).map(\.payload))
        #expect(restored.seq == 3 && restored.logSeq == 3 && restored.count == 2)
        #expect(throws: (any Error).self) {
            try PublishedState(encoded: bytes, layout: .init(families: [.revenue], partitions: 32), catalog: fresh)
        }
        #expect(throws: (any Error).self) {
            try PublishedState(
                encoded: bytes,
                layout: .init(families: [.revenue, .roi], partitions: 64),
                catalog: fresh
            )
        }
        var old = BinaryWriter()
        old.u32(1)
        old.string(layout.description)
        #expect(throws: (any Error).self) { try PublishedState(encoded: old.bytes, layout: layout, catalog: fresh) }
    }

    /// Every family's workers (`MetricShard`, the real encoding) fed the generated scenario in
    /// batches, their bodies read as the link server reads them and published, next to the
    /// reference engines rendered by `Topics.payload`: each round, the daemon publishes
    /// exactly the series the reference changed, each byte for byte the reference payload
    /// with `,"seq":…,"log_seq":…` (a removal: the labels of its last payload with the
    /// removal fields), and the final snapshot is the last update of every series.
    @Test(arguments: [1, 40])
    func theDaemonRendersTheReferencePayloadsOfEveryFamily(batch: Int) throws {
        let events = Scenario.events(seed: 5, deals: 160)
        var store = RecordStore(model: harnessModel)
        let decoder = EventDecoder(model: harnessModel)
        let families = MetricFamily.allCases
        let all = PartitionSet(count: 64, members: Array(0..<64))
        var shards = families.map { MetricShard(family: $0, model: harnessModel) }
        var tables = [SessionSeries](repeating: SessionSeries(), count: families.count)
        var engines = families.map { MetricEngine(family: $0, model: harnessModel, assignment: all) }
        var sinks = [ReferenceSink](repeating: ReferenceSink(), count: families.count)
        for i in shards.indices {
            try shards[i].assign(.init(lane: 0, logSeq: 0, partitionCount: 64, partitions: Array(0..<64)))
            try shards[i].apply(
                .init(
                    logSeq: 0,
                    wantsResult: true,
                    isLastChunk: true,
                    lane: 0,
                    firstStringID: 0,
                    strings: [],
                    changes: []
                )
            )
        }
        var state = PublishedState(catalog: catalog)
        var reference: [String: String] = [:]
        var latest: [String: String] = [:]
        var removals = 0
        var stringsSent = 0
        var logSeq: UInt64 = 0
        var pending: [FactChange] = []
        let stamp = #/,"seq":(\d+),"log_seq":(\d+)\}$/#
        func round() throws {
            let strings = store.strings.strings
            for i in shards.indices {
                let projected = pending.compactMap(FamilyProjection(family: families[i], model: harnessModel).project)
                try shards[i].apply(
                    .init(
                        logSeq: logSeq,
                        wantsResult: true,
                        firstStringID: UInt32(stringsSent),
                        strings: Array(strings[stringsSent...]),
                        changes: projected
                    )
                )
                for change in projected { engines[i].apply(change, strings: store.strings, allKey: store.allKey) }
                sinks[i].updates = []
                engines[i].flush(into: &sinks[i])
                var want: [String: String] = [:]
                for (id, fields) in sinks[i].updates {
                    let topic = String(
                        decoding: Topics.topic(id, strings: store.strings, model: harnessModel),
                        as: UTF8.self
                    )
                    if let fields {
                        let payload = Topics.payload(id, fields: fields, strings: store.strings, model: harnessModel)
                        want[topic] = String(decoding: payload.dropLast(), as: UTF8.self)
                    } else {
                        let last = try #require(reference[topic], "removal of \(topic), never published")
                        want[topic] =
                            String(last[..<last.firstRange(of: #","value":"#)!.lowerBound])
                            + #","value":null,"removed":true"#
                    }
                }
                let read = try tables[i].read(
                    shards[i].flush().body,
                    logSeq: logSeq,
                    family: families[i],
                    held: all,
                    catalog: catalog
                )
                #expect(read.rejected == 0)
                var got: [String: String] = [:]
                try state.apply(read.result, logSeq: logSeq).render { topic, payload in
                    let t = String(decoding: topic, as: UTF8.self)
                    guard t != "_progress" else { return }
                    #expect(got[t] == nil, "\(t) twice in one round")
                    got[t] = String(decoding: payload, as: UTF8.self)
                }
                #expect(Set(got.keys) == Set(want.keys), "\(families[i]) at \(logSeq)")
                for (topic, payload) in got {
                    let m = try #require(payload.firstMatch(of: stamp), "\(payload)")
                    #expect(m.output.2 == "\(logSeq)")
                    #expect(payload == (want[topic] ?? "") + m.output.0, "\(topic)")
                    if payload.contains(#","removed":true,"#) {
                        removals += 1
                        latest[topic] = nil
                        reference[topic] = nil
                    } else {
                        latest[topic] = payload
                        reference[topic] = want[topic]! + "}"
                    }
                }
            }
            stringsSent = strings.count
            pending = []
        }
        for (n, text) in events.enumerated() {
            guard case .success(let event) = decoder.decode(json: Array(text.utf8)) else { continue }
            let resolution = store.apply(event)
            if resolution.changedState { logSeq += 1 }
            if let change = resolution.change { pending.append(change) }
            if n % batch == 0 { try round() }
        }
        try round()
        #expect(removals > 0, "the scenario removes series")
        let expected = publishedState(events)
        #expect(!expected.isEmpty && reference == expected, "the reference run equals the harness's")
        let snapshot = state.snapshot(prefix: [])
        #expect(snapshot.count == latest.count)
        for (topic, payload) in snapshot {
            #expect(latest[String(decoding: topic, as: UTF8.self)] == String(decoding: payload, as: UTF8.self))
        }
    }
}
