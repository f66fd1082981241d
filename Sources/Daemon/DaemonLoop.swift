import DealModel
import Logging
import Wire
import ZeroMQ

/// The daemon's socket thread: polls ingest, the worker link, publication and snapshots,
/// and hands each ready socket to the part that owns it.
///
/// One thread owns all sockets and all mutable state, so every publication round and
/// every snapshot is one consistent state with no locking. The parts, each in its own
/// file, are owned by this thread: `IngestCommitter` (resolve, group commit, checkpoint
/// policy), `WorkerLinkServer` (admit, partitions and moves, rebuild, fan-out, heartbeats), `Publisher` (rounds
/// and snapshots). One event goes: `IngestFront` (decode, on its own thread) →
/// `serviceIngest` here → `IngestCommitter.commit` → ACK → `WorkerLinkServer.dispatch` →
/// a worker's `RESULT` → `Publisher.publishRound` → `UpdatesPublisher` (rendered and sent
/// on its own thread) → subscribers.
///
/// Made on the thread that runs it (see `DaemonService`): the replay of the checkpoint
/// and the log in `init` never runs on the cooperative pool.
final class DaemonLoop {
    private let configuration: DaemonConfiguration
    private let context: ZMQContext
    private let logger: Logger
    private let stop: StopFlag
    private let deadWorkers: DeadWorkerInbox
    private let spawnedWorkers: SpawnedWorkers
    private let model: Model
    private let modelBytes: [UInt8]
    private let committer: IngestCommitter
    private let metrics: DaemonMetrics
    /// A group (one log sync, one fact batch) takes at most this many requests and events,
    /// which bounds a fact batch and so, with the outstanding limits, what is in flight.
    private let groupLimit = 256
    private let groupEventLimit = 20_000

    /// Restores the durable state (checkpoint, then the logs after it).
    init(
        configuration: DaemonConfiguration,
        model: Model,
        modelBytes: [UInt8],
        context: ZMQContext,
        logger: Logger,
        stop: StopFlag,
        deadWorkers: DeadWorkerInbox,
        spawnedWorkers: SpawnedWorkers,
        metrics: DaemonMetrics
    ) throws {
        self.metrics = metrics
        self.configuration = configuration
        self.model = model
        self.modelBytes = modelBytes
        self.context = context
        self.logger = logger
        self.stop = stop
        self.deadWorkers = deadWorkers
        self.spawnedWorkers = spawnedWorkers
        committer = try IngestCommitter(configuration: configuration, model: model, logger: logger, metrics: metrics)
    }

    /// Binds the sockets, calls `bound`, and runs until the stop flag is set.
    func run(bound: @Sendable () -> Void) throws {
        let slice = ThreadSlice.request()
        // The ZAP handler is bound before the ingest and worker sockets and stopped after
        // they are closed (defers run in reverse): while no handler is bound, libzmq admits
        // any CURVE key. It keeps the connectors' and the workers' keys apart (ZAP domains).
        let authenticator = try DaemonAuthentication.start(
            configuration: configuration,
            context: context,
            logger: logger
        )
        defer { authenticator?.stopAndJoin() }
        // The ingest ROUTER lives on its own thread (`IngestFront`), which decodes events;
        // this PAIR is how it wakes the loop.
        let wake = try ZMQSocket(context: context, type: .pair, lingerMilliseconds: 0)
        try wake.bind(IngestFront.wakeEndpoint)
        let front = try IngestFront(
            context: context,
            endpoint: configuration.ingestEndpoint,
            configuration: configuration,
            model: model,
            logger: logger,
            stop: stop,
            metrics: metrics
        )
        defer {
            stop.set()
            front.finish(wake: wake)
            wake.close()
        }
        let publisher = try Publisher(configuration: configuration, context: context, logger: logger, metrics: metrics)
        defer { publisher.close() }
        let workers = try WorkerLinkServer(
            configuration: configuration,
            model: model,
            modelBytes: modelBytes,
            context: context,
            committer: committer,
            spawnedWorkers: spawnedWorkers,
            catalog: publisher.catalog,
            logger: logger,
            metrics: metrics
        )
        defer { workers.close() }
        let layout = PublishedState.Layout(families: configuration.families, partitions: configuration.partitions)
        publisher.restore(committer.readPublished(), layout: layout, notAfter: committer.logSeq)
        metrics.restored(logSeq: committer.logSeq, published: publisher.state, checkpoint: committer.checkpointPath)
        logger.info(
            "Daemon listening",
            metadata: [
                "endpoint.ingest": "\(configuration.ingestEndpoint)",
                "endpoint.updates": "\(configuration.updatesEndpoint)",
                "endpoint.snapshot": "\(configuration.snapshotEndpoint)",
                "endpoint.workers": "\(configuration.resolvedWorkerEndpoint)",
                "workers.partitions": "\(configuration.partitions)",
                "threads.slice": "\(slice)",
                "ingest.curve": "\(configuration.ingestCurve.map { "on, \($0.connectors.count) connectors" } ?? "off")",
                "workers.curve": "\(configuration.workerCurve.map { "on, \($0.allowlist.count) keys" } ?? "off")",
            ]
        )
        bound()
        try poll(front: front, wake: wake, publisher: publisher, workers: workers, layout: layout)

        // Graceful end: the requests the ingest thread read before the stop are answered
        // (it reads no more); publish what is ready and checkpoint, so the next start
        // replays nothing.
        while front.hasRequests {
            try serviceIngest(front, wake: wake, workers: workers, publisher: publisher, layout: layout)
        }
        publisher.publishRound(try workers.takeRound(notBefore: publisher.state.logSeq, published: publisher.state))
        committer.finalCheckpoint()
        committer.savePublished(publisher.state.encoded(layout: layout))
        logger.info(
            "Daemon loop stopped",
            metadata: [
                "ingest.requests": "\(committer.statistics.requests)",
                "ingest.events": "\(committer.statistics.events)",
                "log.records": "\(committer.logSeq)", "publish.rounds": "\(publisher.rounds)",
                "workers.facts_sent": "\(workers.factsSent)",
            ]
        )
    }

    /// Polls and dispatches until the stop flag is set.
    ///
    /// Rounds are event-driven and paced by `RoundPacing`: one runs as soon as every owner
    /// has answered a barrier and the round before it is sent, at most one per the
    /// pacing's gap, which is `publish.interval_ms` under a light load and grows with what
    /// output costs (storing here, rendering and sending on the updates thread; up to
    /// `publish.max_interval_ms`) so that it stays within `publish.output_share_percent` of
    /// a core. Under a heavy load a round so covers more positions, each series published
    /// once for all of them. Between rounds `_progress` still goes out every
    /// `publish.idle_progress_ms`, at the last published position.
    private func poll(
        front: IngestFront,
        wake: ZMQSocket,
        publisher: Publisher,
        workers: WorkerLinkServer,
        layout: PublishedState.Layout
    ) throws {
        var pacing = RoundPacing(
            minimumMilliseconds: configuration.publishIntervalMilliseconds,
            maximumMilliseconds: configuration.publishMaxIntervalMilliseconds,
            outputSharePercent: configuration.publishOutputSharePercent,
            busyLimitPercent: configuration.publishBusyLimitPercent
        )
        let idleProgress = UInt64(configuration.idleProgressMilliseconds) * 1_000_000
        let heartbeatInterval = UInt64(configuration.heartbeatMilliseconds) * 1_000_000
        var lastRound: UInt64 = 0
        var lastProgress: UInt64 = 0
        var nextHeartbeat = WorkerRegistry.now()
        // Taking results in comes in slices: between two RESULTs the requests waiting at
        // the front are committed and acknowledged, so an ACK waits for its sync and at
        // most one result, never for all of them. (No checkpoint starts there, to keep
        // that step short.) The CPU it takes is ingest's, not output's, for the pacing.
        // Rendering and sending a round is not on this thread at all (`UpdatesPublisher`).
        var ingestInSlices: UInt64 = 0
        func ingestBetweenSlices() throws {
            guard !workers.isBackPressured && front.hasRequests else { return }
            let started = RoundPacing.threadCPUTime()
            try serviceIngest(
                front,
                wake: wake,
                workers: workers,
                publisher: publisher,
                layout: layout,
                checkpointing: false
            )
            ingestInSlices &+= RoundPacing.threadCPUTime() - started
        }
        /// Runs output work and counts its CPU for the pacing, less the ingest done in its
        /// slices.
        func output<R>(_ work: () throws -> R) throws -> R {
            ingestInSlices = 0
            let started = RoundPacing.threadCPUTime()
            defer { pacing.spent(RoundPacing.threadCPUTime() &- started &- ingestInSlices) }
            return try work()
        }
        while !stop.isSet {
            metrics.loopTurn()
            let acceptIngest = !workers.isBackPressured
            // The updates thread's CPU for the rounds it sent counts as output.
            pacing.spent(publisher.takeOutputCost())
            let sending = publisher.isSendingRound
            let publishable = workers.hasPublishableResults(after: publisher.state.logSeq)
            var poller = ZMQPoller()
            workers.addSocket(to: &poller)
            publisher.addSockets(to: &poller)
            poller.add(wake)
            let now = WorkerRegistry.now()
            var due = lastProgress + idleProgress
            if publishable { due = min(due, lastRound + pacing.gap) }
            if let barrier = workers.nextBarrierDue { due = min(due, barrier) }
            var wait = min(due > now ? Int((due - now + 999_999) / 1_000_000) : 0, configuration.heartbeatMilliseconds)
            // While a round is being sent the next one waits for it (polled each ms).
            if publishable && sending { wait = min(wait, 1) }
            if acceptIngest && front.hasRequests { wait = 0 }
            let polled = WorkerRegistry.now()
            let ready = try poller.poll(timeoutMilliseconds: wait)
            if wait > 0 { pacing.waited(WorkerRegistry.now() &- polled) }
            if ready[0] { try output { try workers.serviceWorkers(between: ingestBetweenSlices) } }
            try workers.continueRebuilds()
            if ready[2] { while try wake.receive(blocking: false) != nil {} }
            if acceptIngest {
                try serviceIngest(front, wake: wake, workers: workers, publisher: publisher, layout: layout)
            }
            if ready[1] { try publisher.serviceSnapshots(status: workers.statusJSON) }
            for pid in deadWorkers.drain() { try workers.dropSessions(pid: pid) }
            workers.barrierGap = pacing.gap
            try workers.barrierIfDue()
            let after = WorkerRegistry.now()
            if after >= lastRound + pacing.gap && !publisher.isSendingRound
                && workers.hasPublishableResults(after: publisher.state.logSeq)
            {
                // Requests that arrived while results were read are committed and
                // acknowledged before the round, not after it: an ACK waits for its sync,
                // not for publication.
                if !workers.isBackPressured && front.hasRequests {
                    try serviceIngest(front, wake: wake, workers: workers, publisher: publisher, layout: layout)
                }
                let seqBefore = publisher.state.seq
                try output {
                    publisher.publishRound(
                        try workers.takeRound(notBefore: publisher.state.logSeq, published: publisher.state)
                    )
                }
                pacing.roundPublished(at: WorkerRegistry.now())
                metrics.paced(pacing)
                logger.debug(
                    "Round published",
                    metadata: [
                        "published.log_seq": "\(publisher.state.logSeq)",
                        "round.output_us": "\(pacing.lastRoundCost / 1000)",
                        "round.series": "\(publisher.state.seq - seqBefore)",
                        "publish.gap_ms": "\(Double(pacing.gap) / 1e6)",
                        "publish.output_share": "\(pacing.share)",
                    ]
                )
                lastRound = after
                lastProgress = after
            } else if after >= lastProgress + idleProgress && !publisher.isBusy {
                publisher.publishRound(nil)
                lastProgress = after
            }
            if after >= nextHeartbeat {
                try workers.heartbeat()
                nextHeartbeat = after + heartbeatInterval
            }
        }
    }

    /// One group: the decoded requests waiting at the front (up to the group limits) are
    /// resolved, committed with one sync, acknowledged, and dispatched as one fact batch.
    /// With `checkpointing` false (between slices of a round) no checkpoint starts.
    private func serviceIngest(
        _ front: IngestFront,
        wake: ZMQSocket,
        workers: WorkerLinkServer,
        publisher: Publisher,
        layout: PublishedState.Layout,
        checkpointing: Bool = true
    ) throws {
        let requests = front.take(limit: groupLimit, eventLimit: groupEventLimit)
        guard !requests.isEmpty else { return }
        let group: IngestCommitter.Group
        do {
            group = try committer.commit(requests)
        } catch {
            let reason = Array("store: \(error); nothing of this request was stored".utf8)
            try front.send(requests.map { $0.envelope + [IngestProtocol.err, $0.requestID, reason] }, wake: wake)
            metrics.refused(requests.count)
            try workers.resetAllSessions()
            return
        }
        try front.send(
            zip(requests, group.acks).map { $0.envelope + [IngestProtocol.ack, $0.requestID, $1.encode()] },
            wake: wake
        )
        metrics.acknowledged(requests, group.acks)
        try workers.dispatch(group.changes)
        if checkpointing && committer.checkpointIfDue() {
            committer.savePublished(publisher.state.encoded(layout: layout))
        }
    }
}
