import DealModel
import PipelineMetrics
import Wire

/// The fan-out: every committed group becomes one fact batch per family, projected (see
/// `FamilyProjection`), sent to every session of that family (each applies it to all its
/// lanes). Kept beside `WorkerLinkServer`, whose state it changes, on the same loop thread.
extension WorkerLinkServer {
    /// Sends every session its family's projection of the changes, if the position moved.
    /// A session with nothing to apply and nothing outstanding has reported this position
    /// already: it gets no message.
    func dispatch(_ changes: [FactChange]) throws {
        let position = committer.logSeq
        guard position != dispatchedLogSeq || !changes.isEmpty else { return }
        dispatchedLogSeq = position
        rebuildSource = nil  // stale now; lanes still rebuilding keep their own
        let strings = committer.store.strings.strings
        var blobs: [MetricFamily: (blob: [UInt8], facts: Int)] = [:]
        for (family, projection) in projections {
            let projected = changes.compactMap(projection.project)
            blobs[family] = (WorkerLink.FactBatch.encodeChanges(projected), projected.count)
            factsSent += projected.count
        }
        var unreachable: [WorkerRegistry.SessionID] = []
        for (id, session) in registry.sessions {
            guard let (blob, facts) = blobs[session.family] else { continue }
            if facts == 0 && session.outstanding == 0 && session.reported != nil {
                registry.update(id) { $0.reported = position }
                continue
            }
            let header = WorkerLink.FactBatch.encodeHeader(
                logSeq: position,
                wantsResult: true,
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
