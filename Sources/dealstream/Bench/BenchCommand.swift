import ArgumentParser
import Daemon
import DealModel
import EventEncoding
import EventSources
import Foundation

/// `dealstream bench`: every figure of the performance issue from one run on this machine.
struct BenchCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "bench",
        abstract: "Measure the transport's own limit and dealstream end to end, in one run.",
        discussion: """
            Prints a table (or, with --json, one JSON object per figure):
              1. raw libzmq PUSH/PULL over ipc and tcp with the sizes the daemon sees (single JSON \
            and protobuf events, 100-event messages): the ceiling;
              1a. decode only: one thread decoding the same JSON and protobuf streams, the reference \
            path (a JSONValue tree) and the path ingest runs (the one-pass fast path); --decode-only prints \
            only these;
              2. end-to-end ingest, first send until the published log_seq covers the last ACK, for \
            JSON and protobuf, 1 and 3 connectors, 1 and 3 shards, with the ratio to the raw ipc \
            rate of single events of the same size;
              3. ACK and event → published update latency (p50, p99; HdrHistogram) at steady rates;
              5. with --scale-out, only the scale-out figures instead (docs/workers.md): the catch-up \
            time of a worker joining a running daemon at --scale-out-deals live deals, the time from a \
            worker's kill -9 to the next published round under a steady stream, and end-to-end \
            throughput with 1, 2 and 4 worker processes for the revenue family;
              4. recovery and memory: a history of --recovery-deals × --updates-per-deal events is \
            imported into a data directory, then a daemon restarts on it from the log alone and \
            again from a checkpoint; peak RSS of the daemon and each worker with that many live \
            deals, as bytes per live deal, with each process's PSS (/proc/PID/smaps_rollup) and \
            the PSS summed over all of them (shared pages counted once).
            Daemons run on ipc endpoints in temporary directories and are stopped afterwards. \
            Run it on a release build (swift build -c release) with nothing else running.
            """
    )

    @Option(help: "Events per end-to-end run.")
    var events = 100_000

    @Option(help: "Events per request in the end-to-end runs.")
    var batch = 1000

    @Option(help: "Requests each connector keeps in flight in the end-to-end runs.")
    var window = 16

    @Option(parsing: .upToNextOption, help: "Steady rates (events/s) for the latency runs.")
    var rates: [Int] = [100, 10_000]

    @Option(help: "Seconds of sending per latency run.")
    var seconds = 5.0

    @Option(
        name: .customLong("recovery-deals"),
        help:
            "Deals of the recovery history; about 2.5 % end deleted, so the default leaves one million live (0: skip recovery and memory)."
    )
    var recoveryDeals = 1_026_000

    @Option(name: .customLong("updates-per-deal"), help: "Events per deal in the recovery history.")
    var updatesPerDeal = 10

    @Option(help: "Model file for the generated events and the daemons.")
    var model = "config/model.json"

    /// The parts of the bench, for `--only`.
    enum Section: String, ExpressibleByArgument, CaseIterable {
        case raw
        case endToEnd = "end-to-end"
        case latency
        case recovery
    }

    @Option(
        parsing: .upToNextOption,
        help:
            "Run only these parts: raw, end-to-end, latency, recovery (default: all; the raw ceiling is always printed)."
    )
    var only: [Section] = Section.allCases

    @Flag(help: "One JSON object per figure instead of a table.")
    var json = false

    @Flag(name: .customLong("scale-out"), help: "Only the scale-out figures (joining, death, 1/2/4 workers).")
    var scaleOut = false

    @Option(
        name: .customLong("scale-out-deals"),
        parsing: .upToNextOption,
        help: "Live deals for the catch-up figure of a joining worker."
    )
    var scaleOutDeals: [Int] = [100_000, 1_000_000]

    @Option(name: .customLong("death-rate"), help: "Events/s of the steady stream while a worker is killed.")
    var deathRate = 2000

    // Decode-only figures (DecodeBench.swift).
    @Flag(
        name: .customLong("decode-only"),
        help: "Only the decode-only figures (one thread decoding the event stream, reference and ingest path)."
    )
    var decodeOnly = false

    @Option(
        name: .customLong("decode-path"),
        help: "With --decode-only: reference, ingest or both (one path alone, e.g. under callgrind)."
    )
    var decodePath = "both"

    @Option(
        name: .customLong("decode-encoding"),
        help: "With --decode-only: json, protobuf or both."
    )
    var decodeEncoding = "both"

    @Option(name: .customLong("decode-seconds"), help: "Seconds per decode-only figure (0: one pass).")
    var decodeSeconds = 2.0

    func run() throws {
        guard let data = FileManager.default.contents(atPath: model) else {
            throw ValidationError("--model: cannot read \(model)")
        }
        let parsed = try Model.parse(Array(data))
        let runStart = Date()
        var figures: [Figure] = []
        func report(_ f: Figure) {
            figures.append(f)
            if json {
                print(f.json)
            } else {
                FileHandle.standardError.write(Data("# \(f.name): \(f.formatted)\n".utf8))
            }
        }
        var options = SyntheticEvents.Options()
        options.deals = max(1, events / 5)
        let jsonStream = Array(SyntheticEvents(model: parsed, options: options).prefix(events))
        let protobufStream = try jsonStream.map { try ProtobufEvent.encode(json: try JSONParser.parse($0)) }
        let streams: [(EventEncoding, [[UInt8]])] = [(.json, jsonStream), (.protobuf, protobufStream)]
        func size(_ s: [[UInt8]]) -> Int { s.reduce(0) { $0 + $1.count } / max(1, s.count) }

        // 1a. Decoding alone, on one thread: the reference path and the path ingest runs.
        do {
            let decoder = EventDecoder(model: parsed)
            let paths: [(DecodeBench.Path, String)] = [(.reference, "reference"), (.ingest, "ingest")].filter {
                decodePath == "both" || decodePath == $0.1
            }
            if decodeOnly || !scaleOut {
                for (encoding, stream) in streams
                where decodeEncoding == "both" || decodeEncoding == name(encoding).lowercased() {
                    for (path, label) in paths {
                        let rate = DecodeBench.rate(
                            stream,
                            encoding: encoding,
                            decoder: decoder,
                            path: path,
                            seconds: decodeSeconds
                        )
                        report(
                            Figure(
                                name: "decode only, \(name(encoding)), \(label) path, 1 thread (CPU time)",
                                value: rate,
                                unit: "events/s",
                                extra: [("ns/event", 1e9 / rate)]
                            )
                        )
                    }
                }
            }
            if decodeOnly {
                finish(figures, runStart: runStart, report: report)
                return
            }
        }

        if scaleOut {
            try runScaleOut(model: parsed, stream: jsonStream, report: report)
            finish(figures, runStart: runStart, report: report)
            return
        }
        // 1. The transport alone.
        var rawIPCSingle: [EventEncoding: Double] = [:]
        for transport in ["ipc", "tcp"] {
            for (encoding, stream) in streams {
                let bytes = size(stream)
                let rate = try RawBaseline.run(
                    transport: transport,
                    eventBytes: bytes,
                    eventsPerMessage: 1,
                    messages: 400_000
                )
                if transport == "ipc" { rawIPCSingle[encoding] = rate }
                report(
                    Figure(
                        name: "raw libzmq \(transport), single \(name(encoding)) events (\(bytes) B)",
                        value: rate,
                        unit: "events/s",
                        extra: [("MB/s", rate * Double(bytes) / 1e6)]
                    )
                )
            }
            let bytes = size(jsonStream)
            let rate = try RawBaseline.run(
                transport: transport,
                eventBytes: bytes,
                eventsPerMessage: 100,
                messages: 8_000
            )
            report(
                Figure(
                    name: "raw libzmq \(transport), 100-event messages (\(bytes) B/event)",
                    value: rate,
                    unit: "events/s",
                    extra: [("MB/s", rate * Double(bytes) / 1e6)]
                )
            )
        }
        // 2. End to end.
        for (encoding, stream) in streams where only.contains(.endToEnd) {
            for shards in [1, 3] {
                for connectors in [1, 3] {
                    let rate = try EndToEnd.run(
                        events: stream,
                        encoding: encoding,
                        modelPath: model,
                        shards: shards,
                        connectors: connectors,
                        batch: batch,
                        window: window
                    )
                    report(
                        Figure(
                            name: "end-to-end \(name(encoding)), \(connectors) connector(s), \(shards) shard(s)",
                            value: rate,
                            unit: "events/s",
                            extra: [("ratio to raw ipc", rate / max(rawIPCSingle[encoding] ?? 1, 1))]
                        )
                    )
                }
            }
        }
        // 3. Latency at steady rates.
        for rate in rates where only.contains(.latency) {
            let result = try Latency.run(
                events: jsonStream,
                encoding: .json,
                modelPath: model,
                rate: rate,
                seconds: seconds
            )
            report(
                Figure(
                    name: "ACK latency at \(rate) JSON events/s",
                    value: result.ack.milliseconds(50),
                    unit: "ms p50",
                    extra: [("ms p99", result.ack.milliseconds(99)), ("achieved events/s", result.achievedRate)]
                )
            )
            report(
                Figure(
                    name: "event → published update at \(rate) JSON events/s",
                    value: result.publish.milliseconds(50),
                    unit: "ms p50",
                    extra: [("ms p99", result.publish.milliseconds(99))]
                )
            )
        }
        // 4. Recovery and memory.
        if recoveryDeals > 0 && only.contains(.recovery) {
            let r = try Recovery.run(
                model: parsed,
                modelPath: model,
                deals: recoveryDeals,
                updatesPerDeal: updatesPerDeal,
                shards: 1
            )
            let events = Double(r.summary.events)
            report(
                Figure(
                    name: "history imported: \(r.summary.events) events, \(r.summary.liveDeals) live deals",
                    value: events / r.importSeconds,
                    unit: "events/s",
                    extra: [("seconds", r.importSeconds), ("log records", Double(r.summary.logSeq))]
                )
            )
            report(
                Figure(
                    name: "restart from the log alone: state restored",
                    value: r.logRestoredSeconds,
                    unit: "s",
                    extra: [("replayed events/s", Double(r.summary.logSeq) / r.logRestoredSeconds)]
                )
            )
            report(
                Figure(
                    name: "restart from the log alone: workers rebuilt, published",
                    value: r.logPublishedSeconds,
                    unit: "s",
                    extra: [
                        (
                            "rebuilt records/s",
                            Double(r.summary.records) / max(r.logPublishedSeconds - r.logRestoredSeconds, 1e-3)
                        )
                    ]
                )
            )
            report(
                Figure(name: "restart from a checkpoint: state restored", value: r.checkpointRestoredSeconds, unit: "s")
            )
            report(
                Figure(
                    name: "restart from a checkpoint: published state served",
                    value: r.checkpointPublishedSeconds,
                    unit: "s"
                )
            )
            let deals = Double(max(r.summary.liveDeals, 1))
            for p in r.memory {
                report(
                    Figure(
                        name: "peak RSS, \(p.name)",
                        value: Double(p.peak) / 1e6,
                        unit: "MB",
                        extra: [("B/live deal", Double(p.peak) / deals), ("current MB", Double(p.current) / 1e6)]
                            + (p.pss.map { [("PSS MB", Double($0) / 1e6), ("PSS B/live deal", Double($0) / deals)] }
                                ?? [])
                    )
                )
            }
            let peak = r.memory.reduce(0) { $0 + $1.peak }
            let current = r.memory.reduce(0) { $0 + $1.current }
            report(
                Figure(
                    name: "peak RSS, all \(r.memory.count) processes, \(r.summary.liveDeals) live deals",
                    value: Double(peak) / deals,
                    unit: "B/live deal",
                    extra: [("MB", Double(peak) / 1e6), ("current B/live deal", Double(current) / deals)]
                )
            )
            // PSS is read at the same moment as the current RSS: shared pages (runtime,
            // libraries, code) are divided among the processes, so the sum counts them once.
            let pss = r.memory.compactMap(\.pss)
            report(
                Figure(
                    name: "PSS, all \(pss.count) of \(r.memory.count) processes, \(r.summary.liveDeals) live deals",
                    value: pss.count == r.memory.count ? Double(pss.reduce(0, +)) / deals : .nan,
                    unit: "B/live deal",
                    extra: [
                        ("MB", Double(pss.reduce(0, +)) / 1e6),
                        ("current RSS B/live deal, same moment", Double(current) / deals),
                    ]
                )
            )
        }
        finish(figures, runStart: runStart, report: report)
    }

    private func finish(_ figures: [Figure], runStart: Date, report: (Figure) -> Void) {
        report(Figure(name: "benchmark run time", value: Date().timeIntervalSince(runStart), unit: "s"))
        if !json {
            let all =
                figures + [Figure(name: "benchmark run time", value: Date().timeIntervalSince(runStart), unit: "s")]
            let width = (all.map(\.name.count).max() ?? 10) + 2
            print("\(pad("figure", width))value")
            for f in all { print("\(pad(f.name, width))\(f.formatted)") }
        }
    }

    /// The scale-out figures (`ScaleOut`).
    private func runScaleOut(model parsed: Model, stream: [[UInt8]], report: (Figure) -> Void) throws {
        var port = 27704
        func nextPort() -> Int {
            port += 1
            return port
        }
        for deals in scaleOutDeals {
            let r = try ScaleOut.catchUp(model: parsed, modelPath: model, deals: deals, port: nextPort())
            report(
                Figure(
                    name: "joining \(ScaleOut.family) worker owns its share, \(r.liveDeals) live deals",
                    value: r.seconds,
                    unit: "s",
                    extra: [("live deals/s rebuilt", Double(r.liveDeals) / r.seconds)]
                )
            )
        }
        let death = try ScaleOut.deathToRound(model: parsed, modelPath: model, rate: deathRate, port: nextPort())
        report(
            Figure(
                name: "kill -9 of 1 of 2 \(ScaleOut.family) workers → next published round, \(deathRate) events/s",
                value: death,
                unit: "s"
            )
        )
        var single: Double?
        for workers in [1, 2, 4] {
            let rate = try ScaleOut.throughput(
                events: stream,
                modelPath: model,
                workers: workers,
                batch: batch,
                window: window,
                port: nextPort()
            )
            if single == nil { single = rate.rate }
            report(
                Figure(
                    name: "end-to-end JSON, 3 connectors, \(ScaleOut.family) only, \(workers) worker process(es)",
                    value: rate.rate,
                    unit: "events/s",
                    extra: [
                        ("ratio to 1 worker", rate.rate / max(single ?? rate.rate, 1)),
                        ("daemon CPU µs/event", rate.daemonMicroseconds),
                        ("workers' CPU µs/event", rate.workersMicroseconds),
                    ]
                )
            )
        }
    }

    private func name(_ encoding: EventEncoding) -> String { encoding == .json ? "JSON" : "protobuf" }

    private func pad(_ s: String, _ n: Int) -> String {
        s.count >= n ? s : s + String(repeating: " ", count: n - s.count)
    }
}
