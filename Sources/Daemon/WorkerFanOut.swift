import DealModel
import PipelineMetrics
import Wire

/// The fan-out: committed changes become one fact batch per family, projected (see
/// `FamilyProjection`), sent to every session of that family (each applies it to all its
/// lanes), and now and then a barrier. Kept beside `WorkerLinkServer`, whose state it
/// changes, on the same loop thread.
///
/// Changes are not sent group by group. Rounds publish only at barriers, so a batch sent
/// before the barrier that answers for it would only wake ten workers earlier for nothing:
/// the committed changes wait here (`pendingChanges`) until a barrier is due or they reach
/// `fanOutBatchFacts`. At a light load that is at once (the last barrier is long past);
/// with many small requests (a webhook connector sends one event per request) one batch
/// per family covers every request of a round instead of one each, and the ACKs, which
/// follow the sync alone, wait for none of it.
extension WorkerLinkServer {
    /// Takes a committed group's changes: sent now if a barrier is due or enough are
    /// waiting, otherwise with the next barrier.
    func dispatch(_ changes: [FactChange]) throws {
        pendingChanges.append(contentsOf: changes)
        guard hasUndispatched else { return }
        let barrier = nextBarrierDue.map { WorkerRegistry.now() >= $0 } ?? false
        guard barrier || pendingChanges.count >= fanOutBatchFacts else { return }
        try sendPending(barrier: barrier)
    }

    /// Sends the waiting changes now, without a barrier: before a rebuild source is taken
    /// at the dispatched position, which must then be the store's.
    func sendPendingChanges() throws {
        guard hasUndispatched else { return }
        try sendPending(barrier: false)
    }

    /// Whether the workers have not been sent everything committed: changes wait, or the
    /// position moved without any.
    private var hasUndispatched: Bool { committer.logSeq != dispatchedLogSeq || !pendingChanges.isEmpty }

    /// When the committed position is not a barrier yet, when the next one is due (nil
    /// while the last one waits for an answer: the answer wakes the loop).
    var nextBarrierDue: UInt64? {
        if registry.lastBarrier == committer.logSeq && pendingChanges.isEmpty || registry.isAwaitingBarrier {
            return nil
        }
        return lastBarrier + barrierGap
    }

    /// Sends a barrier at the committed position if one is due: the waiting changes, or an
    /// empty batch to every session with work unanswered.
    func barrierIfDue() throws {
        guard let due = nextBarrierDue, WorkerRegistry.now() >= due else { return }
        try sendPending(barrier: true)
    }

    /// Sends every session its family's projection of the waiting changes at the committed
    /// position. A session with nothing to apply and nothing unanswered gets no message:
    /// at a barrier its state is known to be what it last reported.
    private func sendPending(barrier: Bool) throws {
        let position = committer.logSeq
        let changes = pendingChanges
        pendingChanges.removeAll(keepingCapacity: true)
        dispatchedLogSeq = position
        rebuildSource = nil  // stale now; lanes still rebuilding keep their own
        if barrier {
            lastBarrier = WorkerRegistry.now()
            registry.addBarrier(position)
        }
        var blobs: [MetricFamily: (blob: [UInt8], facts: Int)] = [:]
        for (family, projection) in projections {
            var projected: [FactChange] = []
            projected.reserveCapacity(changes.count)
            for change in changes {
                if let p = projection.project(change) { projected.append(p) }
            }
            blobs[family] = (WorkerLink.FactBatch.encodeChanges(projected), projected.count)
            factsSent += projected.count
        }
        try send(position: position, barrier: barrier, blobs: blobs)
    }

    private func send(position: UInt64, barrier: Bool, blobs: [MetricFamily: (blob: [UInt8], facts: Int)]) throws {
        let strings = committer.store.strings.strings
        var unreachable: [WorkerRegistry.SessionID] = []
        for (id, session) in registry.sessions {
            guard let (blob, facts) = blobs[session.family] else { continue }
            if facts == 0 && session.outstanding == 0 {
                if barrier && session.reported != nil { registry.update(id) { $0.reported = position } }
                continue
            }
            let header = WorkerLink.FactBatch.encodeHeader(
                logSeq: position,
                wantsResult: barrier,
                firstStringID: UInt32(session.stringsSent),
                strings: strings[session.stringsSent...]
            )
            if try send(session, [WorkerLink.Command.facts.frame, header, blob]) {
                let now = WorkerRegistry.now()
                registry.update(id) {
                    $0.stringsSent = strings.count
                    $0.await(position, facts: facts, at: now)
                    $0.lastSent = now
                }
            } else {
                unreachable.append(id)
            }
        }
        for id in unreachable { try dropSession(id, reason: "unreachable") }
    }
}
