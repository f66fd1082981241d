import DealModel
import DealstreamTestSupport
import EventSources
import Foundation
import Testing

/// The event sources `dealstream send` and `generate` read: the bundled Maven CRM export,
/// NDJSON files, and the synthetic stream.
struct EventSourcesTests {
    private static let samples = packageRoot.appendingPathComponent("samples/crm-sales-opportunities")
    private static let sampleModel = try! Model.parse(
        Array(try! Data(contentsOf: packageRoot.appendingPathComponent("config/sample-model.json")))
    )

    private func field(_ event: SourcedEvent, _ path: String...) throws -> JSONValue? {
        var value: JSONValue? = try JSONParser.parse(event.json)
        for key in path { value = value?[key] }
        return value
    }

    @Test func theBundledExportBecomesOneValidDealEventPerOpportunity() throws {
        let events = try MavenCRMExport(options: .init())
            .events(pipelineFile: Self.samples.appendingPathComponent("sales_pipeline.csv").path)
        #expect(events.count == 8800)
        let decoder = EventDecoder(model: Self.sampleModel)
        let rejected = events.filter { if case .failure = decoder.decode(json: $0.json) { true } else { false } }
        #expect(rejected.isEmpty, "\(rejected.prefix(3).map(\.origin))")
        // The first row: 1C1I7A6R,Moses Frase,GTX Plus Basic,Cancity,Won,2016-10-20,2017-03-01,1054
        let first = try #require(events.first)
        #expect(try field(first, "id") == .string("1C1I7A6R"))
        #expect(try field(first, "deal", "status") == .string("won"))
        #expect(try field(first, "deal", "amount")?.numberValue == 1054)
        #expect(try field(first, "deal", "owner") == .string("Moses Frase"))
        #expect(try field(first, "deal", "team") == .string("Dustin Brinkmann"))
        #expect(try field(first, "deal", "closed_at") == .string("2017-03-01T00:00:00Z"))
    }

    @Test func ndjsonStreamsInChunksSkippingBlankLinesAndNamesEachLine() throws {
        let file = temporaryDirectory("ndjson").appendingPathComponent("events.ndjson")
        try FileManager.default.createDirectory(at: file.deletingLastPathComponent(), withIntermediateDirectories: true)
        try Data("{\"a\":1}\n\n{\"a\":2}\r\n{\"a\":3}".utf8).write(to: file)
        let stream = EventStream(paths: [file.path], options: .init())
        let firstTwo = try #require(try stream.next(2))
        let rest = try #require(try stream.next(10))
        #expect(firstTwo.map { String(decoding: $0.json, as: UTF8.self) } == ["{\"a\":1}", "{\"a\":2}"])
        #expect(rest.map { String(decoding: $0.json, as: UTF8.self) } == ["{\"a\":3}"])
        #expect(firstTwo.map(\.origin) == ["\(file.path):1", "\(file.path):3"])
        #expect(try stream.next(10) == nil)
    }

    @Test func theSyntheticStreamIsReproducibleBySeedAndValid() {
        var options = SyntheticEvents.Options()
        options.deals = 50
        let a = Array(SyntheticEvents(model: harnessModel, options: options))
        let b = Array(SyntheticEvents(model: harnessModel, options: options))
        options.seed = 2
        let c = Array(SyntheticEvents(model: harnessModel, options: options))
        #expect(a.count >= 50)
        #expect(a == b)
        #expect(a != c)
        let decoder = EventDecoder(model: harnessModel)
        #expect(a.allSatisfy { if case .success = decoder.decode(json: $0) { true } else { false } })
    }
}

/// The ingest fast path (`EventDecoder.decodeDirect(json:)`) on the real CRM export and on
/// the synthetic stream `dealstream bench` and `generate` use: every event takes it, and it
/// gives exactly the event (digest included) of the reference path (`decodeThroughValue`).
struct DirectDecodingOnRealDataTests {
    @Test func theBundledExportAndTheSyntheticStreamTakeTheFastPathUnchanged() throws {
        let sampleModel = try Model.parse(
            Array(try Data(contentsOf: packageRoot.appendingPathComponent("config/sample-model.json")))
        )
        let export = try MavenCRMExport(options: .init())
            .events(
                pipelineFile: packageRoot.appendingPathComponent("samples/crm-sales-opportunities/sales_pipeline.csv")
                    .path
            )
            .map(\.json)
        var options = SyntheticEvents.Options()
        options.deals = 2000
        let model = try Model.parse(
            Array(try Data(contentsOf: packageRoot.appendingPathComponent("config/model.json")))
        )
        let synthetic = Array(SyntheticEvents(model: model, options: options))
        for (frames, model) in [(export, sampleModel), (synthetic, model)] {
            let decoder = EventDecoder(model: model)
            var same = 0
            for frame in frames {
                let direct = decoder.decodeDirect(json: frame)
                let reference = decoder.decodeThroughValue(json: frame)
                #expect(direct != nil, "\(String(decoding: frame, as: UTF8.self))")
                if let direct, reference == .success(direct) { same += 1 }
            }
            #expect(same == frames.count)
            #expect(frames.count > 8000)
        }
    }
}
