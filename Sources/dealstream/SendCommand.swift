import ArgumentParser
import Clients
import DealModel
import Dispatch
import EventEncoding
import EventSources
import Foundation
import Synchronization
import Wire
import ZeroMQ

/// `dealstream send`: the file connector.
struct SendCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "send",
        abstract: "Send events from files to the daemon and report what it did with them.",
        discussion: """
            FILE is NDJSON (one JSON event per line, PROTOCOL.md §1) or, when it ends in .csv, the \
            Maven Analytics CRM export's sales_pipeline.csv (sales_teams.csv and products.csv are read \
            from the same folder; the mapping is in docs/sample-data.md). Events go in batches with \
            several requests in flight; a request not acknowledged in time is sent again (versions make \
            that harmless). Prints progress on a terminal, then applied/duplicate/stale/rejected counts \
            and the reasons for rejections. When the daemon has CURVE on (ingest.curve), give \
            --curve-server-key and --curve-key-file; a key the daemon does not list is refused at the \
            handshake, and send stops at once with status 2 saying so. Exit status: 0 when all events were taken, 1 when some were \
            rejected, 2 when the daemon could not be reached or refused a request.
            """
    )

    @Argument(help: "Event files (NDJSON, - for standard input, or the Maven CRM export's sales_pipeline.csv).")
    var files: [String]

    @Option(help: "Ingest endpoint of the daemon.")
    var ingest = "tcp://127.0.0.1:7701"

    @Option(name: .customLong("batch"), help: "Events per request (1…10000).")
    var batchSize = 500

    @Option(help: "Requests in flight at once.")
    var window = 4

    @Option(name: .customLong("timeout-ms"), help: "Milliseconds to wait for an ACK before resending.")
    var timeout = 10_000

    @Option(help: "Resends of one request before giving up.")
    var retries = 5

    @Option(help: "CSV only: the source id of the events.")
    var source = "maven-crm"

    @Option(help: "CSV only: the model pipeline the deals belong to.")
    var pipeline = "sales"

    @Option(name: .customLong("open-created-at"), help: "CSV only: created_at of prospects without an engage_date.")
    var openCreatedAt = "2017-12-31T00:00:00Z"

    @Option(help: "Send at most this many events per second (default: as fast as the daemon takes them).")
    var rate: Double?

    @Option(
        help:
            "After the last ACK, wait until the published state (asked at this snapshot endpoint) reflects it, and report the end-to-end rate."
    )
    var wait: String?

    @Option(
        help:
            "Content type of the event frames: json (application/json) or protobuf (application/x-protobuf, proto/dealstream/v1/event.proto; events are converted from JSON here)."
    )
    var encoding: EncodingChoice = .json

    @Flag(help: "Print the report as one JSON object.")
    var json = false

    @OptionGroup(title: "CURVE (when the daemon has ingest.curve on)")
    var curve: CurveClientOptions

    enum EncodingChoice: String, ExpressibleByArgument, CaseIterable {
        case json, protobuf
        var encoding: EventEncoding { self == .json ? .json : .protobuf }
    }

    func validate() throws {
        guard (1...10_000).contains(batchSize) else { throw ValidationError("--batch must be in 1…10000") }
        guard window >= 1 else { throw ValidationError("--window must be at least 1") }
    }

    func run() async throws {
        var options = MavenCRMExport.Options()
        options.source = source
        options.pipeline = pipeline
        options.openCreatedAt = openCreatedAt
        let settings = (ingest, window, timeout, retries, rate, wait, batchSize)
        let encoding = self.encoding.encoding
        let files = self.files
        let csvOptions = options
        let curveKeys = try curve.keys()
        let json = self.json
        // 0 all accepted, 1 some event rejected, 2 the send failed (set by the thread).
        let exitStatus = Atomic<Int32>(0)
        let thread = ZMQThread(name: "ds-send") {
            // Owned by this thread alone: counted, shown and printed here.
            var report = SendReport()
            do {
                let stream = EventStream(paths: files, options: csvOptions)
                let context = try ZMQContext()
                let client = try IngestClient(
                    context: context,
                    endpoint: settings.0,
                    curve: curveKeys,
                    window: settings.1,
                    timeoutMilliseconds: settings.2,
                    retries: settings.3
                )
                // Origins of the events in flight, to report rejections by file and line.
                var origins: [Int: [String]] = [:]
                var number = 0
                try client.send(
                    nextBatch: {
                        guard let batch = try stream.next(settings.6) else { return nil }
                        origins[number] = batch.map(\.origin)
                        number += 1
                        report.read += batch.count
                        guard encoding == .protobuf else { return batch.map(\.json) }
                        // A line with no protobuf form (not JSON, or a value the schema cannot
                        // hold) stops the send, naming the line and the field.
                        return try batch.map { event in
                            do {
                                return try ProtobufEvent.encode(json: try JSONParser.parse(event.json))
                            } catch {
                                throw ValidationError("\(event.origin): no protobuf form: \(error)")
                            }
                        }
                    },
                    contentType: encoding.contentType,
                    eventsPerSecond: settings.4,
                    onAck: { ack in
                        report.record(ack.body, origins: origins.removeValue(forKey: ack.requestNumber) ?? [])
                    },
                    onTick: { report.showProgress() }
                )
                report.ackedSeconds = report.seconds
                if let snapshotEndpoint = settings.5 {
                    let probe = try SnapshotProbe(context: context, endpoint: snapshotEndpoint)
                    try probe.waitUntilPublished(report.lastLogSeq, timeoutMilliseconds: settings.2 * 6)
                    report.publishedSeconds = report.seconds
                }
            } catch {
                report.fail("\(error)")
            }
            report.finish(json: json)
            exitStatus.store(report.failure != nil ? 2 : report.rejected > 0 ? 1 : 0, ordering: .releasing)
        }
        await thread.joined()
        let status = exitStatus.load(ordering: .acquiring)
        if status != 0 { throw ExitCode(status) }
    }
}

/// Counts what the daemon did with the events, and shows progress on a terminal.
///
/// A value owned by the send thread, which counts, shows and prints it.
struct SendReport {
    var read = 0
    let started = DispatchTime.now().uptimeNanoseconds
    var acked = 0, applied = 0, duplicate = 0, stale = 0, rejected = 0
    var lastLogSeq: UInt64 = 0
    var reasons: [String: (count: Int, example: String)] = [:]
    var failure: String?
    var ackedSeconds: Double?
    var publishedSeconds: Double?
    private var lastShown: UInt64 = 0
    private let interactive = isatty(STDERR_FILENO) != 0

    mutating func record(_ body: IngestProtocol.AckBody, origins: [String]) {
        acked += body.applied + body.duplicate + body.stale + body.rejected.count
        applied += body.applied
        duplicate += body.duplicate
        stale += body.stale
        rejected += body.rejected.count
        lastLogSeq = max(lastLogSeq, body.logSeq)
        for r in body.rejected {
            let origin = r.index < origins.count ? origins[r.index] : "?"
            let entry = reasons[r.error] ?? (0, origin)
            reasons[r.error] = (entry.count + 1, entry.example)
        }
    }

    mutating func fail(_ reason: String) { failure = reason }

    var seconds: Double { Double(DispatchTime.now().uptimeNanoseconds - started) / 1e9 }

    mutating func showProgress() {
        guard interactive else { return }
        let now = DispatchTime.now().uptimeNanoseconds
        guard now - lastShown > 200_000_000 else { return }
        lastShown = now
        let rate = Double(acked) / max(seconds, 0.001)
        FileHandle.standardError.write(Data("\r\u{1B}[Ksent \(acked)/\(read) events · \(Int(rate)) events/s".utf8))
    }

    func finish(json: Bool) {
        if interactive { FileHandle.standardError.write(Data("\r\u{1B}[K".utf8)) }
        let rate = Double(acked) / max(seconds, 0.001)
        if json {
            var out = "{\"events\":\(read),\"acknowledged\":\(acked),\"applied\":\(applied),\"duplicate\":\(duplicate),"
            out +=
                "\"stale\":\(stale),\"rejected\":\(rejected),\"log_seq\":\(lastLogSeq),\"seconds\":\(String(format: "%.3f", seconds)),"
            out += "\"events_per_second\":\(Int(rate))"
            if let failure { out += ",\"error\":\(jsonString(failure))" }
            if let publishedSeconds {
                out +=
                    ",\"published_seconds\":\(String(format: "%.3f", publishedSeconds)),\"end_to_end_events_per_second\":\(Int(Double(acked) / publishedSeconds))"
            }
            out +=
                ",\"reasons\":{"
                + reasons.sorted { $0.value.count > $1.value.count }.map { "\(jsonString($0.key)):\($0.value.count)" }
                .joined(separator: ",") + "}}"
            print(out)
            return
        }
        print(
            "sent \(acked) of \(read) events in \(String(format: "%.2f", seconds)) s (\(Int(rate)) events/s), log_seq \(lastLogSeq)"
        )
        print("applied \(applied) · duplicate \(duplicate) · stale \(stale) · rejected \(rejected)")
        for (reason, entry) in reasons.sorted(by: { $0.value.count > $1.value.count }).prefix(20) {
            print("  \(entry.count) × \(reason)  (first at \(entry.example))")
        }
        if let publishedSeconds {
            print(
                "published state reached log_seq \(lastLogSeq) after \(String(format: "%.2f", publishedSeconds)) s: \(Int(Double(acked) / publishedSeconds)) events/s end to end"
            )
        }
        if let failure { print("error: \(failure)") }
    }

    private func jsonString(_ s: String) -> String {
        var out: [UInt8] = []
        JSONWriter.appendString(s, to: &out)
        return String(decoding: out, as: UTF8.self)
    }
}
