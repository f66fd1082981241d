import CLinuxShims
import DealModel
import Dispatch
import Foundation
public import Logging
public import PipelineMetrics
public import ServiceLifecycle
import Synchronization
import Wire
import ZeroMQ

/// A metric worker process: serves the partitions of one metric family the daemon gives it.
///
/// It connects a DEALER to the daemon's worker endpoint, announces itself (`READY`), is
/// given partitions (`ASSIGN`, rebuilt from the daemon's facts), and from then on applies
/// the fact batches the daemon streams and answers each with the series it changed. Any
/// number of workers may serve one family, joining and leaving at any time (docs/workers.md).
/// Liveness follows the Guide's Paranoid Pirate pattern: if the daemon is silent for
/// `liveness` heartbeats the worker reconnects with back-off; a worker the daemon spawned
/// also exits when the daemon is gone.
///
/// A `Service`: run it in a `ServiceGroup`. Graceful shutdown (SIGTERM) says `BYE`; a
/// worker started by hand then keeps serving until the daemon has moved its partitions to
/// the others (at most `drainMilliseconds`), so no round waits for it.
public struct MetricWorker: Service {
    /// How a worker finds its daemon and what it serves.
    public struct Options: Sendable {
        public var family: MetricFamily
        /// The daemon's worker endpoint, e.g. `ipc:///var/lib/dealstream/workers.sock`.
        public var endpoint: String
        /// Exit when this process (the daemon that spawned us) is gone.
        public var parentPID: Int32?
        public var heartbeatMilliseconds: Int = 500
        public var liveness: Int = 20
        /// After `BYE`, how long a worker started by hand keeps serving while its partitions move.
        public var drainMilliseconds: Int = 10_000
        /// The secret a spawned worker got from its daemon (`DEALSTREAM_WORKER_TOKEN`).
        public var token: [UInt8]
        /// This host's name, as `STATUS` and the daemon's logs show it.
        public var host: String
        /// CURVE keys for a daemon with `workers.curve` (WorkerLinkSecurity.swift); nil: plain.
        public var curve: WorkerLinkCurve? = nil

        public init(
            family: MetricFamily,
            endpoint: String,
            parentPID: Int32? = nil,
            environment: [String: String]? = nil
        ) {
            let environment = environment ?? ProcessInfo.processInfo.environment
            self.family = family
            self.endpoint = endpoint
            self.parentPID = parentPID
            token = Array((environment[MetricWorker.tokenVariable] ?? "").utf8)
            host = ProcessInfo.processInfo.hostName
        }
    }

    public let options: Options
    public let logger: Logger
    /// The environment variable a spawned worker finds its daemon's secret in.
    public static let tokenVariable = "DEALSTREAM_WORKER_TOKEN"

    public init(options: Options, logger: Logger) {
        self.options = options
        self.logger = logger
    }

    /// Runs until stopped or, for a spawned worker, until the daemon is gone.
    public func run() async throws {
        if let parent = options.parentPID {
            _ = CLinuxShims_setParentDeathSignal(SIGTERM)
            if getppid() != parent { return }
        }
        let context = try ZMQContext()
        let options = self.options
        let logger = self.logger
        let stop = StopFlag()
        let failure = Mutex<(any Error)?>(nil)
        let thread = ZMQThread(name: "ds-worker") {
            do {
                try WorkerLoop(options: options, context: context, logger: logger, stop: stop).run()
            } catch {
                failure.withLock { $0 = error }
            }
        }
        await withTaskCancellationHandler {
            await withGracefulShutdownHandler {
                await thread.joined()
            } onGracefulShutdown: {
                stop.set()
            }
        } onCancel: {
            stop.set()
        }
        if let error = failure.withLock({ $0 }) { throw error }
    }
}

/// The socket thread of a worker. Owns the DEALER; never runs on the cooperative pool.
struct WorkerLoop {
    let options: MetricWorker.Options
    let context: ZMQContext
    let logger: Logger
    let stop: StopFlag

    func run() throws {
        var backoff = 250
        while !stop.isSet {
            let outcome = try session()
            if stop.isSet { return }
            if case .daemonSilent = outcome {
                logger.warning("Daemon silent, reconnecting", metadata: ["worker.backoff_ms": "\(backoff)"])
            }
            if case .refused(let reason) = outcome {
                logger.info(
                    "Slot refused by daemon, retrying",
                    metadata: ["reason": "\(reason)", "worker.backoff_ms": "\(backoff)"]
                )
            }
            if let parent = options.parentPID, getppid() != parent { return }
            Thread.sleep(forTimeInterval: Double(backoff) / 1000)
            backoff = min(backoff * 2, 8000)
        }
    }

    enum SessionEnd {
        case daemonSilent
        case refused(String)
        case stopped
    }

    /// Sends what changed since the last result, at position `logSeq`: three frames, the
    /// command, the header and one body of compact values (docs/workers.md).
    func sendResult(_ socket: ZMQSocket, _ shard: inout MetricShard, _ logSeq: UInt64) throws {
        let (body, complete) = shard.flush()
        try socket.send([
            WorkerLink.Command.result.frame,
            WorkerLink.ResultHeader(logSeq: logSeq, completeLanes: complete).encode(),
            body,
        ])
    }

    /// One connection to the daemon, from READY until the daemon goes silent or we stop.
    func session() throws -> SessionEnd {
        let socket = try ZMQSocket(context: context, type: .dealer, lingerMilliseconds: 1000)
        defer { socket.close() }
        try socket.set(.receiveHighWaterMark, 0)
        try socket.set(.sendHighWaterMark, 0)
        try WorkerLinkSecurity.prepare(socket, options: options, logger: logger)  // CURVE keys, refusal log
        try socket.connect(options.endpoint)
        let ready = WorkerLink.Ready(
            family: options.family.rawValue,
            pid: Int(getpid()),
            host: options.host,
            token: options.token
        )
        try socket.send([WorkerLink.Command.ready.frame, ready.encode()])
        var poller = ZMQPoller()
        poller.add(socket)
        var shard: MetricShard?
        var liveness = options.liveness
        var lastSent = DispatchTime.now()
        /// The position of a barrier (a batch that asks for a result) just applied, not yet
        /// answered. Each barrier is answered at its own position before anything after it
        /// is applied: that is what lets a round be one consistent state across workers.
        /// The daemon paces barriers (docs/workers.md); batches between two are applied and
        /// answered together by the next.
        var resultDue: UInt64?
        var highestApplied: UInt64 = 0
        /// When `BYE` was sent (graceful stop of a worker started by hand), if it was.
        var leavingSince: DispatchTime?
        let heartbeat = [WorkerLink.Command.heartbeat.frame]
        func elapsed(since t: DispatchTime) -> UInt64 { DispatchTime.now().uptimeNanoseconds - t.uptimeNanoseconds }
        func answerIfDue() throws {
            guard let due = resultDue, shard != nil else { return }
            try sendResult(socket, &shard!, due)
            resultDue = nil
            lastSent = .now()
        }
        func heartbeatIfDue() throws {
            guard elapsed(since: lastSent) > UInt64(options.heartbeatMilliseconds) * 1_000_000 else { return }
            try socket.send(heartbeat)
            lastSent = .now()
        }
        while true {
            if stop.isSet {
                // Spawned workers stop with their daemon (or are replaced by it): no drain.
                guard shard != nil, options.parentPID == nil else {
                    _ = try? socket.send([WorkerLink.Command.bye.frame])
                    return .stopped
                }
                if leavingSince == nil {
                    try socket.send([WorkerLink.Command.bye.frame])
                    leavingSince = .now()
                    logger.info("Leaving: handing partitions over", metadata: ["worker.lanes": "\(shard!.laneSummary)"])
                }
                if shard!.laneCount == 0
                    || elapsed(since: leavingSince!) > UInt64(options.drainMilliseconds) * 1_000_000
                {
                    return .stopped
                }
            }
            var timeout = options.heartbeatMilliseconds
            if resultDue != nil { timeout = 0 }
            if leavingSince != nil { timeout = min(timeout, 50) }
            let ready = try poller.poll(timeoutMilliseconds: timeout)
            if let parent = options.parentPID, getppid() != parent { return .stopped }
            if ready[0] {
                liveness = options.liveness
                while let frames = try socket.receive(blocking: false) {
                    switch WorkerLink.Command(rawValue: String(decoding: frames[0], as: UTF8.self)) {
                    case .reset:
                        resultDue = nil
                        highestApplied = 0
                        guard frames.count == 2 else { throw BinaryDecodingError("RESET needs the model frame") }
                        let model = try Model.parse(frames[1])
                        shard = MetricShard(family: options.family, model: model)
                        logger.info("Session started", metadata: ["worker.family": "\(options.family.rawValue)"])
                    case .assign:
                        guard shard != nil, frames.count == 2 else {
                            throw BinaryDecodingError("ASSIGN before RESET or malformed")
                        }
                        let assign = try WorkerLink.Assign.decode(frames[1])
                        try shard!.assign(assign)
                        logger.info(
                            "Partitions assigned, rebuilding",
                            metadata: [
                                "worker.lane": "\(assign.lane)",
                                "worker.partitions":
                                    "\(PartitionSet(count: assign.partitionCount, members: assign.partitions))",
                                "rebuild.log_seq": "\(assign.logSeq)",
                            ]
                        )
                    case .facts:
                        guard shard != nil, frames.count == 3 else {
                            throw BinaryDecodingError("FACTS before RESET or malformed")
                        }
                        let batch = try WorkerLink.FactBatch.decode(header: frames[1], changes: frames[2])
                        let applied = try shard!.apply(batch)
                        if batch.lane != WorkerLink.everyLane {
                            try socket.send([
                                WorkerLink.Command.progress.frame,
                                WorkerLink.Progress(lane: batch.lane, facts: applied).encode(),
                            ])
                            lastSent = .now()
                        }
                        // Results are at the highest position applied: never behind an earlier one.
                        highestApplied = max(highestApplied, batch.logSeq)
                        if batch.wantsResult { resultDue = highestApplied }
                    case .release:
                        guard shard != nil, frames.count == 2 else {
                            throw BinaryDecodingError("RELEASE before RESET or malformed")
                        }
                        let partitions = try WorkerLink.decodeRelease(frames[1], count: 65_536)
                        shard!.release(partitions)
                        logger.info(
                            "Partitions released",
                            metadata: [
                                "worker.partitions": "\(PartitionSet(count: 65_536, members: partitions))",
                                "worker.lanes": "\(shard!.laneSummary)",
                            ]
                        )
                    case .heartbeat:
                        break
                    case .refused:
                        return .refused(frames.count > 1 ? String(decoding: frames[1], as: UTF8.self) : "")
                    default:
                        logger.warning(
                            "Unknown command from daemon",
                            metadata: ["command": "\(String(decoding: frames[0].prefix(32), as: UTF8.self))"]
                        )
                    }
                    // Batches that keep coming do not hold a due result back; a long rebuild
                    // is many messages: keep the heartbeat going between them.
                    try answerIfDue()
                    try heartbeatIfDue()
                }
            } else if resultDue == nil {
                liveness -= 1
                if liveness <= 0 { return .daemonSilent }
            }
            // One result covers every batch applied since the last.
            try answerIfDue()
            try heartbeatIfDue()
        }
    }
}
