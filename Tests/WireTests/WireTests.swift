import DealModel
import PipelineMetrics
import Testing

@testable import Wire

struct IngestRequestTests {
    let json = Array("application/json".utf8)
    let events = Array("EVENTS".utf8)

    private func parse(_ frames: [[UInt8]]) -> Result<IngestRequest, IngestRequestError> {
        IngestProtocol.parse(frames, maxBatchEvents: 3, maxFrameBytes: 16)
    }

    @Test func acceptsPingAndEvents() {
        #expect(parse([Array("PING".utf8), [1]]) == .success(.ping(requestID: [1])))
        #expect(
            parse([events, [7], json, [1], [2]])
                == .success(.events(requestID: [7], contentType: "application/json", events: [[1], [2]][...]))
        )
    }

    @Test(
        arguments: [
            ([], "empty request", [UInt8]()),
            ([Array("EVENTS".utf8)], "needs a request id", []),
            ([Array("EVENTS".utf8), [7]], "needs a content type", [7]),
            ([Array("EVENTS".utf8), [7], Array("application/json".utf8)], "no event", [7]),
            ([Array("EVENTS".utf8), [7], Array("text/csv".utf8), [1]], "unknown content type", [7]),
            (
                [Array("EVENTS".utf8), [UInt8](repeating: 1, count: 65), Array("application/json".utf8), [1]],
                "longer than 64", []
            ),
            ([Array("EVENTS".utf8), [7], Array("application/json".utf8), [1], [2], [3], [4]], "batch limit of 3", [7]),
            (
                [Array("EVENTS".utf8), [7], Array("application/json".utf8), [UInt8](repeating: 1, count: 17)],
                "over the limit of 16", [7]
            ),
            ([Array("EVENTZ\n".utf8), [7]], "unknown command", [7]),
        ] as [([[UInt8]], String, [UInt8])]
    )
    func refusesWhatIsNotARequest(_ frames: [[UInt8]], _ reason: String, _ id: [UInt8]) {
        guard case .failure(let error) = parse(frames) else {
            Issue.record("accepted \(frames)")
            return
        }
        #expect(error.reason.contains(reason), "\(error.reason)")
        #expect(error.requestID == id)
        #expect(!error.reason.contains("\n"))
    }
}

struct WireFormatTests {
    @Test func topicsArePercentEncodedPerSegment() {
        var strings = StringTable()
        let key = strings.intern("EMEA North/ü")
        let model = try! Model.parse(
            Array(
                #"{"fx":{"USD":1},"pipelines":{"Enterprise Sales":{"stages":["demo/trial","proposal:sent"],"qualified_stage":"demo/trial"}}}"#
                    .utf8
            )
        )
        let topic = Topics.topic(
            SeriesID(metric: .winRate, dimension: .team, key: key, period: .month(2026 * 12 + 10)),
            strings: strings,
            model: model
        )
        #expect(String(decoding: topic, as: UTF8.self) == "win_rate/team/EMEA%20North%2F%C3%BC/2026-11")
        let conversion = Topics.topic(
            SeriesID(metric: .stageConversion, dimension: .all, key: key, period: .all, pipeline: 0, fromStage: 0),
            strings: strings,
            model: model
        )
        #expect(
            String(decoding: conversion, as: UTF8.self)
                == "stage_conversion:Enterprise%20Sales:demo%2Ftrial:proposal%3Asent/all/EMEA%20North%2F%C3%BC/all"
        )
    }

    @Test func factBatchesRoundTrip() throws {
        let deal = DealFacts(
            source: 1,
            pipeline: 2,
            owner: 3,
            team: 4,
            leadSource: 5,
            account: DealFacts.noAccount,
            status: .won,
            pipelineIndex: 1,
            furthest: 3,
            amount: 1234.5,
            createdAt: Instant(nanoseconds: -5_000_000_000_000_000_000),
            closedAt: Instant(nanoseconds: 1)
        )
        let changes: [FactChange] = [
            .deal(old: nil, new: deal), .deal(old: deal, new: nil),
            .spend(old: SpendFacts(leadSource: 9, amount: 0, date: Instant(nanoseconds: 0)), new: nil),
            .account(old: nil, new: AccountFacts(source: 1, account: 7, churnedAt: nil)),
        ]
        let batch = WorkerLink.FactBatch(
            logSeq: 42,
            wantsResult: true,
            firstStringID: 3,
            strings: ["ü", ""],
            changes: changes
        )
        let frames = batch.encode()
        let decoded = try WorkerLink.FactBatch.decode(header: frames[0], changes: frames[1])
        #expect(
            decoded.logSeq == 42 && decoded.wantsResult && decoded.firstStringID == 3 && decoded.strings == ["ü", ""]
        )
        #expect(decoded.changes == changes)
        #expect(throws: BinaryDecodingError.self) {
            try WorkerLink.FactBatch.decode(header: frames[0], changes: Array(frames[1].dropLast()))
        }
    }

    /// The labels the daemon reads from a topic, the fields and the stamp are byte for byte
    /// `Topics.payload` (keys and stage names that need escaping and percent-encoding).
    @Test func labelsFromTheTopicFieldsAndStampAreThePayloadsBytes() throws {
        var strings = StringTable()
        let key = strings.intern("EMEA \"North\"/ü:1%")
        let model = try Model.parse(
            Array(
                #"{"fx":{"USD":1},"pipelines":{"Enterprise Sales":{"stages":["demo/trial","proposal:sent","won?"],"qualified_stage":"demo/trial"}}}"#
                    .utf8
            )
        )
        let ids = [
            SeriesID(metric: .winRate, dimension: .team, key: key, period: .month(2026 * 12 + 10)),
            SeriesID(metric: .stageConversion, dimension: .owner, key: key, period: .quarter(8106), fromStage: 1),
            SeriesID(metric: .dealSize, dimension: .all, key: key, period: .all),
        ]
        let samples: [UInt64] = [
            FieldWord.number(0.1 + 0.2), FieldWord.count(-3), FieldWord.number(nil), FieldWord.number(1e300),
            FieldWord.number(12), FieldWord.number(-0.0), FieldWord.count(Int.max),
        ]
        for id in ids {
            let shape = id.metric.shape
            let words = (0..<shape.fields.count).map { samples[($0 + Int(id.metric.rawValue)) % samples.count] }
            let fields = zip(shape.fields, words).map { ($0.name, FieldWord.value($1, $0.kind)) }
            let reference = Topics.payload(id, fields: fields, strings: strings, model: model)
            var rendered = try #require(Topics.labels(ofTopic: Topics.topic(id, strings: strings, model: model)))
            words.withUnsafeBufferPointer { Topics.appendFields(Topics.PayloadFields(shape), $0, to: &rendered) }
            Topics.appendStamp(seq: 18_446_744_073_709_551_615, logSeq: 0, to: &rendered)
            #expect(
                String(decoding: rendered, as: UTF8.self)
                    == String(decoding: reference.dropLast(), as: UTF8.self)
                    + #","seq":18446744073709551615,"log_seq":0}"#
            )
        }
        var state: UInt64 = 3
        func next() -> UInt64 {  // SplitMix64: reproducible
            state &+= 0x9E37_79B9_7F4A_7C15
            var z = state
            z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
            z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
            return z ^ (z >> 31)
        }
        var doubles: [Double] = [0, -0.0, 1, -1, 0.5, 1e15, -1e15, 999_999_999_999_999, 1e15 - 0.5, .nan, .infinity]
        for _ in 0..<20_000 {
            let bits = next()
            doubles.append(Double(bitPattern: bits))
            doubles.append(Double(Int64(bitPattern: bits) >> Int64(bits % 60)))
            doubles.append(Double(Int(bits % 2_000_000)) / 8 - 100_000)
        }
        for d in doubles {
            // The oracle: integral values below 1e15 as an integer and ".0", the others as
            // `description`, non-finite ones as null.
            let expected =
                !d.isFinite ? "null" : d == d.rounded() && abs(d) < 1e15 ? String(Int64(d)) + ".0" : d.description
            var text: [UInt8] = []
            JSONWriter.appendNumber(d, to: &text)
            #expect(String(decoding: text, as: UTF8.self) == expected, "\(d.bitPattern)")
            #expect(JSONWriter.number(d) == expected, "\(d.bitPattern)")
        }
        var removal = Array(#"{"metric":"x""#.utf8)
        Topics.appendRemoval(seq: 9, logSeq: 4, to: &removal)
        #expect(
            String(decoding: removal, as: UTF8.self)
                == #"{"metric":"x","value":null,"removed":true,"seq":9,"log_seq":4}"#
        )
        for bad in [
            "a/b/c", "a//c/d", "stage_conversion:p:q/all/x/all", "a/team/%zz/c", "a/team/%C3/c", "a/b/c/d", "a/b/c/d/e",
        ] {
            #expect(Topics.labels(ofTopic: Array(bad.utf8)) == nil, "\(bad)")
        }
    }
}

struct WorkerLinkTests {
    /// Two bodies of one session: shapes and topics once, then only numbers and words; the
    /// schema reads back exactly what was written, and refuses what does not fit it.
    @Test func resultBodiesRoundTripAgainstTheirSession() throws {
        let revenue = MetricName.revenue.shape
        var w = WorkerLink.ResultWriter()
        w.shape(5, revenue)
        w.series(0, shape: 5, topic: Array("revenue/all/%2A/all".utf8))
        w.values(0, [FieldWord.number(2.5), FieldWord.count(1)])
        w.series(1, shape: 5, topic: Array("revenue/team/T1/all".utf8))
        w.removed(1)
        var schema = WorkerLink.ResultSchema()
        let first = try schema.decode(w.bytes)
        #expect(first.shapes.count == 1 && first.shapes[0].id == 5 && first.shapes[0].shape == revenue)
        #expect(first.series.map(\.number) == [0, 1] && first.series[1].topic == Array("revenue/team/T1/all".utf8))
        #expect(first.entries.map(\.number) == [0, 1] && first.entries.map(\.offset) == [0, -1])
        #expect(first.words == [FieldWord.number(2.5), FieldWord.count(1)])
        #expect(schema.seriesCount == 0, "decode does not change the schema")
        schema.adopt(first)
        #expect(schema.seriesCount == 2 && schema.shape(of: 1) == revenue)

        var next = WorkerLink.ResultWriter()
        next.values(1, [FieldWord.number(nil), FieldWord.count(7)])
        next.removed(0)
        let second = try schema.decode(next.bytes)
        #expect(second.shapes.isEmpty && second.series.isEmpty)
        #expect(second.entries.map(\.number) == [1, 0] && second.words == [FieldWord.null, FieldWord.count(7)])

        func refused(_ build: (inout WorkerLink.ResultWriter) -> Void, _ reason: String) {
            var b = WorkerLink.ResultWriter()
            build(&b)
            #expect(throws: BinaryDecodingError.self, "\(reason)") { try schema.decode(b.bytes) }
        }
        refused({ $0.values(2, [1, 2]) }, "values of a series not defined")
        refused({ $0.removed(9) }, "removal of a series not defined")
        refused({ $0.series(3, shape: 5, topic: [0x61]) }, "a number out of step")
        refused({ $0.series(2, shape: 6, topic: [0x61]) }, "a shape not defined")
        refused({ $0.shape(5, revenue) }, "a shape defined twice")
        refused({ $0.series(2, shape: 5, topic: []) }, "an empty topic")
        refused({ $0.shape(7, SeriesShape([.init("seq", .count)])) }, "a reserved field name")
        refused({ $0.shape(7, SeriesShape([.init("a", .count), .init("a", .count)])) }, "a repeated field name")
        refused({ $0.shape(7, SeriesShape([])) }, "a shape without fields")
        refused({ $0.shape(2000, revenue) }, "a shape id out of range")
        #expect(throws: BinaryDecodingError.self) { try schema.decode(Array(next.bytes.dropLast())) }
        #expect(throws: BinaryDecodingError.self) { try schema.decode(next.bytes + [3]) }
        #expect(throws: BinaryDecodingError.self) { try schema.decode(Array("\u{ff}not json{".utf8)) }
        #expect(try schema.decode([]).entries.isEmpty, "an empty body is nothing changed")
    }

    /// Found by scripts/fuzz: a READY whose pid does not fit an Int trapped the daemon.
    @Test func readyWithAnOutOfRangePidIsRefusedNotATrap() throws {
        var w = BinaryWriter()
        w.u32(2)
        w.string("revenue")
        w.u64(.max)
        w.string("host")
        w.bytes([])
        #expect(throws: BinaryDecodingError.self) { try WorkerLink.Ready.decode(w.bytes) }
        var old = BinaryWriter()
        old.u32(1)
        old.string("revenue")
        old.u32(0)
        old.u32(1)
        old.u64(7)
        #expect(throws: BinaryDecodingError.self) { try WorkerLink.Ready.decode(old.bytes) }
        let good = WorkerLink.Ready(family: "revenue", pid: 42, host: "h1", token: Array("t".utf8))
        #expect(try WorkerLink.Ready.decode(good.encode()) == good)
    }

    @Test func ackWithNegativeNumbersIsNotAnAck() {
        #expect(
            IngestProtocol.AckBody.decode(
                Array(#"{"applied":1,"duplicate":0,"stale":0,"rejected":[],"log_seq":-1}"#.utf8)
            ) == nil
        )
        #expect(
            IngestProtocol.AckBody.decode(
                Array(#"{"applied":-1,"duplicate":0,"stale":0,"rejected":[],"log_seq":1}"#.utf8)
            ) == nil
        )
        #expect(
            IngestProtocol.AckBody.decode(
                Array(#"{"applied":1,"duplicate":0,"stale":0,"rejected":[],"log_seq":5}"#.utf8)
            )?.logSeq == 5
        )
    }
}

extension WorkerLinkTests {
    @Test func assignReleaseProgressAndResultHeadersRoundTripAndRefuseNonsense() throws {
        let assign = WorkerLink.Assign(lane: 3, logSeq: 99, partitionCount: 64, partitions: [0, 5, 63])
        #expect(try WorkerLink.Assign.decode(assign.encode()) == assign)
        let outOfRange = WorkerLink.Assign(lane: 3, logSeq: 99, partitionCount: 64, partitions: [64])
        #expect(throws: BinaryDecodingError.self) { try WorkerLink.Assign.decode(outOfRange.encode()) }
        #expect(try WorkerLink.decodeRelease(WorkerLink.encodeRelease([1, 2]), count: 64) == [1, 2])
        let progress = WorkerLink.Progress(lane: 1, facts: 40_000)
        #expect(try WorkerLink.Progress.decode(progress.encode()) == progress)
        let header = WorkerLink.ResultHeader(logSeq: 7, completeLanes: [0, 2])
        #expect(try WorkerLink.ResultHeader.decode(header.encode()) == header)
        #expect(throws: BinaryDecodingError.self) { try WorkerLink.ResultHeader.decode(header.encode() + [0]) }
        let chunk = WorkerLink.FactBatch(
            logSeq: 5,
            wantsResult: true,
            isLastChunk: true,
            lane: 2,
            firstStringID: 0,
            strings: ["*"],
            changes: []
        )
        let frames = chunk.encode()
        let decoded = try WorkerLink.FactBatch.decode(header: frames[0], changes: frames[1])
        #expect(decoded.lane == 2 && decoded.isLastChunk && decoded.wantsResult && decoded.strings == ["*"])
    }

    @Test func seriesPartsReadTopicsAndRefuseEverythingElse() throws {
        let parts = try #require(Topics.seriesParts(Array("revenue/owner/Ann%20B%2F1/2024-Q1".utf8)))
        #expect(parts.metric == "revenue" && parts.dimension == .owner && parts.key == "Ann B/1")
        for bad in ["zzz/injected", "revenue/nodim/x/all", "revenue/all/%ZZ/all", "revenue/all//all", "a/b/c/d/e"] {
            #expect(Topics.seriesParts(Array(bad.utf8)) == nil, "\(bad)")
        }
    }
}
