import CLinuxShims
import DealModel
import Dispatch
import Foundation
import Logging
import Metrics
import Synchronization
import Wire
import ZeroMQ

/// The daemon's socket thread: ingest, worker link, publication and snapshots.
///
/// One thread owns all four sockets and all mutable state, so every publication round
/// and every snapshot is one consistent state with no locking. The work per iteration is
/// batched: up to `groupLimit` ingest requests are resolved, committed to the log with a
/// single sync, acknowledged, and sent to the workers as one fact batch.
final class DaemonLoop {
    let configuration: DaemonConfiguration
    let context: ZMQContext
    let logger: Logger
    let stop: StopFlag
    let deadWorkers: DeadWorkerInbox
    let spawnedWorkers: SpawnedWorkers
    let model: Model
    let modelBytes: [UInt8]
    let ingest: IngestProcessor

    private var registry: WorkerRegistry
    private var published = PublishedState()
    private var dispatchedLogSeq: UInt64
    /// A group (one log sync, one fact batch) takes at most this many requests and events,
    /// which bounds a fact batch and so, with the outstanding limits, what is in flight.
    private let groupLimit = 256
    private let groupEventLimit = 20_000
    private var statistics = (requests: 0, events: 0, rounds: 0, factsSent: 0)
    /// What each family reads of the facts (see `FamilyProjection`).
    private let projections: [MetricFamily: FamilyProjection]

    init(configuration: DaemonConfiguration, model: Model, modelBytes: [UInt8], context: ZMQContext, logger: Logger,
         stop: StopFlag, deadWorkers: DeadWorkerInbox, spawnedWorkers: SpawnedWorkers) throws {
        self.spawnedWorkers = spawnedWorkers
        self.configuration = configuration
        self.context = context
        self.logger = logger
        self.stop = stop
        self.deadWorkers = deadWorkers
        self.model = model
        self.modelBytes = modelBytes
        projections = Dictionary(uniqueKeysWithValues: configuration.families.map { ($0, FamilyProjection(family: $0, model: model)) })
        let durable = try DurableStore(directory: configuration.dataDirectory, model: model, logger: logger)
        ingest = IngestProcessor(durable: durable)
        logger.info("State restored", metadata: [
            "log_seq": "\(durable.position)", "store.records": "\(durable.store.recordCount)",
            "restore.checkpoint": "\(durable.lastReplay.fromCheckpoint ? "\(durable.checkpointPosition)" : "none")",
            "restore.replayed_events": "\(durable.lastReplay.records)",
            "restore.seconds": "\(String(format: "%.3f", durable.lastReplay.seconds))",
        ])
        dispatchedLogSeq = ingest.logSeq
        registry = WorkerRegistry(families: configuration.families, shards: configuration.shards)
        if let bytes = durable.readPublished() {
            do {
                let saved = try PublishedState(encoded: bytes, slots: registry.slots)
                if saved.logSeq <= durable.position {
                    published = saved
                    logger.info("Published state restored", metadata: [
                        "published.log_seq": "\(saved.logSeq)", "published.series": "\(saved.table.count)",
                    ])
                }
            } catch {
                logger.info("Saved published state not used; workers rebuild it", metadata: ["reason": "\(error)"])
            }
        }
    }

    /// Saves the published state beside the checkpoint (see `PublishedState.encoded`).
    private func savePublished() {
        do { try ingest.durable.writePublished(published.encoded(slots: registry.slots)) } catch {
            logger.error("Saving the published state failed", metadata: ["error": "\(error)"])
        }
    }

    private var expiryNanoseconds: UInt64 {
        UInt64(configuration.heartbeatMilliseconds * configuration.liveness) * 1_000_000
    }

    /// Binds the sockets and runs until the stop flag is set.
    func run(bound: @Sendable () -> Void) throws {
        // The ZAP handler is bound before the ingest socket and stopped after it is closed
        // (defers run in reverse): while no handler is bound, libzmq admits any CURVE key.
        let authenticator = try startAuthenticator()
        defer { authenticator?.stopAndJoin() }
        // The ingest ROUTER lives on its own thread (`IngestFront`), which decodes events;
        // this PAIR is how it wakes the loop.
        let ingestWake = try ZMQSocket(context: context, type: .pair, lingerMilliseconds: 0)
        try ingestWake.bind(IngestFront.wakeEndpoint)
        let front = try IngestFront(context: context, endpoint: configuration.ingestEndpoint, configuration: configuration,
                                    model: model, logger: logger, stop: stop)

        let updates = try ZMQSocket(context: context, type: .xpub, lingerMilliseconds: 0)
        try updates.set(.sendHighWaterMark, configuration.subscriberHighWaterMark)
        try updates.bind(configuration.updatesEndpoint)

        let snapshots = try ZMQSocket(context: context, type: .router, lingerMilliseconds: 1000)
        try snapshots.set(.sendHighWaterMark, 0)
        // Requests up to 64× the limit are read and answered with ERR naming the limit; a
        // peer sending more is disconnected by libzmq first (the memory bound).
        try snapshots.setMaximumMessageSize(Int64(DaemonLoop.maximumSnapshotRequestBytes) * 64)
        try snapshots.bind(configuration.snapshotEndpoint)

        let workers = try ZMQSocket(context: context, type: .router, lingerMilliseconds: 0)
        try workers.set(.sendHighWaterMark, 0)
        try workers.set(.receiveHighWaterMark, 0)
        try workers.set(.routerMandatory, 1)
        try workers.bind(configuration.resolvedWorkerEndpoint)
        defer {
            stop.set()
            front.finish(wake: ingestWake)
            ingestWake.close()
            updates.close()
            snapshots.close()
            workers.close()
        }
        logger.info("Daemon listening", metadata: [
            "endpoint.ingest": "\(configuration.ingestEndpoint)", "endpoint.updates": "\(configuration.updatesEndpoint)",
            "endpoint.snapshot": "\(configuration.snapshotEndpoint)", "endpoint.workers": "\(configuration.resolvedWorkerEndpoint)",
            "workers.slots": "\(registry.slots.count)",
            "ingest.curve": "\(configuration.ingestCurve.map { "on, \($0.connectors.count) connectors" } ?? "off")",
        ])
        bound()

        // Rounds are event-driven: one runs as soon as every slot has reported a new
        // position, at most one per `publish.interval_ms` and not before as long as the last
        // one took (capped at `idle_progress_ms`). Publication so takes at most about half
        // of the loop, and under heavy load a round covers more positions, each series
        // published once for all of them. With nothing new, `_progress` still goes out
        // every `publish.idle_progress_ms`.
        let configuredGap = UInt64(configuration.publishIntervalMilliseconds) * 1_000_000
        var minimumGap = configuredGap
        let idleProgress = UInt64(configuration.idleProgressMilliseconds) * 1_000_000
        var lastRound: UInt64 = 0
        var nextHeartbeat = WorkerRegistry.now()
        while !stop.isSet {
            let acceptIngest = !registry.isBackPressured(batches: configuration.maxOutstandingBatches,
                                                         facts: configuration.maxOutstandingFacts)
            var poller = ZMQPoller()
            poller.add(workers)
            poller.add(snapshots)
            poller.add(updates)
            poller.add(ingestWake)
            let now = WorkerRegistry.now()
            let due = hasPublishableResults ? lastRound + minimumGap : lastRound + idleProgress
            var wait = min(due > now ? Int((due - now + 999_999) / 1_000_000) : 0, configuration.heartbeatMilliseconds)
            if acceptIngest && front.hasRequests { wait = 0 }
            let ready = try poller.poll(timeoutMilliseconds: wait)
            if ready[0] { try serviceWorkers(workers) }
            try continueRebuilds(workers)
            if ready[3] { while try ingestWake.receive(blocking: false) != nil {} }
            if acceptIngest { try serviceIngest(front, wake: ingestWake, workers: workers) }
            if ready[1] { try serviceSnapshots(snapshots) }
            if ready[2] { while try updates.receive(blocking: false) != nil {} }
            for pid in deadWorkers.drain() { dropSessions(pid: pid) }
            let after = WorkerRegistry.now()
            if after >= lastRound + idleProgress || (after >= lastRound + minimumGap && hasPublishableResults) {
                try publishRound(updates)
                lastRound = after
                minimumGap = max(configuredGap, min(WorkerRegistry.now() - after, idleProgress))
            }
            if after >= nextHeartbeat {
                try heartbeat(workers)
                nextHeartbeat = after + UInt64(configuration.heartbeatMilliseconds) * 1_000_000
            }
        }
        // Graceful end: the requests the ingest thread read before the stop are answered
        // (it reads no more); publish what is ready and checkpoint, so the next start
        // replays nothing.
        while front.hasRequests { try serviceIngest(front, wake: ingestWake, workers: workers) }
        try publishRound(updates)
        if ingest.durable.recordsSinceCheckpoint > 0 {
            do { try ingest.durable.checkpoint(wait: true) } catch { logger.error("Final checkpoint failed", metadata: ["error": "\(error)"]) }
        }
        ingest.durable.waitForCheckpoint()
        savePublished()
        logger.info("Daemon loop stopped", metadata: [
            "ingest.requests": "\(statistics.requests)", "ingest.events": "\(statistics.events)",
            "log.records": "\(ingest.logSeq)", "publish.rounds": "\(statistics.rounds)",
            "workers.facts_sent": "\(statistics.factsSent)",
        ])
    }

    // MARK: ingest

    /// With `ingest.curve`, the ZAP handler admitting the configured connector keys; else
    /// none, and a warning when the ingest endpoint is reachable from other hosts.
    private func startAuthenticator() throws -> ZAPAuthenticator? {
        guard let curve = configuration.ingestCurve else {
            if !IngestCurve.isLocal(endpoint: configuration.ingestEndpoint) {
                logger.warning("Ingest endpoint is not loopback and CURVE is off: anyone who can reach it can write events (set ingest.curve, see config/README.md)",
                               metadata: ["endpoint.ingest": "\(configuration.ingestEndpoint)"])
            }
            return nil
        }
        if let mode = (try? FileManager.default.attributesOfItem(atPath: curve.secretKeyFile))?[.posixPermissions] as? Int,
           mode & 0o077 != 0 {
            logger.warning("The ingest secret key file is readable by other users (chmod 600 it)",
                           metadata: ["file": "\(curve.secretKeyFile)", "mode": "\(String(mode, radix: 8))"])
        }
        let log = ConnectorAuthenticationLog(logger: logger)
        let authenticator = try ZAPAuthenticator(context: context, allowed: curve.connectors, onDecision: log.record)
        logger.info("Ingest CURVE on", metadata: [
            "ingest.public_key": "\(curve.keyPair.publicKey)", "ingest.connectors": "\(curve.connectors.values.sorted().joined(separator: ","))",
        ])
        return authenticator
    }

    /// One group: the decoded requests waiting at the front (up to the group limits) are
    /// resolved, committed with one sync, acknowledged, and dispatched as one fact batch.
    private func serviceIngest(_ front: IngestFront, wake: ZMQSocket, workers: ZMQSocket) throws {
        let requests = front.take(limit: groupLimit, eventLimit: groupEventLimit)
        guard !requests.isEmpty else { return }
        var acks: [IngestProtocol.AckBody] = []
        acks.reserveCapacity(requests.count)
        var changes: [FactChange] = []
        for request in requests {
            acks.append(ingest.apply(request, changes: &changes))
            statistics.events += request.frames.count
        }
        statistics.requests += requests.count
        do {
            try ingest.commit()
        } catch {
            let reason = Array("store: \(error); nothing of this request was stored".utf8)
            try front.send(requests.map { $0.envelope + [IngestProtocol.err, $0.requestID, reason] }, wake: wake)
            resetAllSessions(workers)
            return
        }
        try front.send(zip(requests, acks).map { $0.envelope + [IngestProtocol.ack, $0.requestID, $1.encode()] }, wake: wake)
        try dispatch(changes, workers: workers)
        ingest.durable.pollCheckpoint()
        if ingest.durable.recordsSinceCheckpoint >= configuration.checkpointEveryRecords && !ingest.durable.isCheckpointing {
            do { try ingest.durable.checkpoint(wait: false) } catch { logger.error("Checkpoint could not start", metadata: ["error": "\(error)"]) }
            savePublished()
        }
    }

    /// Sends every session its family's projection of the changes (see `FamilyProjection`),
    /// if the position moved. A slot with nothing to apply and nothing outstanding has
    /// reported this position already: it gets no message.
    private func dispatch(_ changes: [FactChange], workers: ZMQSocket) throws {
        let position = ingest.logSeq
        guard position != dispatchedLogSeq || !changes.isEmpty else { return }
        dispatchedLogSeq = position
        rebuildSource = nil  // stale now; sessions still rebuilding keep their own
        let strings = ingest.store.strings.strings
        var blobs: [MetricFamily: (blob: [UInt8], facts: Int)] = [:]
        for (family, projection) in projections {
            let projected = changes.compactMap(projection.project)
            blobs[family] = (WorkerLink.FactBatch.encodeChanges(projected), projected.count)
            statistics.factsSent += projected.count
        }
        for slot in registry.slots {
            guard let session = registry.sessions[slot], let (blob, facts) = blobs[slot.family] else { continue }
            if facts == 0 && session.rebuildCursor == nil && session.outstanding == 0 && session.reported != nil {
                registry.update(slot) { $0.reported = position }
                continue
            }
            let header = WorkerLink.FactBatch.encodeHeader(
                logSeq: position, wantsResult: true, firstStringID: UInt32(session.stringsSent),
                strings: strings[session.stringsSent...])
            let message = [Array(WorkerLink.Command.facts.rawValue.utf8), header, blob]
            if session.rebuildCursor != nil {
                // Behind a rebuild still being sent: keep the order, send it afterwards.
                registry.update(slot) {
                    $0.queued.append(message)
                    $0.stringsSent = strings.count
                    $0.await(position, facts: facts)
                }
                continue
            }
            if try send(workers, session, message) {
                registry.update(slot) {
                    $0.stringsSent = strings.count
                    $0.await(position, facts: facts)
                    $0.lastSent = WorkerRegistry.now()
                }
            } else {
                dropSession(slot, reason: "unreachable")
            }
        }
    }

    private func send(_ workers: ZMQSocket, _ session: WorkerRegistry.Session, _ frames: [[UInt8]]) throws -> Bool {
        do {
            return try workers.send([session.identity] + frames, blocking: false)
        } catch let error where error.code == EHOSTUNREACH {
            return false
        }
    }

    // MARK: workers

    private func serviceWorkers(_ workers: ZMQSocket) throws {
        while let frames = try workers.receive(blocking: false) {
            guard frames.count >= 2 else { continue }
            let identity = frames[0]
            let command = WorkerLink.Command(rawValue: String(decoding: frames[1], as: UTF8.self))
            let slot = registry.slot(of: identity)
            if let slot { registry.update(slot) { $0.lastHeard = WorkerRegistry.now() } }
            switch command {
            case .ready:
                guard frames.count == 3, let ready = try? WorkerLink.Ready.decode(frames[2]) else {
                    _ = try? workers.send([identity, Array(WorkerLink.Command.refused.rawValue.utf8), Array("malformed READY".utf8)], blocking: false)
                    continue
                }
                try admit(ready, identity: identity, workers: workers)
            case .result:
                guard let slot, frames.count >= 3, frames.count % 2 == 1,
                      let header = try? WorkerLink.ResultHeader.decode(frames[2]) else {
                    logger.warning("Malformed or unexpected RESULT from a worker", metadata: ["worker.slot": "\(slot.map { "\($0)" } ?? "none")"])
                    continue
                }
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
            case .heartbeat:
                if slot == nil {
                    // A worker we do not know (daemon restarted): make it register again.
                    _ = try? workers.send([identity, Array(WorkerLink.Command.refused.rawValue.utf8), Array("unknown session, send READY".utf8)], blocking: false)
                }
            default:
                logger.warning("Unknown command from a worker", metadata: ["command": "\(String(decoding: frames[1].prefix(32), as: UTF8.self))"])
            }
        }
    }

    private let rebuildChunk = 20_000
    private let rebuildChunksPerIteration = 4
    /// The rebuild source at the current position, shared by the workers that join there.
    private var rebuildSource: RebuildSource?

    private func currentRebuildSource() -> RebuildSource {
        if let source = rebuildSource, source.logSeq == dispatchedLogSeq { return source }
        let source = RebuildSource(logSeq: dispatchedLogSeq, strings: ingest.store.strings.strings, facts: ingest.store.allFacts())
        rebuildSource = source
        return source
    }

    /// The `FACTS` message of one rebuild chunk: facts `start..<end` of the source as the
    /// family sees them (the first chunk also carries every string).
    private func rebuildMessage(_ source: RebuildSource, family: MetricFamily, from start: Int) -> (message: [[UInt8]], end: Int) {
        let end = min(start + rebuildChunk, source.facts.count)
        let projected = source.facts[start..<end].compactMap(projections[family]!.project)
        let header = WorkerLink.FactBatch.encodeHeader(
            logSeq: source.logSeq, wantsResult: end == source.facts.count,
            firstStringID: start == 0 ? 0 : UInt32(source.strings.count),
            strings: start == 0 ? source.strings[...] : source.strings[source.strings.count...])
        return ([Array(WorkerLink.Command.facts.rawValue.utf8), header, WorkerLink.FactBatch.encodeChanges(projected)], end)
    }

    /// Registers a worker for its slot; its rebuild is then sent a few chunks per loop
    /// iteration (`continueRebuilds`), so the loop keeps serving everyone meanwhile.
    private func admit(_ ready: WorkerLink.Ready, identity: [UInt8], workers: ZMQSocket) throws {
        switch registry.admit(ready, identity: identity, expiry: expiryNanoseconds) {
        case .refused(let reason):
            logger.info("Worker refused", metadata: ["worker.pid": "\(ready.pid)", "reason": "\(reason)"])
            _ = try? workers.send([identity, Array(WorkerLink.Command.refused.rawValue.utf8), Array(reason.utf8)], blocking: false)
        case .admitted(let slot):
            let source = currentRebuildSource()
            logger.info("Worker joined, rebuilding", metadata: [
                "worker.slot": "\(slot)", "worker.pid": "\(ready.pid)", "rebuild.records": "\(source.facts.count)",
                "rebuild.log_seq": "\(source.logSeq)",
            ])
            guard let session = registry.sessions[slot] else { return }
            if try send(workers, session, [Array(WorkerLink.Command.reset.rawValue.utf8), modelBytes]) {
                registry.update(slot) {
                    $0.stringsSent = source.strings.count
                    $0.awaited = [(source.logSeq, 0)]
                    $0.outstandingFacts = 0
                    $0.rebuild = source
                    $0.rebuildCursor = 0
                }
            } else {
                dropSession(slot, reason: "unreachable")
            }
        }
    }

    /// Encodes and sends the next chunks of every rebuild in progress, then the live
    /// batches queued behind a finished one.
    private func continueRebuilds(_ workers: ZMQSocket) throws {
        var rebuilding = false
        for slot in registry.slots {
            guard let session = registry.sessions[slot], let cursor = session.rebuildCursor, let source = session.rebuild else { continue }
            var next = cursor
            var finished = false
            var ok = true
            for _ in 0..<rebuildChunksPerIteration where ok && !finished {
                let (message, end) = rebuildMessage(source, family: slot.family, from: next)
                ok = try send(workers, session, message)
                next = end
                finished = end == source.facts.count
            }
            if ok && finished {
                for message in session.queued where ok { ok = try send(workers, session, message) }
            }
            guard ok else {
                dropSession(slot, reason: "unreachable during rebuild")
                continue
            }
            rebuilding = rebuilding || !finished
            registry.update(slot) {
                if finished {
                    $0.rebuildCursor = nil
                    $0.rebuild = nil
                    $0.queued = []
                } else {
                    $0.rebuildCursor = next
                }
                $0.lastSent = WorkerRegistry.now()
            }
        }
        // Every rebuild sent: the facts snapshot is garbage until the next worker joins.
        if !rebuilding && rebuildSource != nil {
            rebuildSource = nil
            CLinuxShims_releaseFreeMemory()
        }
    }

    private func dropSession(_ slot: Slot, reason: String) {
        logger.warning("Worker session dropped", metadata: ["worker.slot": "\(slot)", "reason": "\(reason)"])
        registry.drop(slot)
    }

    private func dropSessions(pid: Int32) {
        for slot in registry.slots where registry.sessions[slot]?.pid == Int(pid) {
            dropSession(slot, reason: "process \(pid) exited")
        }
    }

    /// After the store was reloaded, every worker must be rebuilt from it.
    private func resetAllSessions(_ workers: ZMQSocket) {
        for slot in registry.slots {
            if let s = registry.sessions[slot] {
                _ = try? workers.send([s.identity, Array(WorkerLink.Command.refused.rawValue.utf8),
                                       Array("daemon state reloaded, send READY".utf8)], blocking: false)
            }
            registry.drop(slot)
        }
        dispatchedLogSeq = ingest.logSeq
    }

    private func heartbeat(_ workers: ZMQSocket) throws {
        let now = WorkerRegistry.now()
        let interval = UInt64(configuration.heartbeatMilliseconds) * 1_000_000
        for slot in registry.slots {
            guard let s = registry.sessions[slot] else { continue }
            if now - s.lastHeard > expiryNanoseconds {
                dropSession(slot, reason: "silent for \(configuration.liveness) heartbeats")
                // A spawned worker that stopped answering is hung: kill it so the
                // supervisor starts a fresh one. (A remote worker is only dropped.)
                if spawnedWorkers.contains(Int32(s.pid)) {
                    logger.warning("Killing hung worker", metadata: ["worker.slot": "\(slot)", "worker.pid": "\(s.pid)"])
                    kill(Int32(s.pid), SIGKILL)
                }
                continue
            }
            if now - s.lastSent >= interval {
                if try send(workers, s, [Array(WorkerLink.Command.heartbeat.rawValue.utf8)]) {
                    registry.update(slot) { $0.lastSent = now }
                } else {
                    dropSession(slot, reason: "unreachable")
                }
            }
        }
    }

    // MARK: publication

    /// Whether a round would publish something: every slot has reported, and some result
    /// is at or below the common position.
    private var hasPublishableResults: Bool {
        guard let position = registry.commonPosition else { return false }
        return position > published.logSeq || registry.hasResults(upTo: position)
    }

    /// One publication round: takes every result up to the common position, coalesces
    /// them per topic, publishes the changed series and `_progress`.
    private func publishRound(_ updates: ZMQSocket) throws {
        statistics.rounds += 1
        guard let position = registry.commonPosition, position >= published.logSeq else {
            try updates.send([Topics.progress, Topics.position(seq: published.seq, logSeq: published.logSeq)], blocking: false)
            return
        }
        // Every topic belongs to one slot (its family and shard), so only the results of
        // one slot can need coalescing.
        var changes: [(topic: TopicKey, payload: [UInt8], slot: Slot)] = []
        for (slot, results) in registry.takeResults(upTo: position) {
            if results.count == 1 && !results[0].isFull {
                for s in results[0].series { changes.append((s.topic, s.payload, slot)) }
                continue
            }
            var order: [TopicKey] = []
            var latest: [TopicKey: [UInt8]] = [:]
            func set(_ topic: TopicKey, _ payload: [UInt8]) {
                if latest.updateValue(payload, forKey: topic) == nil { order.append(topic) }
            }
            // A session's first result holds all its series: whatever the slot published
            // before and is not in it is gone. (It is always the slot's first result here:
            // results of an earlier session are dropped when a new one is admitted.)
            for result in results {
                if result.isFull {
                    let fresh = Set(result.series.lazy.filter { !$0.payload.isEmpty }.map(\.topic))
                    for gone in published.topics(of: slot).subtracting(fresh) { set(gone, []) }
                }
                for s in result.series { set(s.topic, s.payload) }
            }
            for topic in order { changes.append((topic, latest[topic]!, slot)) }
        }
        try published.publish(round: changes, logSeq: position) { try updates.send($0, blocking: false) }
    }

    // MARK: snapshots

    /// The largest snapshot request (command and prefix) answered; a bigger one gets `ERR`.
    static let maximumSnapshotRequestBytes = 64 << 10

    private func serviceSnapshots(_ socket: ZMQSocket) throws {
        while let frames = try socket.receive(blocking: false) {
            let (envelope, body) = IngestProtocol.splitEnvelope(frames)
            let size = body.reduce(0) { $0 + $1.count }
            let limit = DaemonLoop.maximumSnapshotRequestBytes
            guard size <= limit else {
                let reason = "snapshot request of \(size) bytes is over the limit of \(limit) bytes (64 KiB)"
                try socket.send(envelope + [IngestProtocol.err, Array(reason.utf8)], blocking: false)
                continue
            }
            guard let command = body.first, command == IngestProtocol.snapshot, body.count <= 2 else {
                let shown = String(decoding: (body.first ?? []).prefix(32), as: UTF8.self).filter { !$0.isNewline }
                let reason = body.first == IngestProtocol.snapshot ? "SNAPSHOT takes one prefix frame"
                    : "unknown command \"\(shown)\" (expected SNAPSHOT)"
                try socket.send(envelope + [IngestProtocol.err, Array(reason.utf8)], blocking: false)
                continue
            }
            let prefix = body.count > 1 ? body[1] : []
            for (topic, payload) in published.snapshot(prefix: prefix) {
                try socket.send(envelope + [IngestProtocol.kv, topic, payload], blocking: false)
            }
            try socket.send(envelope + [IngestProtocol.end, Topics.position(seq: published.seq, logSeq: published.logSeq)],
                            blocking: false)
        }
    }
}

/// Pids of worker processes that exited, from the supervisor to the loop thread.
final class DeadWorkerInbox: Sendable {
    private let pids = Mutex<[Int32]>([])
    func post(_ pid: Int32) { pids.withLock { $0.append(pid) } }
    func drain() -> [Int32] { pids.withLock { p in defer { p.removeAll() }; return p } }
}

/// Pids of the worker processes this daemon spawned (kept by the supervisor), so the loop
/// may kill a hung one and never a process it does not own.
final class SpawnedWorkers: Sendable {
    private let pids = Mutex<Set<Int32>>([])
    func insert(_ pid: Int32) { _ = pids.withLock { $0.insert(pid) } }
    func remove(_ pid: Int32) { _ = pids.withLock { $0.remove(pid) } }
    func contains(_ pid: Int32) -> Bool { pids.withLock { $0.contains(pid) } }
}
