import CLinuxShims
import DealModel
import Foundation
import Logging
import PipelineMetrics
import Wire
import ZeroMQ

/// The daemon's side of the worker link (`Sources/Wire/WorkerLink.swift`, docs/workers.md):
/// admits workers, gives them partitions, rebuilds them, fans out fact batches, keeps the
/// heartbeats, checks and collects the results that `Publisher` rounds take.
///
/// Owned by the loop thread. Who owns which partition is the `WorkerRegistry`'s; this
/// sends what it decides. A lane is rebuilt from the current facts a couple of chunks at a
/// time (each acknowledged before more are sent), so the loop keeps serving everyone and a
/// live batch never waits behind a whole rebuild.
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
    /// Whether workers this daemon did not spawn may join: only when the endpoint
    /// authenticates them (CURVE with an allowlist, `workers.curve`).
    let acceptsUnspawnedWorkers: Bool
    var registry: WorkerRegistry
    /// The position of the last fact batch sent.
    var dispatchedLogSeq: UInt64
    /// The rebuild source at the current position, shared by the lanes opened there.
    var rebuildSource: RebuildSource?
    let rebuildChunk = 20_000
    /// Rebuild chunks sent to a lane and not yet acknowledged, at most.
    let maxChunksInFlight = 2
    var factsSent = 0
    /// Committed changes not yet sent to the workers (see `dispatch`), and how many may wait.
    var pendingChanges: [FactChange] = []
    let fanOutBatchFacts = 4096
    /// Barriers (docs/workers.md): the fact batches every worker answers at exactly their
    /// position, so that a round's position is one every owner's state is known at. At
    /// most one per `barrierGap` (the loop's round pacing); a batch in between is applied
    /// but not answered on its own.
    var barrierGap: UInt64 = 2_000_000
    var lastBarrier: UInt64 = 0
    /// Every series topic accepted, checked once (family, partition) and given an id.
    let catalog: SeriesCatalog
    /// What each session has defined in its results: shapes and series numbers.
    var reported: [WorkerRegistry.SessionID: SessionSeries] = [:]

    /// Binds the worker endpoint.
    init(
        configuration: DaemonConfiguration,
        model: Model,
        modelBytes: [UInt8],
        context: ZMQContext,
        committer: IngestCommitter,
        spawnedWorkers: SpawnedWorkers,
        catalog: SeriesCatalog,
        logger: Logger,
        metrics: DaemonMetrics? = nil
    ) throws {
        self.metrics = metrics
        self.catalog = catalog
        self.configuration = configuration
        self.modelBytes = modelBytes
        self.logger = logger
        self.spawnedWorkers = spawnedWorkers
        self.committer = committer
        projections = Dictionary(
            uniqueKeysWithValues: configuration.families.map { ($0, FamilyProjection(family: $0, model: model)) }
        )
        registry = WorkerRegistry(
            families: configuration.families,
            partitionCount: configuration.partitions,
            position: committer.logSeq
        )
        dispatchedLogSeq = committer.logSeq
        acceptsUnspawnedWorkers = configuration.workerCurve != nil
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

    /// Reads every waiting worker message: `READY`, `RESULT`, `PROGRESS`, `HEARTBEAT`, `BYE`.
    /// `between` runs between two messages (the loop takes ingest requests there).
    func serviceWorkers(between: () throws -> Void = {}) throws {
        var taken = 0
        while let frames = try socket.receive(blocking: false) {
            if taken > 0 { try between() }
            taken += 1
            guard frames.count >= 2 else { continue }
            let identity = frames[0]
            let command = WorkerLink.Command(rawValue: String(decoding: frames[1], as: UTF8.self))
            let id = registry.session(of: identity)
            if let id { registry.update(id) { $0.lastHeard = WorkerRegistry.now() } }
            switch command {
            case .ready:
                guard frames.count == 3, let ready = try? WorkerLink.Ready.decode(frames[2]) else {
                    refuse(identity, "malformed READY (this daemon speaks worker protocol 2)")
                    continue
                }
                try admit(ready, identity: identity)
            case .result:
                guard let id, frames.count == 4, let header = try? WorkerLink.ResultHeader.decode(frames[2]) else {
                    logger.warning("Malformed or unexpected RESULT dropped", metadata: ["worker.session": "\(id ?? 0)"])
                    continue
                }
                receiveResult(header: header, body: frames[3], from: id)
            case .progress:
                guard let id, frames.count == 3, let progress = try? WorkerLink.Progress.decode(frames[2]) else {
                    continue
                }
                registry.update(id) { s in
                    if s.lanes[progress.lane]?.chunksInFlight.isEmpty == false {
                        s.lanes[progress.lane]!.chunksInFlight.removeFirst()
                    }
                }
            case .heartbeat:
                // A worker we do not know (daemon restarted): make it register again.
                if id == nil { refuse(identity, "unknown session, send READY") }
            case .bye:
                if let id { try leave(id) }
            default:
                logger.warning(
                    "Unknown command from a worker",
                    metadata: ["command": "\(String(decoding: frames[1].prefix(32), as: UTF8.self))"]
                )
            }
        }
    }

    /// Reads a result's body against what the session defined before
    /// (`WorkerLink.ResultSchema`), checks each series the session reports for the first
    /// time against its family (`SeriesCatalog`: once per series, never again), each value
    /// against the partitions of its lanes, and keeps what passes; the rest is dropped and
    /// logged, never published. A body that cannot be read is dropped whole (nothing of it
    /// is kept, the session's batches stay unanswered).
    private func receiveResult(header: WorkerLink.ResultHeader, body: [UInt8], from id: WorkerRegistry.SessionID) {
        guard let session = registry.sessions[id] else { return }
        guard header.logSeq <= dispatchedLogSeq else {
            logger.warning(
                "RESULT at an impossible position dropped",
                metadata: [
                    "worker.session": "\(id)", "worker.pid": "\(session.pid)", "result.log_seq": "\(header.logSeq)",
                    "workers.dispatched_log_seq": "\(dispatchedLogSeq)",
                ]
            )
            return
        }
        let held = session.held(count: registry.partitionCount)
        let read: (result: WorkerRegistry.Result, rejected: Int, example: [UInt8])
        do {
            read = try reported[id, default: SessionSeries()].read(
                body,
                logSeq: header.logSeq,
                family: session.family,
                held: held,
                catalog: catalog
            )
        } catch {
            logger.warning(
                "Unreadable RESULT dropped",
                metadata: [
                    "worker.session": "\(id)", "worker.family": "\(session.family.rawValue)",
                    "worker.host": "\(session.host)", "worker.pid": "\(session.pid)", "reason": "\(error)",
                ]
            )
            return
        }
        let (result, rejected, example) = read
        if rejected > 0 {
            logger.warning(
                "Series outside the worker's family or partitions, or unreadable, dropped",
                metadata: [
                    "worker.session": "\(id)", "worker.family": "\(session.family.rawValue)",
                    "worker.host": "\(session.host)", "worker.pid": "\(session.pid)", "series.dropped": "\(rejected)",
                    "series.example": "\(String(decoding: example.prefix(80), as: UTF8.self))",
                ]
            )
        }
        registry.receive(result, complete: header.completeLanes, from: id)
    }

    func refuse(_ identity: [UInt8], _ reason: String) {
        _ = try? socket.send([identity, WorkerLink.Command.refused.frame, Array(reason.utf8)], blocking: false)
    }

    func send(_ session: WorkerRegistry.Session, _ frames: [[UInt8]]) throws -> Bool {
        do {
            return try socket.send([session.identity] + frames, blocking: false)
        } catch let error where error.code == EHOSTUNREACH {
            return false
        }
    }

    // MARK: what publication and ingest ask

    /// Whether a round would publish something beyond `publishedLogSeq`.
    func hasPublishableResults(after publishedLogSeq: UInt64) -> Bool {
        registry.hasPublishableResults(after: publishedLogSeq)
    }

    /// Takes the next round (see `WorkerRegistry.takeRound`), tells the previous owners of
    /// switched partitions to release them, and logs each completed move.
    func takeRound(notBefore publishedLogSeq: UInt64, published: PublishedState) throws -> WorkerRegistry.Round? {
        guard
            let round = registry.takeRound(
                notBefore: publishedLogSeq,
                publishedTopics: { published.topics(of: $0, partitions: $1) }
            )
        else { return nil }
        logMoves(round.switches)
        for (id, partitions) in round.release {
            guard let session = registry.sessions[id] else { continue }
            if try !send(session, [WorkerLink.Command.release.frame, WorkerLink.encodeRelease(partitions)]) {
                try dropSession(id, reason: "unreachable")
            }
        }
        for session in registry.sessions.values where session.leaving && session.lanes.isEmpty {
            try dropSession(session.id, reason: "left", level: .info)
        }
        return round
    }

    /// Logs each completed move (and counts it), one line per family, source and target.
    /// The registry still holds every session named: a round switches, it removes none.
    private func logMoves(_ switches: [WorkerRegistry.Switch]) {
        let sessions = registry.sessions
        var groups:
            [String: (
                family: MetricFamily, from: WorkerRegistry.SessionID?, to: WorkerRegistry.SessionID, partitions: [Int],
                moves: Int
            )] = [:]
        for sw in switches {
            let key = "\(sw.family.rawValue)/\(sw.from ?? 0)/\(sw.to)"
            groups[key, default: (sw.family, sw.from, sw.to, [], 0)].partitions.append(sw.partition)
            if sw.isMove { groups[key]!.moves += 1 }
        }
        let now = WorkerRegistry.now()
        for group in groups.values.sorted(by: { $0.to < $1.to }) {
            let to = sessions[group.to]
            let opened = group.partitions.first.flatMap { to?.lane(holding: $0)?.opened } ?? now
            if group.moves > 0 { metrics?.partitionsMoved(group.family, count: group.moves) }
            logger.info(
                "Partitions moved",
                metadata: [
                    "worker.family": "\(group.family.rawValue)",
                    "move.partitions": "\(PartitionSet(count: registry.partitionCount, members: group.partitions))",
                    "move.from":
                        "\(group.from.flatMap { sessions[$0] }.map(WorkerLinkServer.describe) ?? "none (vacant)")",
                    "move.to": "\(to.map(WorkerLinkServer.describe) ?? "\(group.to)")",
                    "move.catch_up_ms": "\((now - opened) / 1_000_000)",
                ]
            )
        }
    }

    /// A session as logs name it: host, pid, session number.
    static func describe(_ session: WorkerRegistry.Session) -> String {
        "\(session.host) pid \(session.pid) (session \(session.id))"
    }

    /// Whether any worker is too far behind to send it more: ingest then waits.
    var isBackPressured: Bool {
        registry.isBackPressured(batches: configuration.maxOutstandingBatches, facts: configuration.maxOutstandingFacts)
    }
}
