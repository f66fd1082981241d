import ArgumentParser
import Clients
import DealModel
import Foundation
import Synchronization
import ZeroMQ

/// `dealstream tail`: watch the published metrics.
struct TailCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "tail",
        abstract: "Show the metrics: a snapshot, then every live update.",
        discussion: """
            Subscribes to the updates endpoint, takes a snapshot of PREFIX (the Clone pattern), and \
            then applies live updates. On a terminal it draws a live table of the series; otherwise it \
            prints one JSON line per series (the snapshot first, then updates, with "topic" added). \
            PREFIX is a topic prefix such as win_rate/ or revenue/team/ (empty: everything). A gap in \
            the update sequence (updates dropped because this client fell behind) is repaired by a \
            fresh snapshot.
            """
    )

    @Argument(help: "Topic prefix, e.g. win_rate/ or revenue/team/ (default: everything).")
    var prefix = ""

    @Option(help: "Updates endpoint of the daemon.")
    var updates = "tcp://127.0.0.1:7702"

    @Option(help: "Snapshot endpoint of the daemon.")
    var snapshot = "tcp://127.0.0.1:7703"

    @Option(help: "Stop after this many seconds (default: run until interrupted).")
    var seconds: Double?

    @Option(help: "Terminal table: rows shown.")
    var rows = 40

    @Flag(help: "Print JSON lines even on a terminal.")
    var json = false

    @Option(help: "Terminal table: a line shown above it (scripts/demo puts the dashboard URL there).")
    var banner: String?

    func run() async throws {
        let settings = (prefix, updates, snapshot, seconds, rows, json || isatty(STDOUT_FILENO) == 0, banner)
        let stop = StopFlag()
        let failure = LockedError()
        let interrupt = DispatchSource.makeSignalSource(signal: SIGINT)
        signal(SIGINT, SIG_IGN)
        interrupt.setEventHandler { stop.set() }
        interrupt.resume()
        let thread = ZMQThread(name: "ds-tail") {
            do {
                try Tail(
                    prefix: settings.0,
                    updates: settings.1,
                    snapshot: settings.2,
                    seconds: settings.3,
                    rows: settings.4,
                    lines: settings.5,
                    banner: settings.6,
                    stop: stop
                ).run()
            } catch {
                failure.set("\(error)")
            }
        }
        await thread.joined()
        interrupt.cancel()
        if let message = failure.get() {
            FileHandle.standardError.write(Data("dealstream tail: \(message)\n".utf8))
            throw ExitCode(2)
        }
    }
}

/// The error of the tail thread, handed back to the command.
final class LockedError: Sendable {
    private let message = Mutex<String?>(nil)
    func set(_ m: String) { message.withLock { $0 = m } }
    func get() -> String? { message.withLock { $0 } }
}

/// The tail loop: JSON lines for programs, a redrawn table for people.
struct Tail {
    let prefix: String
    let updates: String
    let snapshot: String
    let seconds: Double?
    let rows: Int
    let lines: Bool
    var banner: String? = nil
    let stop: StopFlag

    func run() throws {
        let context = try ZMQContext()
        let follower = try UpdatesFollower(
            context: context,
            updatesEndpoint: updates,
            snapshotEndpoint: snapshot,
            prefix: prefix
        )
        Thread.sleep(forTimeInterval: 0.2)  // let the subscription reach the daemon before the snapshot
        _ = try follower.takeSnapshot()
        let deadline = seconds.map { Date().addingTimeInterval($0) }
        var changed: [String: Date] = [:]
        if lines {
            for topic in follower.state.keys.sorted() { emit(follower.state[topic]!.raw, topic: topic) }
        }
        var lastDraw = Date.distantPast
        var gaps = 0
        while !stop.isSet {
            if let deadline, Date() >= deadline { break }
            for event in try follower.poll(milliseconds: 200) {
                switch event {
                case .update(let s):
                    if lines { emit(s.raw, topic: s.topic) } else { changed[s.topic] = Date() }
                case .removed(let topic, let raw):
                    if lines { emit(raw, topic: topic) } else { changed[topic] = nil }
                case .gap:
                    gaps += 1
                case .snapshot:
                    if lines {
                        for topic in follower.state.keys.sorted() { emit(follower.state[topic]!.raw, topic: topic) }
                    }
                case .progress:
                    break
                }
            }
            if !lines && Date().timeIntervalSince(lastDraw) > 0.5 {
                draw(follower, changed: changed, gaps: gaps)
                lastDraw = Date()
            }
        }
    }

    private func emit(_ raw: [UInt8], topic: String) {
        var line = raw
        if line.last == UInt8(ascii: "}") {
            line.removeLast()
            line.append(contentsOf: Array(",\"topic\":".utf8))
            JSONWriter.appendString(topic, to: &line)
            line.append(UInt8(ascii: "}"))
        }
        line.append(UInt8(ascii: "\n"))
        FileHandle.standardOutput.write(Data(line))
    }

    private func draw(_ follower: UpdatesFollower, changed: [String: Date], gaps: Int) {
        // First the headline (dimension all, all time), then the most recently changed series.
        let headline = follower.state.values.filter {
            $0.payload["dimension"]?.stringValue == "all" && $0.payload["period"]?.stringValue == "all"
        }.sorted { $0.topic < $1.topic }
        let headlineTopics = Set(headline.map(\.topic))
        let recent = follower.state.values.filter { changed[$0.topic] != nil && !headlineTopics.contains($0.topic) }
            .sorted { changed[$0.topic]! > changed[$1.topic]! }
        var out = "\u{1B}[H\u{1B}[2J"
        if let banner { out += banner + "\n" }
        out += "dealstream · \(follower.state.count) series · seq \(follower.seq) · log_seq \(follower.logSeq)"
        out += gaps > 0 ? " · \(gaps) gap(s) repaired\n" : "\n"
        let header =
            pad("metric", 34) + pad("dimension", 12) + pad("key", 22) + pad("period", 9) + pad("value", 14)
            + "details\n"
        out += "\n\u{1B}[1mall deals, all time\u{1B}[0m\n" + header
        for s in headline { out += row(s) }
        out += "\n\u{1B}[1mlatest changes\u{1B}[0m\n" + header
        for s in recent.prefix(max(0, rows - headline.count)) { out += row(s) }
        FileHandle.standardOutput.write(Data(out.utf8))
    }

    private func row(_ s: UpdatesFollower.Series) -> String {
        let p = s.payload
        var metric = p["metric"]?.stringValue ?? ""
        if metric == "stage_conversion" {
            metric = "conversion \(p["from"]?.stringValue ?? "")→\(p["to"]?.stringValue ?? "")"
        }
        var details: [String] = []
        for name in [
            "numerator", "denominator", "count", "sum", "p50", "p90", "opportunities", "revenue", "spend", "start",
            "end", "new",
        ] {
            if let v = p[name], v != .null { details.append("\(name)=\(format(v))") }
        }
        return pad(metric, 34) + pad(p["dimension"]?.stringValue ?? "", 12) + pad(p["key"]?.stringValue ?? "", 22)
            + pad(p["period"]?.stringValue ?? "", 9) + pad(format(p["value"] ?? .null), 14)
            + details.joined(separator: " ") + "\n"
    }

    private func pad(_ s: String, _ n: Int) -> String {
        s.count >= n ? String(s.prefix(n - 1)) + " " : s + String(repeating: " ", count: n - s.count)
    }

    private func format(_ v: JSONValue) -> String {
        switch v {
        case .int(let i): return String(i)
        case .double(let d): return abs(d) >= 1000 ? String(format: "%.0f", d) : String(format: "%.4g", d)
        case .null: return "–"
        default: return "\(v)"
        }
    }
}
