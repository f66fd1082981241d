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

    @Test func removalKeepsTheLabelsAndNullsTheValue() {
        let payload = Array(
            #"{"metric":"revenue","dimension":"all","key":"*","period":"all","value":5.0,"count":1}"#.utf8
        )
        let removed = String(decoding: Topics.removal(labels: payload, seq: 9, logSeq: 4), as: UTF8.self)
        #expect(
            removed
                == #"{"metric":"revenue","dimension":"all","key":"*","period":"all","value":null,"removed":true,"seq":9,"log_seq":4}"#
        )
        #expect(
            String(decoding: Topics.stamped(payload, seq: 1, logSeq: 2), as: UTF8.self).hasSuffix(
                #""count":1,"seq":1,"log_seq":2}"#
            )
        )
    }
}

struct WorkerLinkTests {
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
