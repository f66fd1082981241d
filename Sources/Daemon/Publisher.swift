import DealModel
import Logging
import Wire
import ZeroMQ

/// Publication and snapshots: the updates socket (XPUB) and the snapshot socket (ROUTER).
///
/// Owned by the loop thread, like everything the loop touches. A round takes the workers'
/// results up to the position every slot has reported, coalesces them per topic (later
/// values win), publishes the changed series and `_progress`, and stores them in the
/// `PublishedState` that snapshots are answered from, so a snapshot is always one whole
/// round (PROTOCOL.md §3, the Clone pattern).
final class Publisher {
    private let updates: ZMQSocket
    private let snapshots: ZMQSocket
    private let logger: Logger
    private let metrics: DaemonMetrics?
    /// Counts the subscribers connected to the updates socket.
    private let subscribers: ZMQConnectionMonitor
    private(set) var state = PublishedState()
    private(set) var rounds = 0

    /// Binds the updates and snapshot endpoints.
    init(configuration: DaemonConfiguration, context: ZMQContext, logger: Logger, metrics: DaemonMetrics? = nil) throws
    {
        self.logger = logger
        self.metrics = metrics
        updates = try ZMQSocket(context: context, type: .xpub, lingerMilliseconds: 0)
        subscribers = try updates.monitorConnections()
        try updates.set(.sendHighWaterMark, configuration.subscriberHighWaterMark)
        try updates.bind(configuration.updatesEndpoint)
        snapshots = try ZMQSocket(context: context, type: .router, lingerMilliseconds: 1000)
        try snapshots.set(.sendHighWaterMark, 0)
        // Requests up to 64× the limit are read and answered with ERR naming the limit; a
        // peer sending more is disconnected by libzmq first (the memory bound).
        try snapshots.setMaximumMessageSize(Int64(Publisher.maximumSnapshotRequestBytes) * 64)
        try snapshots.bind(configuration.snapshotEndpoint)
    }

    func close() {
        subscribers.close()
        updates.close()
        snapshots.close()
    }

    /// The sockets the loop polls, in this order: updates (subscriptions), snapshots.
    func addSockets(to poller: inout ZMQPoller) {
        poller.add(updates)
        poller.add(snapshots)
    }

    /// Takes the published state a checkpoint or graceful stop saved, if it was saved for
    /// this worker layout and is not ahead of the restored log.
    func restore(_ bytes: [UInt8]?, slots: [Slot], notAfter logSeq: UInt64) {
        guard let bytes else { return }
        do {
            let saved = try PublishedState(encoded: bytes, slots: slots)
            guard saved.logSeq <= logSeq else { return }
            state = saved
            logger.info(
                "Published state restored",
                metadata: [
                    "published.log_seq": "\(saved.logSeq)", "published.series": "\(saved.table.count)",
                ]
            )
        } catch {
            logger.info("Saved published state not used; workers rebuild it", metadata: ["reason": "\(error)"])
        }
    }

    /// Subscriptions arrive on the XPUB; nothing is done with them but reading them.
    func drainSubscriptions() throws {
        while try updates.receive(blocking: false) != nil {}
    }

    /// One round at `position` (from `WorkerLinkServer.takeRoundResults`): publishes the
    /// coalesced changes of `results`, then `_progress`. Without a position only
    /// `_progress` goes out, at the last published one.
    func publishRound(_ results: [(Slot, [WorkerRegistry.Result])], at position: UInt64?) throws {
        rounds += 1
        defer { metrics?.published(state, subscribers: subscribers.drain()) }
        guard let position else {
            try updates.send([Topics.progress, Topics.position(seq: state.seq, logSeq: state.logSeq)], blocking: false)
            return
        }
        // Every topic belongs to one slot (its family and shard), so only the results of
        // one slot can need coalescing.
        var changes: [(topic: TopicKey, payload: [UInt8], slot: Slot)] = []
        for (slot, pending) in results {
            let result = WorkerRegistry.Result.merged(pending)
            if result.isFull {
                // A session's first result holds all its series: whatever the slot
                // published before and is not in it is gone.
                let fresh = Set(result.series.lazy.filter { !$0.payload.isEmpty }.map(\.topic))
                for gone in state.topics(of: slot).subtracting(fresh) { changes.append((gone, [], slot)) }
            }
            for s in result.series { changes.append((s.topic, s.payload, slot)) }
        }
        try state.publish(round: changes, logSeq: position) { try updates.send($0, blocking: false) }
    }

    /// The largest snapshot request (command and prefix) answered; a bigger one gets `ERR`.
    static let maximumSnapshotRequestBytes = 64 << 10

    /// Answers every waiting `SNAPSHOT` request from the published state.
    func serviceSnapshots() throws {
        while let frames = try snapshots.receive(blocking: false) {
            let (envelope, body) = IngestProtocol.splitEnvelope(frames)
            let size = body.reduce(0) { $0 + $1.count }
            let limit = Publisher.maximumSnapshotRequestBytes
            guard size <= limit else {
                let reason = "snapshot request of \(size) bytes is over the limit of \(limit) bytes (64 KiB)"
                try snapshots.send(envelope + [IngestProtocol.err, Array(reason.utf8)], blocking: false)
                continue
            }
            guard let command = body.first, command == IngestProtocol.snapshot, body.count <= 2 else {
                let shown = String(decoding: (body.first ?? []).prefix(32), as: UTF8.self).filter { !$0.isNewline }
                let reason =
                    body.first == IngestProtocol.snapshot
                    ? "SNAPSHOT takes one prefix frame"
                    : "unknown command \"\(shown)\" (expected SNAPSHOT)"
                try snapshots.send(envelope + [IngestProtocol.err, Array(reason.utf8)], blocking: false)
                continue
            }
            let prefix = body.count > 1 ? body[1] : []
            for (topic, payload) in state.snapshot(prefix: prefix) {
                try snapshots.send(envelope + [IngestProtocol.kv, topic, payload], blocking: false)
            }
            try snapshots.send(
                envelope + [IngestProtocol.end, Topics.position(seq: state.seq, logSeq: state.logSeq)],
                blocking: false
            )
        }
    }
}
