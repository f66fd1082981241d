import DealModel
import Dispatch
import Foundation
import Logging
import Wire

/// Resolves decoded ingest requests against the record store, commits them to the event
/// log as one group, and decides when to checkpoint (PROTOCOL.md §2).
///
/// Owned by the daemon's loop thread; the decoding happened on the ingest thread
/// (`IngestFront`). An `EVENTS` request is resolved event by event, in arrival order, and
/// its `ACK` waits until the group holding its events is committed with one sync. This is
/// the only part of the loop that touches the `DurableStore`.
final class IngestCommitter {
    /// What one committed group gives the rest of the loop: an `ACK` body per request, in
    /// order, and the fact changes to fan out to the workers.
    struct Group {
        var acks: [IngestProtocol.AckBody]
        var changes: [FactChange]
    }

    private let durable: DurableStore
    private let checkpointEveryRecords: UInt64
    private let logger: Logger
    private let metrics: DaemonMetrics?
    private(set) var statistics = (requests: 0, events: 0)

    /// Opens the data directory: loads the checkpoint and replays the logs after it.
    init(configuration: DaemonConfiguration, model: Model, logger: Logger, metrics: DaemonMetrics? = nil) throws {
        durable = try DurableStore(directory: configuration.dataDirectory, model: model, logger: logger)
        self.metrics = metrics
        if let metrics {
            durable.onCheckpoint = { seconds, ok in metrics.checkpointWritten(seconds: seconds, ok: ok) }
        }
        checkpointEveryRecords = configuration.checkpointEveryRecords
        self.logger = logger
        logger.info(
            "State restored",
            metadata: [
                "log_seq": "\(durable.position)", "store.records": "\(durable.store.recordCount)",
                "restore.checkpoint": "\(durable.lastReplay.fromCheckpoint ? "\(durable.checkpointPosition)" : "none")",
                "restore.replayed_events": "\(durable.lastReplay.records)",
                "restore.seconds": "\(String(format: "%.3f", durable.lastReplay.seconds))",
            ]
        )
    }

    /// The checkpoint file (its age is a metric).
    var checkpointPath: String { DurableStore.checkpointPath(durable.directory) }

    /// The input position: records ever made durable (or pending in this group).
    var logSeq: UInt64 { durable.position }

    var store: RecordStore { durable.store }

    /// Resolves every request of a group in order and makes the group durable with one
    /// sync. On failure nothing of the group stays applied (see `DurableStore.commit`) and
    /// the caller answers every request with `ERR`.
    func commit(_ requests: [IngestFront.Request]) throws -> Group {
        var group = Group(acks: [], changes: [])
        group.acks.reserveCapacity(requests.count)
        for request in requests {
            group.acks.append(apply(request, changes: &group.changes))
            statistics.events += request.frames.count
        }
        statistics.requests += requests.count
        let started = DispatchTime.now().uptimeNanoseconds
        try durable.commit()
        metrics?.synced(nanoseconds: DispatchTime.now().uptimeNanoseconds &- started, logSeq: durable.position)
        return group
    }

    private func apply(_ request: IngestFront.Request, changes: inout [FactChange]) -> IngestProtocol.AckBody {
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
                if resolution.changedState { durable.append(event) }
                if let change = resolution.change { changes.append(change) }
            }
        }
        ack.logSeq = durable.position
        return ack
    }

    /// After a committed group: starts a background checkpoint once
    /// `checkpoint.every_records` have been logged since the last one. Returns whether one
    /// started (the caller then saves the published state beside it).
    func checkpointIfDue() -> Bool {
        durable.pollCheckpoint()
        guard durable.recordsSinceCheckpoint >= checkpointEveryRecords && !durable.isCheckpointing else { return false }
        do {
            try durable.checkpoint(wait: false)
        } catch {
            logger.error("Checkpoint could not start", metadata: ["error": "\(error)"])
        }
        return true
    }

    /// At a graceful stop: a last checkpoint, so the next start replays nothing.
    func finalCheckpoint() {
        if durable.recordsSinceCheckpoint > 0 {
            do {
                try durable.checkpoint(wait: true)
            } catch {
                logger.error("Final checkpoint failed", metadata: ["error": "\(error)"])
            }
        }
        durable.waitForCheckpoint()
    }

    /// Saves the published state beside the checkpoint (see `PublishedState.encoded`).
    func savePublished(_ bytes: [UInt8]) {
        do { try durable.writePublished(bytes) } catch {
            logger.error("Saving the published state failed", metadata: ["error": "\(error)"])
        }
    }

    /// The published state saved by the last checkpoint or graceful stop, if any, with the
    /// position it must not exceed.
    func readPublished() -> [UInt8]? { durable.readPublished() }
}
