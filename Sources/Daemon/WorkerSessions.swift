import DealModel
import Foundation
import Logging
import PipelineMetrics
import Wire

/// How worker sessions end and what is known of them: the process exited, said `BYE`, the
/// store was reloaded, the session went silent (heartbeats, Paranoid Pirate) or held work
/// without answering; and `STATUS`. Kept beside `WorkerLinkServer`, whose state it
/// changes, on the same loop thread.
extension WorkerLinkServer {
    /// Ends a session; its partitions go to the family's other sessions.
    func dropSession(_ id: WorkerRegistry.SessionID, reason: String, level: Logger.Level = .warning) throws {
        guard let session = registry.remove(id, dispatched: dispatchedLogSeq) else { return }
        reported[id] = nil
        logger.log(
            level: level,
            "Worker session ended",
            metadata: [
                "worker.session": "\(id)", "worker.family": "\(session.family.rawValue)",
                "worker.host": "\(session.host)", "worker.pid": "\(session.pid)", "reason": "\(reason)",
            ]
        )
        try rebalance(session.family)
    }

    /// The worker said `BYE`: it gets no partitions any more and its own move to the others
    /// now; it is dropped once they have (or at once if it owns nothing).
    func leave(_ id: WorkerRegistry.SessionID) throws {
        guard let session = registry.sessions[id], !session.leaving else { return }
        registry.update(id) { $0.leaving = true }
        logger.info(
            "Worker leaving",
            metadata: [
                "worker.session": "\(id)", "worker.family": "\(session.family.rawValue)",
                "worker.host": "\(session.host)", "worker.pid": "\(session.pid)",
                "worker.partitions": "\(registry.owned(by: id))",
            ]
        )
        try rebalance(session.family)
        let alone = registry.sessions.values.allSatisfy { $0.family != session.family || $0.leaving }
        if registry.owned(by: id).isEmpty || alone {
            // Nothing to hand over, or nobody to hand it to: it may go now (its partitions,
            // if any, are vacant until a worker of the family joins).
            refuse(session.identity, alone ? "left: no other worker of the family takes over" : "left")
            try dropSession(id, reason: "left", level: .info)
        }
    }

    /// The supervisor saw process `pid` exit: its sessions are gone.
    func dropSessions(pid: Int32) throws {
        for session in registry.sessions.values where session.spawnedPID == pid {
            try dropSession(session.id, reason: "process \(pid) exited")
        }
    }

    /// After the store was reloaded, every worker must be rebuilt from it.
    func resetAllSessions() throws {
        dispatchedLogSeq = committer.logSeq
        pendingChanges.removeAll()
        rebuildSource = nil
        for session in registry.sessions.values {
            refuse(session.identity, "daemon state reloaded, send READY")
            registry.remove(session.id, dispatched: dispatchedLogSeq)
            reported[session.id] = nil
        }
        registry.addBarrier(dispatchedLogSeq)
    }

    /// Heartbeats to sessions that have had nothing for an interval; drops silent ones and
    /// ones that hold work unanswered for longer than `workers.result_timeout_ms`.
    func heartbeat() throws {
        defer { metrics?.workers(registry) }
        let now = WorkerRegistry.now()
        let interval = UInt64(configuration.heartbeatMilliseconds) * 1_000_000
        let resultTimeout = UInt64(configuration.resultTimeoutMilliseconds) * 1_000_000
        for session in registry.sessions.values.sorted(by: { $0.id < $1.id }) {
            guard registry.sessions[session.id] != nil else { continue }
            var hung: String?
            if now - session.lastHeard > expiryNanoseconds {
                hung = "silent for \(configuration.liveness) heartbeats"
            } else if let oldest = session.oldestUnanswered, now - oldest > resultTimeout {
                hung = "no answer for \(configuration.resultTimeoutMilliseconds) ms to work it was sent"
            }
            if let hung {
                try dropSession(session.id, reason: hung)
                // A spawned worker that stopped answering is hung: kill it so the supervisor
                // starts a fresh one. Only a child this daemon started, proved by its token;
                // never a pid a peer announced.
                if let pid = session.spawnedPID, spawnedWorkers.contains(pid) {
                    logger.warning(
                        "Killing hung worker",
                        metadata: ["worker.session": "\(session.id)", "worker.pid": "\(pid)"]
                    )
                    kill(pid, SIGKILL)
                }
                continue
            }
            if now - session.lastSent >= interval {
                if try send(session, [WorkerLink.Command.heartbeat.frame]) {
                    registry.update(session.id) { $0.lastSent = now }
                } else {
                    try dropSession(session.id, reason: "unreachable")
                }
            }
        }
    }

    /// The `STATUS` answer: every worker session (family, host, pid, partitions owned and
    /// being rebuilt, facts behind, last heard), as one JSON object (docs/workers.md).
    func statusJSON() -> [UInt8] {
        let now = WorkerRegistry.now()
        func list(_ set: PartitionSet) -> JSONValue { .array(set.members.map { .int(Int64($0)) }) }
        let workers = registry.sessions.values.sorted { ($0.family.rawValue, $0.id) < ($1.family.rawValue, $1.id) }
            .map { session -> JSONValue in
                var building = PartitionSet(count: registry.partitionCount)
                for lane in session.lanes.values where lane.completeAt == nil {
                    for p in lane.partitions.members { building.insert(p) }
                }
                return .object([
                    ("session", .int(Int64(session.id))), ("family", .string(session.family.rawValue)),
                    ("host", .string(session.host)), ("pid", .int(Int64(session.pid))),
                    ("spawned", .bool(session.spawnedPID != nil)), ("leaving", .bool(session.leaving)),
                    ("partitions", list(registry.owned(by: session.id))), ("building", list(building)),
                    ("facts_behind", .int(Int64(session.outstandingFacts))),
                    ("batches_behind", .int(Int64(session.outstanding))),
                    ("reported_log_seq", session.reported.map { .int(Int64($0)) } ?? .null),
                    ("last_heard_ms", .int(Int64((now - min(now, session.lastHeard)) / 1_000_000))),
                ])
            }
        let vacant = registry.families.filter { registry.vacant($0) > 0 }
            .map { ($0.rawValue, JSONValue.int(Int64(registry.vacant($0)))) }
        var out: [UInt8] = []
        JSONWriter.append(
            .object([
                ("partitions", .int(Int64(registry.partitionCount))),
                ("dispatched_log_seq", .int(Int64(dispatchedLogSeq))), ("vacant", .object(vacant)),
                ("workers", .array(workers)),
            ]),
            to: &out
        )
        return out
    }
}
