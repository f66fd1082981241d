import CLinuxShims
import DealModel
import Foundation
import Logging
import PipelineMetrics
import Wire
import ZeroMQ

/// The daemon's side of the worker link (`Sources/Wire/WorkerLink.swift`): admits
/// workers, rebuilds them, fans out fact batches, keeps the heartbeats and collects the
/// results that `Publisher` rounds take.
///
/// Owned by the loop thread. Every slot (family, shard) has at most one session in the
/// `WorkerRegistry`; a session is rebuilt from the current facts a few chunks per loop
/// iteration, so the loop keeps serving everyone meanwhile, and live batches that arrive
/// during its rebuild queue behind it.
final class WorkerLinkServer {
    let socket: ZMQSocket
    let configuration: DaemonConfiguration
    let modelBytes: [UInt8]
    let logger: Logger
    let spawnedWorkers: SpawnedWorkers
    /// Where rebuilds read the current facts from.
    let committer: IngestCommitter
    let metrics: DaemonMetrics?
    /// What each family reads of the facts (see `FamilyProjection`).
    let projections: [MetricFamily: FamilyProjection]
    var registry: WorkerRegistry
    /// The position of the last fact batch sent.
    var dispatchedLogSeq: UInt64
    /// The rebuild source at the current position, shared by the workers that join there.
    var rebuildSource: RebuildSource?
    let rebuildChunk = 20_000
    let rebuildChunksPerIteration = 4
    var factsSent = 0

    /// Binds the worker endpoint.
    init(
        configuration: DaemonConfiguration,
        model: Model,
        modelBytes: [UInt8],
        context: ZMQContext,
        committer: IngestCommitter,
        spawnedWorkers: SpawnedWorkers,
        logger: Logger,
        metrics: DaemonMetrics? = nil
    ) throws {
        self.metrics = metrics
        self.configuration = configuration
        self.modelBytes = modelBytes
        self.logger = logger
        self.spawnedWorkers = spawnedWorkers
        self.committer = committer
        projections = Dictionary(
            uniqueKeysWithValues: configuration.families.map { ($0, FamilyProjection(family: $0, model: model)) }
        )
        registry = WorkerRegistry(families: configuration.families, shards: configuration.shards)
        dispatchedLogSeq = committer.logSeq
        socket = try ZMQSocket(context: context, type: .router, lingerMilliseconds: 0)
        try socket.set(.sendHighWaterMark, 0)
        try socket.set(.receiveHighWaterMark, 0)
        try socket.set(.routerMandatory, 1)
        try WorkerCurve.secure(socket, configuration, logger: logger)  // workers.curve (WorkerSecurity.swift)
        try socket.bind(configuration.resolvedWorkerEndpoint)
    }

    func close() { socket.close() }

    func addSocket(to poller: inout ZMQPoller) { poller.add(socket) }

    var expiryNanoseconds: UInt64 {
        UInt64(configuration.heartbeatMilliseconds * configuration.liveness) * 1_000_000
    }

    // MARK: messages from workers

    /// Reads every waiting worker message: `READY`, `RESULT`, `HEARTBEAT`.
    func serviceWorkers() throws {
        while let frames = try socket.receive(blocking: false) {
            guard frames.count >= 2 else { continue }
            let identity = frames[0]
            let command = WorkerLink.Command(rawValue: String(decoding: frames[1], as: UTF8.self))
            let slot = registry.slot(of: identity)
            if let slot { registry.update(slot) { $0.lastHeard = WorkerRegistry.now() } }
            switch command {
            case .ready:
                guard frames.count == 3, let ready = try? WorkerLink.Ready.decode(frames[2]) else {
                    refuse(identity, "malformed READY")
                    continue
                }
                try admit(ready, identity: identity)
            case .result:
                guard let slot, frames.count >= 3, frames.count % 2 == 1,
                    let header = try? WorkerLink.ResultHeader.decode(frames[2])
                else {
                    logger.warning(
                        "Malformed or unexpected RESULT from a worker",
                        metadata: ["worker.slot": "\(slot.map { "\($0)" } ?? "none")"]
                    )
                    continue
                }
                receiveResult(frames, header: header, slot: slot)
            case .heartbeat:
                // A worker we do not know (daemon restarted): make it register again.
                if slot == nil { refuse(identity, "unknown session, send READY") }
            default:
                logger.warning(
                    "Unknown command from a worker",
                    metadata: ["command": "\(String(decoding: frames[1].prefix(32), as: UTF8.self))"]
                )
            }
        }
    }

    private func receiveResult(_ frames: [[UInt8]], header: WorkerLink.ResultHeader, slot: Slot) {
        var series: [(topic: TopicKey, payload: [UInt8])] = []
        series.reserveCapacity((frames.count - 3) / 2)
        var i = 3
        while i + 1 < frames.count {
            series.append((TopicKey(frames[i]), frames[i + 1]))
            i += 2
        }
        registry.update(slot) { s in
            s.results.append(.init(logSeq: header.logSeq, isFull: s.awaitingFull, series: series))
            s.awaitingFull = false
            s.covered(upTo: header.logSeq)
            s.reported = header.logSeq
        }
        if registry.hasVacantSlot { registry.coalesceResults(of: slot) }
    }

    func refuse(_ identity: [UInt8], _ reason: String) {
        _ = try? socket.send(
            [identity, Array(WorkerLink.Command.refused.rawValue.utf8), Array(reason.utf8)],
            blocking: false
        )
    }

    func send(_ session: WorkerRegistry.Session, _ frames: [[UInt8]]) throws -> Bool {
        do {
            return try socket.send([session.identity] + frames, blocking: false)
        } catch let error where error.code == EHOSTUNREACH {
            return false
        }
    }

    // MARK: what publication and ingest ask

    /// Whether a round would publish something beyond `publishedLogSeq`: every slot has
    /// reported, and some result is at or below the common position.
    func hasPublishableResults(after publishedLogSeq: UInt64) -> Bool {
        guard let position = registry.commonPosition else { return false }
        return position > publishedLogSeq || registry.hasResults(upTo: position)
    }

    /// The results a round at the common position takes, and that position; nothing while
    /// a slot has not reported or the common position is behind what is published (a
    /// restored published state ahead of the workers being rebuilt).
    func takeRoundResults(
        notBefore publishedLogSeq: UInt64
    )
        -> (results: [(Slot, [WorkerRegistry.Result])], position: UInt64?)
    {
        guard let position = registry.commonPosition, position >= publishedLogSeq else { return ([], nil) }
        return (registry.takeResults(upTo: position), position)
    }

    /// Whether any worker is too far behind to send it more: ingest then waits.
    var isBackPressured: Bool {
        registry.isBackPressured(batches: configuration.maxOutstandingBatches, facts: configuration.maxOutstandingFacts)
    }
}
