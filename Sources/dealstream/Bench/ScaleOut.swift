import Clients
import Daemon
import DealModel
import Dispatch
import EventEncoding
import EventSources
import Foundation
import ZeroMQ

/// The scale-out figures (docs/workers.md): how long a worker that joins a running daemon
/// takes to catch up and own its share, at a given number of live deals; how long from a
/// worker's death to the next published round under a steady stream; and end-to-end
/// throughput with 1, 2 and 4 worker processes for one family.
///
/// Workers started here join the way any remote worker does: over tcp (loopback), with
/// CURVE and an allowlisted key (`workers.curve`).
enum ScaleOut {
    /// The family the figures are taken for: the heaviest (sorted percentile sketches).
    static let family = "revenue"

    /// A daemon config for the scale-out runs: one family, `perFamily` spawned workers, a
    /// tcp worker endpoint with CURVE admitting one extra worker key.
    struct Cluster {
        let folder: URL
        let workerEndpoint: String
        let daemonKey: CurveKeyPair
        let workerKey: CurveKeyPair
        let workerKeyFile: String

        init(port: Int) throws {
            folder = FileManager.default.temporaryDirectory.appendingPathComponent("ds-bench-scale-\(getpid())-\(port)")
            try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
            workerEndpoint = "tcp://127.0.0.1:\(port)"
            daemonKey = try CurveKeyPair.generate()
            workerKey = try CurveKeyPair.generate()
            try Data(daemonKey.secretKey.z85.utf8).write(to: folder.appendingPathComponent("daemon.key"))
            workerKeyFile = folder.appendingPathComponent("worker.key").path
            try Data(workerKey.secretKey.z85.utf8).write(to: URL(fileURLWithPath: workerKeyFile))
        }

        func config(perFamily: Int) -> String {
            """
            {"endpoints": {"workers": "\(workerEndpoint)"},
             "workers": {"families": ["\(ScaleOut.family)"], "per_family": \(perFamily),
               "curve": {"secret_key_file": "\(folder.appendingPathComponent("daemon.key").path)",
                         "workers": {"bench": "\(workerKey.publicKey.z85)"}}}}
            """
        }

        /// Starts `dealstream worker` for the family, as a remote worker would be.
        func startWorker() throws -> Process {
            let p = Process()
            p.executableURL = URL(
                fileURLWithPath: (try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe"))
                    ?? CommandLine.arguments[0]
            )
            p.arguments = [
                "worker", "--family", ScaleOut.family, "--connect", workerEndpoint, "--curve-server-key",
                daemonKey.publicKey.z85, "--curve-secret-key-file", workerKeyFile, "--log-level", "warning",
            ]
            p.standardError = FileHandle(forWritingAtPath: "/dev/null")
            try p.run()
            return p
        }

        func remove() { try? FileManager.default.removeItem(at: folder) }
    }

    /// The worker sessions the daemon reports (`STATUS`): pid, spawned, owned and building counts.
    struct Session {
        var pid: Int
        var spawned: Bool
        var owned: Int
        var building: Int
    }

    static func status(_ context: ZMQContext, _ endpoint: String) throws -> [Session] {
        try statusWithPosition(context, endpoint).sessions
    }

    /// `STATUS`: the position dispatched to the workers, and the sessions.
    static func statusWithPosition(
        _ context: ZMQContext,
        _ endpoint: String
    ) throws
        -> (dispatched: UInt64, sessions: [Session])
    {
        let answer = try WorkerStatus.fetch(context: context, endpoint: endpoint)
        guard case .object(let top) = try JSONParser.parse(answer),
            case .array(let workers)? = top.first(where: { $0.0 == "workers" })?.1
        else { throw ValidationErrorText("STATUS from \(endpoint) is not the worker list") }
        guard case .int(let dispatched)? = top.first(where: { $0.0 == "dispatched_log_seq" })?.1 else {
            throw ValidationErrorText("STATUS without dispatched_log_seq")
        }
        let sessions = workers.compactMap { w -> Session? in
            guard case .object(let m) = w else { return nil }
            func count(_ key: String) -> Int {
                if case .array(let a)? = m.first(where: { $0.0 == key })?.1 { return a.count }
                return 0
            }
            guard case .int(let pid)? = m.first(where: { $0.0 == "pid" })?.1 else { return nil }
            let spawned = m.first(where: { $0.0 == "spawned" })?.1 == .bool(true)
            return Session(pid: Int(pid), spawned: spawned, owned: count("partitions"), building: count("building"))
        }
        return (UInt64(dispatched), sessions)
    }

    /// Seconds from starting a worker by hand until it owns its share (its lane rebuilt and
    /// switched), on a daemon restored with `deals` live deals.
    static func catchUp(
        model: Model,
        modelPath: String,
        deals: Int,
        port: Int
    ) throws -> (seconds: Double, liveDeals: Int) {
        let cluster = try Cluster(port: port)
        defer { cluster.remove() }
        let directory = cluster.folder.appendingPathComponent("data").path
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        var options = SyntheticEvents.Options()
        options.deals = deals
        options.updatesPerDeal = 1
        options.seed = 11
        let summary = try DataDirectoryImport.run(
            SyntheticEvents(model: model, options: options),
            encoding: .json,
            directory: directory,
            model: model,
            logger: makeLogger("dealstream.bench", level: "warning")
        )
        let daemon = try BenchDaemon(
            modelPath: modelPath,
            shards: 1,
            dataDirectory: directory,
            config: cluster.config(perFamily: 1)
        )
        defer { daemon.stop() }
        let context = try ZMQContext()
        try daemon.waitPublished(summary.logSeq, context: context, timeoutMilliseconds: 900_000)
        let started = DispatchTime.now().uptimeNanoseconds
        let worker = try cluster.startWorker()
        defer {
            worker.terminate()
            worker.waitUntilExit()
        }
        let deadline = Date().addingTimeInterval(600)
        while Date() < deadline {
            let joined = try status(context, daemon.snapshot).first { $0.pid == Int(worker.processIdentifier) }
            if let joined, joined.owned > 0, joined.building == 0 {
                return (Double(DispatchTime.now().uptimeNanoseconds - started) / 1e9, summary.liveDeals)
            }
            Thread.sleep(forTimeInterval: 0.01)
        }
        throw ValidationErrorText("the joining worker never owned its share")
    }

    /// Seconds from `kill -9` of one of two workers (under a steady stream of `rate`
    /// events/s in 10-event requests) until the next round that publishes a new position.
    static func deathToRound(model: Model, modelPath: String, rate: Int, port: Int) throws -> Double {
        let cluster = try Cluster(port: port)
        defer { cluster.remove() }
        let daemon = try BenchDaemon(modelPath: modelPath, shards: 1, config: cluster.config(perFamily: 2))
        defer { daemon.stop() }
        let context = try ZMQContext()
        try daemon.waitReady(context: context)
        var options = SyntheticEvents.Options()
        options.deals = 50_000
        options.seed = 5
        let events = Array(SyntheticEvents(model: model, options: options).prefix(200_000))
        // Most of it first, so the dead worker's partitions have something to rebuild.
        let client = try IngestClient(context: context, endpoint: daemon.ingest, window: 16)
        let preload = stride(from: 0, to: 150_000, by: 1000).map { Array(events[$0..<$0 + 1000]) }
        try client.send(batches: preload, contentType: EventEncoding.json.contentType) { _ in }
        let steady = Array(events[150_000...])
        // The steady stream, on a thread of its own.
        let stop = StopFlag()
        let endpoint = daemon.ingest
        let sender = ZMQThread(name: "bench-steady") {
            guard let c = try? IngestClient(context: context, endpoint: endpoint, window: 4) else { return }
            var i = 0
            let interval = 10.0 / Double(rate)
            var next = Date()
            while !stop.isSet && i + 10 <= steady.count {
                _ = try? c.send(batches: [Array(steady[i..<i + 10])], contentType: EventEncoding.json.contentType) {
                    _ in
                }
                i += 10
                next = next.addingTimeInterval(interval)
                let wait = next.timeIntervalSinceNow
                if wait > 0 { Thread.sleep(forTimeInterval: wait) }
            }
        }
        defer {
            stop.set()
            sender.join()
        }
        let follower = try ProgressFollower(context: context, endpoint: daemon.updates)
        Thread.sleep(forTimeInterval: 2)
        let (_, sessions) = try statusWithPosition(context, daemon.snapshot)
        guard let victim = sessions.first(where: { $0.owned > 0 }) else {
            throw ValidationErrorText("no worker owns partitions")
        }
        // Every position dispatched before the kill may still be published by a round the
        // dead worker had answered; the next round past it needs its partitions' new owner.
        let (dispatched, _) = try statusWithPosition(context, daemon.snapshot)
        let killed = DispatchTime.now().uptimeNanoseconds
        kill(Int32(victim.pid), SIGKILL)
        while try follower.next(timeoutMilliseconds: 120_000) <= dispatched {}
        return Double(DispatchTime.now().uptimeNanoseconds - killed) / 1e9
    }

    /// End-to-end throughput of the family's events with `workers` worker processes, and
    /// the CPU the daemon and the workers used per event (what bounds each on its own core).
    static func throughput(
        events: [[UInt8]],
        modelPath: String,
        workers: Int,
        batch: Int,
        window: Int,
        port: Int
    ) throws
        -> (rate: Double, daemonMicroseconds: Double, workersMicroseconds: Double)
    {
        let cluster = try Cluster(port: port)
        defer { cluster.remove() }
        var cpu = (daemon: 0.0, workers: 0.0)
        let rate = try EndToEnd.run(
            events: events,
            encoding: .json,
            modelPath: modelPath,
            shards: workers,
            connectors: 3,
            batch: batch,
            window: window,
            config: cluster.config(perFamily: workers),
            afterRun: { daemon in
                cpu.daemon = ProcessMemory.cpuSeconds(daemon.pid) ?? 0
                cpu.workers = daemon.workerPIDs.compactMap(ProcessMemory.cpuSeconds).reduce(0, +)
            }
        )
        let n = Double(events.count)
        return (rate, cpu.daemon / n * 1e6, cpu.workers / n * 1e6)
    }
}

/// Follows `_progress` on the updates endpoint: the published positions, as they come.
final class ProgressFollower {
    private let socket: ZMQSocket

    init(context: ZMQContext, endpoint: String) throws {
        socket = try ZMQSocket(context: context, type: .sub)
        try socket.subscribe(Array("_progress".utf8))
        try socket.connect(endpoint)
    }

    deinit { socket.close() }

    /// The next `_progress` position.
    func next(timeoutMilliseconds: Int) throws -> UInt64 {
        var poller = ZMQPoller()
        poller.add(socket)
        guard try poller.poll(timeoutMilliseconds: timeoutMilliseconds)[0], let frames = try socket.receive(),
            frames.count == 2, case .object(let m) = try JSONParser.parse(frames[1]),
            case .int(let logSeq)? = m.first(where: { $0.0 == "log_seq" })?.1
        else { throw ValidationErrorText("no _progress within \(timeoutMilliseconds) ms") }
        return UInt64(logSeq)
    }

    /// The latest position, after draining what is queued.
    func latest(timeoutMilliseconds: Int) throws -> UInt64 {
        var position = try next(timeoutMilliseconds: timeoutMilliseconds)
        while let p = try? next(timeoutMilliseconds: 0) { position = max(position, p) }
        return position
    }
}

/// A bench failure with a message.
struct ValidationErrorText: Error, CustomStringConvertible {
    var description: String
    init(_ description: String) { self.description = description }
}
