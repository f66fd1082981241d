import CLinuxShims
import DealModel
import Foundation
import Logging
import PipelineMetrics
import Wire
import ZeroMQ

/// Admission, partition plans and rebuilds: a worker that sends `READY` gets a session and
/// a fair share of its family's partitions; each share is a lane, rebuilt from the current
/// facts a couple of acknowledged chunks at a time. Kept beside `WorkerLinkServer`, whose
/// state it changes, on the same loop thread.
extension WorkerLinkServer {
    /// The facts at the dispatched position, which the waiting changes are sent up to
    /// first: a lane rebuilt from the store and then sent those changes again would count
    /// them twice.
    func currentRebuildSource() throws -> RebuildSource {
        try sendPendingChanges()
        if let source = rebuildSource, source.logSeq == dispatchedLogSeq { return source }
        let source = RebuildSource(
            logSeq: dispatchedLogSeq,
            strings: committer.store.strings.strings,
            facts: committer.store.allFacts()
        )
        rebuildSource = source
        return source
    }

    /// Admits a worker: a session for its family, `RESET`, then its share of partitions.
    func admit(_ ready: WorkerLink.Ready, identity: [UInt8]) throws {
        guard let family = MetricFamily(rawValue: ready.family), configuration.families.contains(family) else {
            logger.info(
                "Worker refused",
                metadata: ["worker.pid": "\(ready.pid)", "reason": "daemon does not serve family \(ready.family)"]
            )
            refuse(identity, "daemon does not serve metric family \(ready.family)")
            return
        }
        let spawnedPID = ready.token.isEmpty ? nil : spawnedWorkers.pid(forToken: ready.token)
        guard spawnedPID != nil || acceptsUnspawnedWorkers else {
            let reason =
                "the worker endpoint has no workers.curve: only workers this daemon spawned may join "
                + "(set workers.curve to admit workers by key)"
            logger.warning(
                "Worker refused",
                metadata: ["worker.host": "\(ready.host)", "worker.pid": "\(ready.pid)", "reason": "\(reason)"]
            )
            refuse(identity, reason)
            return
        }
        if let old = registry.session(of: identity) { try dropSession(old, reason: "sent READY again") }
        let id = registry.add(
            identity: identity,
            family: family,
            pid: ready.pid,
            host: ready.host,
            spawnedPID: spawnedPID
        )
        guard let session = registry.sessions[id], try send(session, [WorkerLink.Command.reset.frame, modelBytes])
        else {
            try dropSession(id, reason: "unreachable")
            return
        }
        logger.info(
            "Worker joined",
            metadata: [
                "worker.session": "\(id)", "worker.family": "\(family.rawValue)", "worker.host": "\(ready.host)",
                "worker.pid": "\(ready.pid)", "worker.spawned": "\(spawnedPID != nil)",
            ]
        )
        try rebalance(family)
    }

    /// Rebalances `family` and carries the plan out: `ASSIGN` new lanes, `RELEASE` what a
    /// session no longer needs. Every move is logged here and again when it completes.
    func rebalance(_ family: MetricFamily) throws {
        let plan = registry.rebalance(family)
        for (id, partitions) in plan.release {
            guard let session = registry.sessions[id] else { continue }
            if try !send(session, [WorkerLink.Command.release.frame, WorkerLink.encodeRelease(partitions.sorted())]) {
                try dropSession(id, reason: "unreachable")
            }
        }
        for move in plan.moves {
            logger.info(
                "Partitions moving",
                metadata: [
                    "worker.family": "\(family.rawValue)",
                    "move.partitions": "\(PartitionSet(count: registry.partitionCount, members: move.partitions))",
                    "move.from":
                        "\(move.from.flatMap { registry.sessions[$0] }.map(WorkerLinkServer.describe) ?? "none (vacant)")",
                    "move.to": "\(registry.sessions[move.to].map(WorkerLinkServer.describe) ?? "\(move.to)")",
                ]
            )
        }
        for (id, partitions) in plan.assign {
            let source = try currentRebuildSource()
            guard let lane = registry.openLane(id, partitions: partitions, source: source),
                let session = registry.sessions[id]
            else { continue }
            let assign = WorkerLink.Assign(
                lane: lane,
                logSeq: source.logSeq,
                partitionCount: registry.partitionCount,
                partitions: partitions.members
            )
            if try !send(session, [WorkerLink.Command.assign.frame, assign.encode()]) {
                try dropSession(id, reason: "unreachable")
            }
        }
        try continueRebuilds()
    }

    /// Sends each lane being rebuilt its next chunks, up to `chunksInFlight` unacknowledged.
    func continueRebuilds() throws {
        var rebuilding = false
        var unreachable: [WorkerRegistry.SessionID] = []
        for (id, session) in registry.sessions {
            for (laneID, lane) in session.lanes {
                guard let source = lane.rebuild else { continue }
                var cursor = lane.cursor
                var inFlight = lane.chunksInFlight
                var stringsSent = registry.sessions[id]!.stringsSent
                var finished = false
                while inFlight.count < maxChunksInFlight && !finished {
                    let (message, end) = source.message(
                        lane: laneID,
                        from: cursor,
                        count: rebuildChunk,
                        stringsSent: stringsSent,
                        projection: projections[session.family]!
                    )
                    guard try send(session, message) else {
                        unreachable.append(id)
                        break
                    }
                    stringsSent = max(stringsSent, source.strings.count)
                    inFlight.append(WorkerRegistry.now())
                    cursor = end
                    finished = end == source.facts.count
                }
                rebuilding = rebuilding || !finished
                registry.update(id) { s in
                    s.stringsSent = stringsSent
                    s.lanes[laneID]?.cursor = cursor
                    s.lanes[laneID]?.chunksInFlight = inFlight
                    if finished { s.lanes[laneID]?.rebuild = nil }
                    s.lastSent = WorkerRegistry.now()
                }
            }
        }
        for id in Set(unreachable) { try dropSession(id, reason: "unreachable during rebuild") }
        // Every rebuild sent: the facts snapshot is garbage until the next lane opens.
        if !rebuilding && rebuildSource != nil
            && !registry.sessions.values.contains(where: { $0.lanes.values.contains { $0.rebuild != nil } })
        {
            rebuildSource = nil
            CLinuxShims_releaseFreeMemory()
        }
    }
}
