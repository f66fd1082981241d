import ArgumentParser
import Clients
import Connectors
import DealModel
import Dispatch
import Foundation
import Wire
import ZeroMQ

/// `dealstream bench`: figures from one run on this machine.
struct BenchCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "bench",
        abstract: "Measure the transport's own limit and dealstream end to end, in one run.",
        discussion: """
            Prints, as a table (or one JSON object per figure with --json): the raw libzmq PUSH/PULL \\
            rate over ipc and tcp for single events and 100-event batches; end-to-end ingest (first \\
            send until the published log_seq covers the last ACK) for 1 and 3 connectors and 1 and 3 \\
            shards, with its ratio to the raw ipc single-event rate of the same run; and ACK and \\
            event-to-publication latency at a steady rate. Daemons run on ipc endpoints in a \\
            temporary directory and are stopped afterwards.
            """
    )

    @Option(help: "Events per end-to-end run.")
    var events = 100_000

    @Option(help: "Steady rates (events/s) for the latency runs.")
    var rates: [Int] = [10_000]

    @Option(help: "Seconds per latency run.")
    var seconds = 5.0

    @Option(help: "Model file for the generated events and the daemons.")
    var model = "config/model.json"

    @Flag(help: "One JSON object per figure instead of a table.")
    var json = false

    func run() throws {
        guard let data = FileManager.default.contents(atPath: model) else { throw ValidationError("--model: cannot read \(model)") }
        let parsed = try Model.parse(Array(data))
        var figures: [Figure] = []
        func report(_ f: Figure) {
            figures.append(f)
            if json { print(f.json) } else { FileHandle.standardError.write(Data("# \(f.name): \(f.formatted)\n".utf8)) }
        }
        var options = SyntheticEvents.Options()
        options.deals = max(1, events / 5)
        let stream = Array(SyntheticEvents(model: parsed, options: options).prefix(events))
        let eventSize = stream.reduce(0) { $0 + $1.count } / max(1, stream.count)

        // 1. The transport alone.
        var rawIPCSingle = 0.0
        for transport in ["ipc", "tcp"] {
            for batch in [1, 100] {
                let rate = try RawBaseline.run(transport: transport, eventBytes: eventSize, eventsPerMessage: batch, messages: batch == 1 ? 400_000 : 8_000)
                if transport == "ipc" && batch == 1 { rawIPCSingle = rate }
                report(Figure(name: "raw libzmq \(transport) PUSH/PULL, \(batch == 1 ? "single events" : "100-event messages") (\(eventSize) B/event)",
                              value: rate, unit: "events/s", extra: ["MB/s": rate * Double(eventSize) / 1e6]))
            }
        }
        // 2. End to end.
        for shards in [1, 3] {
            for connectors in [1, 3] {
                let result = try EndToEnd.run(events: stream, modelPath: model, shards: shards, connectors: connectors)
                report(Figure(name: "end-to-end JSON ingest, \(connectors) connector(s), \(shards) shard(s)", value: result, unit: "events/s",
                              extra: ["ratio to raw ipc single events": result / max(rawIPCSingle, 1)]))
            }
        }
        // 3. Latency at steady rates.
        for rate in rates {
            let (ack, publish) = try Latency.run(events: stream, modelPath: model, rate: rate, seconds: seconds)
            report(Figure(name: "ACK latency at \(rate) events/s", value: ack.p50, unit: "ms p50", extra: ["ms p99": ack.p99]))
            report(Figure(name: "event → published update latency at \(rate) events/s", value: publish.p50, unit: "ms p50", extra: ["ms p99": publish.p99]))
        }
        if !json {
            print("\(pad("figure", 78)) \(pad("value", 14)) unit / more")
            for f in figures { print("\(pad(f.name, 78)) \(pad(String(format: "%.1f", f.value), 14)) \(f.unit)\(f.extra.map { "  \($0.key) \(String(format: "%.3g", $0.value))" }.joined())") }
        }
    }

    private func pad(_ s: String, _ n: Int) -> String { s.count >= n ? s : s + String(repeating: " ", count: n - s.count) }
}

/// One measured figure.
struct Figure {
    var name: String
    var value: Double
    var unit: String
    var extra: [String: Double] = [:]

    var formatted: String { String(format: "%.1f %@", value, unit) }
    var json: String {
        var out: [UInt8] = Array("{\"figure\":".utf8)
        JSONWriter.appendString(name, to: &out)
        out += Array(",\"value\":\(JSONWriter.number(value)),\"unit\":".utf8)
        JSONWriter.appendString(unit, to: &out)
        for (k, v) in extra.sorted(by: { $0.key < $1.key }) {
            out.append(UInt8(ascii: ","))
            JSONWriter.appendString(k, to: &out)
            out += Array(":\(JSONWriter.number(v))".utf8)
        }
        out.append(UInt8(ascii: "}"))
        return String(decoding: out, as: UTF8.self)
    }
}

/// libzmq PUSH/PULL with nothing of dealstream in between: the ceiling.
enum RawBaseline {
    static func run(transport: String, eventBytes: Int, eventsPerMessage: Int, messages: Int) throws -> Double {
        let context = try ZMQContext()
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("ds-bench-\(getpid())")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        let pull = try ZMQSocket(context: context, type: .pull)
        try pull.set(.receiveHighWaterMark, 0)
        let endpoint: String
        if transport == "ipc" {
            endpoint = "ipc://" + directory.appendingPathComponent("raw.sock").path
            try pull.bind(endpoint)
        } else {
            try pull.bind("tcp://127.0.0.1:*")
            endpoint = try pull.lastEndpoint()
        }
        let frame = [UInt8](repeating: 65, count: eventBytes)
        let message = [[UInt8]](repeating: frame, count: eventsPerMessage)
        let sender = ZMQThread(name: "bench-push") {
            guard let push = try? ZMQSocket(context: context, type: .push, lingerMilliseconds: 5000) else { return }
            try? push.set(.sendHighWaterMark, 0)
            try? push.connect(endpoint)
            for _ in 0..<messages { _ = try? push.send(message) }
        }
        _ = try pull.receive()
        let started = DispatchTime.now().uptimeNanoseconds
        for _ in 1..<messages { _ = try pull.receive() }
        let seconds = Double(DispatchTime.now().uptimeNanoseconds - started) / 1e9
        sender.join()
        return Double((messages - 1) * eventsPerMessage) / seconds
    }
}

/// A daemon of this same executable on ipc endpoints in a temporary directory.
final class BenchDaemon {
    let directory: URL
    let process = Process()
    var ingest: String { "ipc://" + directory.appendingPathComponent("i").path }
    var snapshot: String { "ipc://" + directory.appendingPathComponent("s").path }
    var updates: String { "ipc://" + directory.appendingPathComponent("u").path }

    init(modelPath: String, shards: Int) throws {
        directory = FileManager.default.temporaryDirectory.appendingPathComponent("ds-bench-\(getpid())-\(UUID().uuidString.prefix(6))")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        process.executableURL = URL(fileURLWithPath: (try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe")) ?? CommandLine.arguments[0])
        process.arguments = ["daemon", "--model", modelPath, "--data-dir", directory.appendingPathComponent("data").path, "--shards", "\(shards)",
                             "--ingest", ingest, "--updates", updates, "--snapshot", snapshot, "--log-level", "warning"]
        process.standardError = FileHandle(forWritingAtPath: "/dev/null")
        try process.run()
    }

    /// Waits until every worker has joined (the published state answers at position 0).
    func waitReady(context: ZMQContext) throws {
        let probe = try SnapshotProbe(context: context, endpoint: snapshot)
        try probe.waitUntilPublished(0, timeoutMilliseconds: 30_000)
        Thread.sleep(forTimeInterval: 1.0)
    }

    deinit {
        process.terminate()
        process.waitUntilExit()
        try? FileManager.default.removeItem(at: directory)
    }
}

/// First send until the published log_seq covers the last ACK.
enum EndToEnd {
    static func run(events: [[UInt8]], modelPath: String, shards: Int, connectors: Int) throws -> Double {
        let daemon = try BenchDaemon(modelPath: modelPath, shards: shards)
        let context = try ZMQContext()
        try daemon.waitReady(context: context)
        let highest = LockedMax()
        let endpoint = daemon.ingest
        let started = DispatchTime.now().uptimeNanoseconds
        var threads: [ZMQThread] = []
        for c in 0..<connectors {
            let mine = stride(from: c, to: events.count, by: connectors).map { events[$0] }
            let batches = stride(from: 0, to: mine.count, by: 500).map { Array(mine[$0..<min($0 + 500, mine.count)]) }
            threads.append(ZMQThread(name: "bench-connector-\(c)") {
                guard let client = try? IngestClient(context: context, endpoint: endpoint, window: 4) else { return }
                try? client.send(batches: batches) { highest.record($0.body.logSeq) }
            })
        }
        for t in threads { t.join() }
        try SnapshotProbe(context: context, endpoint: daemon.snapshot).waitUntilPublished(highest.value, timeoutMilliseconds: 120_000)
        return Double(events.count) / (Double(DispatchTime.now().uptimeNanoseconds - started) / 1e9)
    }
}

/// ACK latency and event → publication latency at a steady rate.
enum Latency {
    struct Percentiles { var p50: Double; var p99: Double }

    static func percentiles(_ values: [Double]) -> Percentiles {
        let sorted = values.sorted()
        guard !sorted.isEmpty else { return Percentiles(p50: .nan, p99: .nan) }
        func at(_ q: Double) -> Double { sorted[max(0, Int((q * Double(sorted.count)).rounded(.up)) - 1)] }
        return Percentiles(p50: at(0.5), p99: at(0.99))
    }

    static func run(events: [[UInt8]], modelPath: String, rate: Int, seconds: Double) throws -> (ack: Percentiles, publish: Percentiles) {
        let daemon = try BenchDaemon(modelPath: modelPath, shards: 1)
        let context = try ZMQContext()
        try daemon.waitReady(context: context)
        let sub = try ZMQSocket(context: context, type: .sub)
        try sub.subscribe(Topics.progress)
        try sub.connect(daemon.updates)
        let dealer = try ZMQSocket(context: context, type: .dealer)
        try dealer.connect(daemon.ingest)
        Thread.sleep(forTimeInterval: 0.3)
        // One request per millisecond carries rate/1000 events.
        let perRequest = max(1, rate / 1000)
        let requests = Int(seconds * 1000)
        var ackLatencies: [Double] = []
        var publishLatencies: [Double] = []
        var pendingPublish: [(logSeq: UInt64, sentAt: UInt64)] = []
        var poller = ZMQPoller()
        poller.add(dealer)
        poller.add(sub)
        let start = DispatchTime.now().uptimeNanoseconds
        var next = 0
        var sentAt: [Int: UInt64] = [:]
        var acked = 0
        while acked < requests {
            let now = DispatchTime.now().uptimeNanoseconds
            while next < requests && now >= start + UInt64(next) * 1_000_000 {
                let slice = (0..<perRequest).map { events[(next * perRequest + $0) % events.count] }
                try dealer.send([IngestProtocol.events, Array(String(next).utf8), Array("application/json".utf8)] + slice)
                sentAt[next] = DispatchTime.now().uptimeNanoseconds
                next += 1
            }
            let ready = try poller.poll(timeoutMilliseconds: 1)
            if ready[0] {
                while let reply = try dealer.receive(blocking: false) {
                    guard reply.count == 3, let n = Int(String(decoding: reply[1], as: UTF8.self)), let t = sentAt.removeValue(forKey: n),
                          let body = IngestProtocol.AckBody.decode(reply[2]) else { continue }
                    let at = DispatchTime.now().uptimeNanoseconds
                    ackLatencies.append(Double(at - t) / 1e6)
                    pendingPublish.append((body.logSeq, t))
                    acked += 1
                }
            }
            if ready[1] {
                while let message = try sub.receive(blocking: false) {
                    guard message.count == 2, let position = (try? JSONParser.parse(message[1]))?["log_seq"]?.position else { continue }
                    let at = DispatchTime.now().uptimeNanoseconds
                    while let first = pendingPublish.first, first.logSeq <= position {
                        publishLatencies.append(Double(at - first.sentAt) / 1e6)
                        pendingPublish.removeFirst()
                    }
                }
            }
        }
        return (percentiles(ackLatencies), percentiles(publishLatencies))
    }
}

/// The highest value recorded from several threads.
final class LockedMax: @unchecked Sendable {
    private let lock = NSLock()
    private var highest: UInt64 = 0
    func record(_ v: UInt64) { lock.withLock { highest = max(highest, v) } }
    var value: UInt64 { lock.withLock { highest } }
}
