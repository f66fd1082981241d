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

/// A metric worker process: serves one metric family on one shard for a daemon.
///
/// It connects a DEALER to the daemon's worker endpoint, announces itself (`READY`),
/// and from then on applies the fact batches the daemon streams and answers each with
/// the series it changed. Liveness follows the Guide's Paranoid Pirate pattern: if the
/// daemon is silent for `liveness` heartbeats the worker reconnects with back-off; a
/// worker the daemon spawned also exits when the daemon is gone.
///
/// A `Service`: run it in a `ServiceGroup`; graceful shutdown (SIGTERM, or the parent's
/// death signal) stops the socket thread after the batch in hand.
public struct MetricWorker: Service {
    /// How a worker finds its daemon and what it serves.
    public struct Options: Sendable {
        public var family: MetricFamily
        public var shard: Int
        public var shards: Int
        /// The daemon's worker endpoint, e.g. `ipc:///var/lib/dealstream/workers.sock`.
        public var endpoint: String
        /// Exit when this process (the daemon that spawned us) is gone.
        public var parentPID: Int32?
        public var heartbeatMilliseconds: Int = 500
        public var liveness: Int = 20
        /// CURVE keys for a daemon with `workers.curve` (WorkerLinkSecurity.swift); nil: plain.
        public var curve: WorkerLinkCurve? = nil

        public init(family: MetricFamily, shard: Int, shards: Int, endpoint: String, parentPID: Int32? = nil) {
            self.family = family
            self.shard = shard
            self.shards = shards
            self.endpoint = endpoint
            self.parentPID = parentPID
        }
    }

    public let options: Options
    public let logger: Logger

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

    /// Renders what changed since the last result and sends it, at position `logSeq`.
    func sendResult(_ socket: ZMQSocket, _ shard: inout MetricShard, _ logSeq: UInt64) throws {
        let rendered = shard.flush()
        var reply: [[UInt8]] = [
            Array(WorkerLink.Command.result.rawValue.utf8), WorkerLink.ResultHeader(logSeq: logSeq).encode(),
        ]
        reply.reserveCapacity(2 + rendered.count * 2)
        for r in rendered {
            reply.append(r.topic)
            reply.append(r.payload)
        }
        try socket.send(reply)
    }

    /// One connection to the daemon, from READY until the daemon goes silent.
    func session() throws -> SessionEnd {
        let socket = try ZMQSocket(context: context, type: .dealer)
        defer { socket.close() }
        try socket.set(.receiveHighWaterMark, 0)
        try socket.set(.sendHighWaterMark, 0)
        try WorkerLinkSecurity.prepare(socket, options: options, logger: logger)  // CURVE keys, refusal log
        try socket.connect(options.endpoint)
        let ready = WorkerLink.Ready(
            family: options.family.rawValue,
            shard: options.shard,
            shards: options.shards,
            pid: Int(getpid())
        )
        try socket.send([Array(WorkerLink.Command.ready.rawValue.utf8), ready.encode()])
        var poller = ZMQPoller()
        poller.add(socket)
        var shard: MetricShard?
        var liveness = options.liveness
        var lastSent = DispatchTime.now()
        var lastResult = DispatchTime.now()
        /// Time of the last result (rendering every changed series): the next result waits
        /// as long, at most 20 ms, so rendering takes at most about half of this worker's
        /// time. Cheap results (light load) go out at once; under heavy load one result
        /// covers more batches, and each series is rendered once for all of them.
        var lastRenderNanoseconds: UInt64 = 0
        /// The position of the latest applied batch that asked for a result, not yet answered.
        var resultDue: UInt64?
        let heartbeat = [Array(WorkerLink.Command.heartbeat.rawValue.utf8)]
        func elapsed(since t: DispatchTime) -> UInt64 { DispatchTime.now().uptimeNanoseconds - t.uptimeNanoseconds }
        var gap: UInt64 { min(lastRenderNanoseconds, 20_000_000) }
        var rebuilt = false
        func answerIfDue() throws {
            guard let due = resultDue, shard != nil, elapsed(since: lastResult) >= gap else { return }
            let started = DispatchTime.now()
            try sendResult(socket, &shard!, due)
            lastRenderNanoseconds = elapsed(since: started)
            if !rebuilt {
                // The rebuild's batches are freed: give their memory back.
                rebuilt = true
                CLinuxShims_releaseFreeMemory()
            }
            resultDue = nil
            lastResult = .now()
            lastSent = .now()
        }
        func heartbeatIfDue() throws {
            guard elapsed(since: lastSent) > UInt64(options.heartbeatMilliseconds) * 1_000_000 else { return }
            try socket.send(heartbeat)
            lastSent = .now()
        }
        while !stop.isSet {
            var timeout = options.heartbeatMilliseconds
            if resultDue != nil {
                let waited = elapsed(since: lastResult)
                timeout = waited >= gap ? 0 : Int((gap - waited + 999_999) / 1_000_000)
            }
            let ready = try poller.poll(timeoutMilliseconds: timeout)
            if let parent = options.parentPID, getppid() != parent { return .stopped }
            if ready[0] {
                liveness = options.liveness
                while let frames = try socket.receive(blocking: false) {
                    switch WorkerLink.Command(rawValue: String(decoding: frames[0], as: UTF8.self)) {
                    case .reset:
                        resultDue = nil
                        lastRenderNanoseconds = 0
                        rebuilt = false
                        guard frames.count == 2 else { throw BinaryDecodingError("RESET needs the model frame") }
                        let model = try Model.parse(frames[1])
                        shard = MetricShard(
                            family: options.family,
                            model: model,
                            assignment: ShardAssignment(shard: options.shard, shards: options.shards)
                        )
                        logger.info(
                            "Session started",
                            metadata: [
                                "worker.family": "\(options.family.rawValue)",
                                "worker.shard": "\(options.shard)/\(options.shards)",
                            ]
                        )
                    case .facts:
                        guard shard != nil, frames.count == 3 else {
                            throw BinaryDecodingError("FACTS before RESET or malformed")
                        }
                        let batch = try WorkerLink.FactBatch.decode(header: frames[1], changes: frames[2])
                        try shard!.apply(batch)
                        if batch.wantsResult { resultDue = batch.logSeq }
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
        return .stopped
    }
}
