import DealModel
import PipelineMetrics
import Wire

/// The fan-out: every committed group becomes one fact batch per family, projected (see
/// `FamilyProjection`), sent to every session of that family. Kept beside
/// `WorkerLinkServer`, whose state it changes, on the same loop thread.
extension WorkerLinkServer {
    /// Sends every session its family's projection of the changes (see `FamilyProjection`),
    /// if the position moved. A slot with nothing to apply and nothing outstanding has
    /// reported this position already: it gets no message.
    func dispatch(_ changes: [FactChange]) throws {
        let position = committer.logSeq
        guard position != dispatchedLogSeq || !changes.isEmpty else { return }
        dispatchedLogSeq = position
        rebuildSource = nil  // stale now; sessions still rebuilding keep their own
        let strings = committer.store.strings.strings
        var blobs: [MetricFamily: (blob: [UInt8], facts: Int)] = [:]
        for (family, projection) in projections {
            let projected = changes.compactMap(projection.project)
            blobs[family] = (WorkerLink.FactBatch.encodeChanges(projected), projected.count)
            factsSent += projected.count
        }
        for slot in registry.slots {
            guard let session = registry.sessions[slot], let (blob, facts) = blobs[slot.family] else { continue }
            if facts == 0 && session.rebuildCursor == nil && session.outstanding == 0 && session.reported != nil {
                registry.update(slot) { $0.reported = position }
                continue
            }
            let header = WorkerLink.FactBatch.encodeHeader(
                logSeq: position,
                wantsResult: true,
                firstStringID: UInt32(session.stringsSent),
                strings: strings[session.stringsSent...]
            )
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
            if try send(session, message) {
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
}
