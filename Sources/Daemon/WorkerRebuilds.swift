import CLinuxShims
import DealModel
import Foundation
import Logging
import PipelineMetrics
import Wire
import ZeroMQ

/// Admission and rebuilds: a worker that sends `READY` takes its slot and is rebuilt from
/// the current facts, a few chunks per loop iteration, with live batches queued behind.
/// Kept beside `WorkerLinkServer`, whose state it changes, on the same loop thread.
extension WorkerLinkServer {
    func currentRebuildSource() -> RebuildSource {
        if let source = rebuildSource, source.logSeq == dispatchedLogSeq { return source }
        let source = RebuildSource(
            logSeq: dispatchedLogSeq,
            strings: committer.store.strings.strings,
            facts: committer.store.allFacts()
        )
        rebuildSource = source
        return source
    }

    /// Registers a worker for its slot; its rebuild is then sent by `continueRebuilds`.
    func admit(_ ready: WorkerLink.Ready, identity: [UInt8]) throws {
        switch registry.admit(ready, identity: identity, expiry: expiryNanoseconds) {
        case .refused(let reason):
            logger.info("Worker refused", metadata: ["worker.pid": "\(ready.pid)", "reason": "\(reason)"])
            refuse(identity, reason)
        case .admitted(let slot):
            metrics?.workerAdmitted(slot, pid: Int(ready.pid))
            let source = currentRebuildSource()
            logger.info(
                "Worker joined, rebuilding",
                metadata: [
                    "worker.slot": "\(slot)", "worker.pid": "\(ready.pid)", "rebuild.records": "\(source.facts.count)",
                    "rebuild.log_seq": "\(source.logSeq)",
                ]
            )
            guard let session = registry.sessions[slot] else { return }
            if try send(session, [Array(WorkerLink.Command.reset.rawValue.utf8), modelBytes]) {
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
    func continueRebuilds() throws {
        var rebuilding = false
        for slot in registry.slots {
            guard let session = registry.sessions[slot], let cursor = session.rebuildCursor,
                let source = session.rebuild
            else { continue }
            var next = cursor
            var finished = false
            var ok = true
            for _ in 0..<rebuildChunksPerIteration where ok && !finished {
                let (message, end) = source.message(
                    from: next,
                    count: rebuildChunk,
                    projection: projections[slot.family]!
                )
                ok = try send(session, message)
                next = end
                finished = end == source.facts.count
            }
            if ok && finished {
                for message in session.queued where ok { ok = try send(session, message) }
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
}
