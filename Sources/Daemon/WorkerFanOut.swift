import DealModel
import PipelineMetrics
import Wire

/// The fan-out: every committed group becomes one fact batch per family, projected (see
/// `FamilyProjection`), sent to every session of that family (each applies it to all its
/// lanes), and now and then a barrier. Kept beside `WorkerLinkServer`, whose state it
/// changes, on the same loop thread.
extension WorkerLinkServer {
    /// Sends every session its family's projection of the changes, if the position moved;
    /// the batch is a barrier (answered at its position) if one is due. A session with
    /// nothing to apply and nothing unanswered gets no message: at a barrier its state is
    /// known to be what it last reported.
    func dispatch(_ changes: [FactChange]) throws {
        let position = committer.logSeq
        guard position != dispatchedLogSeq || !changes.isEmpty else { return }
        dispatchedLogSeq = position
        rebuildSource = nil  // stale now; lanes still rebuilding keep their own
        let now = WorkerRegistry.now()
        let barrier = now - lastBarrier >= barrierGap
        if barrier {
            lastBarrier = now
            registry.addBarrier(position)
        }
        var blobs: [MetricFamily: (blob: [UInt8], facts: Int)] = [:]
        for (family, projection) in projections {
            let projected = changes.compactMap(projection.project)
            blobs[family] = (WorkerLink.FactBatch.encodeChanges(projected), projected.count)
            factsSent += projected.count
        }
        try send(position: position, barrier: barrier, blobs: blobs)
    }

    /// When the last dispatched position is not a barrier yet, when the next one is due.
    var nextBarrierDue: UInt64? {
        registry.lastBarrier == dispatchedLogSeq ? nil : lastBarrier + barrierGap
    }

    /// Sends a barrier at the dispatched position if one is due and the last batch was not
    /// one (an empty batch to every session with work unanswered).
    func barrierIfDue() throws {
        guard let due = nextBarrierDue, WorkerRegistry.now() >= due else { return }
        lastBarrier = WorkerRegistry.now()
        registry.addBarrier(dispatchedLogSeq)
        let empty = WorkerLink.FactBatch.encodeChanges([FactChange]())
        try send(
            position: dispatchedLogSeq,
            barrier: true,
            blobs: Dictionary(uniqueKeysWithValues: projections.keys.map { ($0, (empty, 0)) })
        )
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
