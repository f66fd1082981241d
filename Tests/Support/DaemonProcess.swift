import DealModel
public import Foundation
public import Wire
public import ZeroMQ

/// A real `dealstream daemon` process with its worker processes, on ipc endpoints in a
/// temporary directory, driven over real ZeroMQ sockets.
public final class DaemonProcess {
    public let directory: URL
    public let process = Process()
    public let context: ZMQContext
    public let ingest: ZMQSocket
    public let snapshots: ZMQSocket
    public var requestNumber = 0

    public var ingestEndpoint: String { "ipc://" + directory.appendingPathComponent("ingest.sock").path }
    public var updatesEndpoint: String { "ipc://" + directory.appendingPathComponent("updates.sock").path }
    public var snapshotEndpoint: String { "ipc://" + directory.appendingPathComponent("snapshot.sock").path }

    /// The built `dealstream` executable: `DEALSTREAM_BINARY`, or the package's debug build.
    public static var binary: String {
        if let path = ProcessInfo.processInfo.environment["DEALSTREAM_BINARY"] { return path }
        return packageRoot.appendingPathComponent(".build/debug/dealstream").path
    }

    /// Starts a daemon; its stderr goes to `daemon.log` in `directory` (appended across restarts).
    ///
    /// - Parameters:
    ///   - configJSON: written to `config.json` in `directory` and passed as `--config`
    ///     (relative paths in it are relative to `directory`); the flags below still win.
    ///   - ingestCurve: the keys `ingest` connects with, for a daemon with `ingest.curve`.
    ///   - environment: variables added to the test's own (`DEALSTREAM_…` config keys).
    public init(
        directory: URL? = nil,
        shards: Int,
        modelJSON: String,
        configJSON: String? = nil,
        ingestCurve: CurveClientKeys? = nil,
        extraArguments: [String] = [],
        environment: [String: String] = [:]
    ) throws {
        let dir = directory ?? temporaryDirectory("it")
        self.directory = dir
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        let modelPath = dir.appendingPathComponent("model.json").path
        try Data(modelJSON.utf8).write(to: URL(fileURLWithPath: modelPath))
        guard FileManager.default.isExecutableFile(atPath: DaemonProcess.binary) else {
            throw Failure(
                description:
                    "no dealstream executable at \(DaemonProcess.binary): run `swift build` first (scripts/test does)"
            )
        }
        var configArguments: [String] = []
        if let configJSON {
            let configPath = dir.appendingPathComponent("config.json").path
            try Data(configJSON.utf8).write(to: URL(fileURLWithPath: configPath))
            configArguments = ["--config", configPath]
        }
        process.executableURL = URL(fileURLWithPath: DaemonProcess.binary)
        if !environment.isEmpty {
            process.environment = ProcessInfo.processInfo.environment.merging(environment) { _, new in new }
        }
        process.arguments =
            ["daemon"] + configArguments + [
                "--model", modelPath, "--data-dir", dir.appendingPathComponent("data").path, "--shards", "\(shards)",
                "--ingest", "ipc://" + dir.appendingPathComponent("ingest.sock").path,
                "--updates", "ipc://" + dir.appendingPathComponent("updates.sock").path,
                "--snapshot", "ipc://" + dir.appendingPathComponent("snapshot.sock").path,
                "--publish-interval-ms", "10", "--log-level", "info",
            ] + (extraArguments.contains("--http") ? [] : ["--http", "127.0.0.1:0"]) + extraArguments
        let logPath = dir.appendingPathComponent("daemon.log").path
        if !FileManager.default.fileExists(atPath: logPath) {
            _ = FileManager.default.createFile(atPath: logPath, contents: nil)
        }
        let log = FileHandle(forWritingAtPath: logPath)
        log?.seekToEndOfFile()
        process.standardError = log
        // Never share the test's stdout: a crash reporter holding it would stall the run.
        process.standardOutput = FileHandle(forWritingAtPath: "/dev/null")
        try process.run()
        context = try ZMQContext()
        ingest = try ZMQSocket(context: context, type: .dealer)
        if let ingestCurve { try ingest.setCurveClient(ingestCurve) }
        try ingest.connect("ipc://" + dir.appendingPathComponent("ingest.sock").path)
        snapshots = try ZMQSocket(context: context, type: .dealer)
        try snapshots.connect("ipc://" + dir.appendingPathComponent("snapshot.sock").path)
    }

    public struct Failure: Error, CustomStringConvertible {
        public var description: String
        public init(description: String) { self.description = description }
    }

    private func receive(_ socket: ZMQSocket, timeout: Int) throws -> [[UInt8]] {
        var poller = ZMQPoller()
        poller.add(socket)
        guard try poller.poll(timeoutMilliseconds: timeout)[0], let reply = try socket.receive() else {
            throw Failure(description: "no reply within \(timeout) ms")
        }
        return reply
    }

    /// Sends one EVENTS request and returns its ACK, resending on silence (the daemon may
    /// be restarting): versions make a resend harmless.
    public func send(_ events: [String], attempts: Int = 20) throws -> IngestProtocol.AckBody {
        try send(frames: events.map { Array($0.utf8) }, contentType: IngestProtocol.jsonContentType, attempts: attempts)
    }

    /// Sends one EVENTS request of event frames in `contentType` and returns its ACK.
    public func send(frames: [[UInt8]], contentType: String, attempts: Int = 20) throws -> IngestProtocol.AckBody {
        requestNumber += 1
        let id = Array("it-\(requestNumber)".utf8)
        for _ in 0..<attempts {
            try ingest.send([IngestProtocol.events, id, Array(contentType.utf8)] + frames)
            while let reply = try? receive(ingest, timeout: 3000) {
                guard reply.count == 3, reply[1] == id else { continue }
                guard reply[0] == IngestProtocol.ack, let body = IngestProtocol.AckBody.decode(reply[2]) else {
                    throw Failure(description: "not an ACK: \(String(decoding: reply[2], as: UTF8.self))")
                }
                return body
            }
        }
        throw Failure(description: "no ACK after \(attempts) attempts")
    }

    /// Sends `events` in requests of `batch`; returns the last ACK's log_seq.
    @discardableResult
    public func sendAll<C: Collection>(_ events: C, batch: Int) throws -> UInt64 where C.Element == String {
        var logSeq: UInt64 = 0
        var rest = events[...]
        while !rest.isEmpty {
            logSeq = try send(Array(rest.prefix(batch))).logSeq
            rest = rest.dropFirst(batch)
        }
        return logSeq
    }

    /// The published state {topic: payload without seq/log_seq} and END's log_seq.
    public func snapshot() throws -> (series: [String: String], logSeq: UInt64) {
        try snapshots.send([IngestProtocol.snapshot, []])
        var series: [String: String] = [:]
        while true {
            let frames = try receive(snapshots, timeout: 10_000)
            if frames[0] == IngestProtocol.kv {
                var payload = String(decoding: frames[2], as: UTF8.self)
                if let cut = payload.range(of: ",\"seq\":", options: .backwards) {
                    payload = String(payload[..<cut.lowerBound]) + "}"
                }
                series[String(decoding: frames[1], as: UTF8.self)] = payload
            } else if frames[0] == IngestProtocol.end {
                let position = try JSONParser.parse(frames[1])
                return (series, UInt64(position["log_seq"]?.numberValue ?? 0))
            } else {
                throw Failure(description: "unexpected snapshot reply \(String(decoding: frames[0], as: UTF8.self))")
            }
        }
    }

    /// Polls snapshots until the published state reflects `logSeq`.
    public func waitUntilPublished(_ logSeq: UInt64, timeout: Double = 60) throws -> [String: String] {
        let deadline = Date().addingTimeInterval(timeout)
        while Date() < deadline {
            if let s = try? snapshot(), s.logSeq >= logSeq { return s.series }
            Thread.sleep(forTimeInterval: 0.05)
        }
        throw Failure(description: "published log_seq did not reach \(logSeq) within \(timeout) s")
    }

    /// Pids of the daemon's worker processes.
    public var workerPIDs: [Int32] { DaemonProcess.children(of: process.processIdentifier) }

    /// Processes whose parent is `pid` (from /proc/*/stat).
    public static func children(of pid: Int32) -> [Int32] {
        let entries = (try? FileManager.default.contentsOfDirectory(atPath: "/proc")) ?? []
        return entries.compactMap { name -> Int32? in
            guard let child = Int32(name),
                let stat = try? String(contentsOfFile: "/proc/\(name)/stat", encoding: .utf8),
                let close = stat.range(of: ")", options: .backwards)
            else { return nil }
            let fields = stat[close.upperBound...].split(separator: " ")
            return fields.count > 2 && Int32(fields[1]) == pid ? child : nil
        }
    }

    /// Live processes running `dealstream worker` that connect to this daemon's directory.
    public var strayWorkers: [Int32] {
        let entries = (try? FileManager.default.contentsOfDirectory(atPath: "/proc")) ?? []
        return entries.compactMap { name -> Int32? in
            guard let pid = Int32(name),
                let cmdline = try? Data(contentsOf: URL(fileURLWithPath: "/proc/\(name)/cmdline"))
            else { return nil }
            let text = String(decoding: cmdline, as: UTF8.self)
            return text.contains("worker") && text.contains(directory.path) ? pid : nil
        }
    }

    public func terminate() -> Int32 {
        process.terminate()
        process.waitUntilExit()
        return process.terminationStatus
    }

    public func kill9() {
        kill(process.processIdentifier, SIGKILL)
        process.waitUntilExit()
    }

    /// The base URL of the daemon's HTTP listener (`http://127.0.0.1:PORT`), from its
    /// `HTTP listening` log line (port 0 picks a free port).
    public func httpURL(timeout: Double = 30) throws -> String {
        let deadline = Date().addingTimeInterval(timeout)
        while Date() < deadline {
            for line in log.split(separator: "\n") where line.contains("HTTP listening") {
                if let range = line.range(of: #"http://[0-9.]+:[0-9]+"#, options: .regularExpression) {
                    return String(line[range])
                }
            }
            guard process.isRunning else { break }
            usleep(20_000)
        }
        throw Failure(description: "no HTTP listening line in the daemon's log:\n\(log)")
    }

    /// The daemon's log so far (for failure messages).
    public var log: String {
        (try? String(contentsOfFile: directory.appendingPathComponent("daemon.log").path, encoding: .utf8)) ?? ""
    }

    deinit {
        if process.isRunning { kill9() }
    }
}
