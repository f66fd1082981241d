import DealModel
import Dispatch
import Wire

/// Resolves decoded ingest requests against the record store (PROTOCOL.md §2).
///
/// Owned by the daemon's loop thread; the decoding happened on the ingest thread
/// (`IngestFront`). An `EVENTS` request is resolved event by event, in arrival order, and
/// its `ACK` waits until the log group holding its events is committed.
final class IngestProcessor {
    let durable: DurableStore
    let metrics: DaemonMetrics?

    init(durable: DurableStore, metrics: DaemonMetrics? = nil) {
        self.durable = durable
        self.metrics = metrics
    }

    /// The input position: records ever made durable (or pending in this group).
    var logSeq: UInt64 { durable.position }

    var store: RecordStore { durable.store }

    /// Resolves the decoded events of one request against the record store, in order,
    /// appending the ones that change state to the log group and their fact changes to
    /// `changes`.
    func apply(_ request: IngestFront.Request, changes: inout [FactChange]) -> IngestProtocol.AckBody {
        var ack = IngestProtocol.AckBody()
        for (index, decoded) in request.decoded.enumerated() {
            switch decoded {
            case .failure(let rejection):
                ack.rejected.append(.init(index: index, error: rejection.description))
            case .success(let event):
                let resolution = durable.apply(event)
                switch resolution.outcome {
                case .applied: ack.applied += 1
                case .duplicate: ack.duplicate += 1
                case .stale: ack.stale += 1
                }
                if resolution.changedState { durable.append(request.frames[index], encoding: request.encoding) }
                if let change = resolution.change { changes.append(change) }
            }
        }
        ack.logSeq = durable.position
        return ack
    }

    /// Makes the current group durable; on failure nothing of it stays applied (see
    /// `DurableStore.commit`) and the caller answers the group with `ERR`.
    func commit() throws {
        let started = DispatchTime.now().uptimeNanoseconds
        try durable.commit()
        metrics?.synced(nanoseconds: DispatchTime.now().uptimeNanoseconds &- started, logSeq: durable.position)
    }
}
