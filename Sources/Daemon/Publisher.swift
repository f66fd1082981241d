import DealModel
import Logging
import Wire
import ZeroMQ

/// Publication and snapshots: the updates socket (XPUB) and the snapshot socket (ROUTER).
///
/// Owned by the loop thread, like everything the loop touches. A round publishes the
/// changes `WorkerRegistry.takeRound` took (each series once, from its partition's one
/// owner) and `_progress`, and stores them in the `PublishedState` that snapshots are
/// answered from, so a snapshot is always one whole round (PROTOCOL.md §3, the Clone
/// pattern). The snapshot socket also answers `STATUS` (docs/workers.md).
final class Publisher {
    private let updates: ZMQSocket
    private let snapshots: ZMQSocket
    private let logger: Logger
    private let metrics: DaemonMetrics?
    /// Counts the subscribers connected to the updates socket.
    private let subscribers: ZMQConnectionMonitor
    /// Every series topic accepted from workers, by id (shared with the `WorkerLinkServer`).
    let catalog: SeriesCatalog
    private(set) var state: PublishedState
    private(set) var rounds = 0

    /// Binds the updates and snapshot endpoints.
    init(configuration: DaemonConfiguration, context: ZMQContext, logger: Logger, metrics: DaemonMetrics? = nil) throws
    {
        self.logger = logger
        self.metrics = metrics
        catalog = SeriesCatalog(partitionCount: configuration.partitions)
        state = PublishedState(catalog: catalog)
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
    /// this layout and is not ahead of the restored log.
    func restore(_ bytes: [UInt8]?, layout: PublishedState.Layout, notAfter logSeq: UInt64) {
        guard let bytes else { return }
        do {
            let saved = try PublishedState(encoded: bytes, layout: layout, catalog: catalog)
            guard saved.logSeq <= logSeq else { return }
            state = saved
            logger.info(
                "Published state restored",
                metadata: [
                    "published.log_seq": "\(saved.logSeq)", "published.series": "\(saved.count)",
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

    /// One round (from `WorkerLinkServer.takeRound`): publishes its changes, then
    /// `_progress`. Without one only `_progress` goes out, at the last published position.
    /// `between` runs after every `slice` series (`PublishedState.publish`); it must not
    /// touch this publisher.
    func publishRound(
        _ round: WorkerRegistry.Round?,
        slice: Int = .max,
        between: () throws -> Void = {}
    ) throws {
        rounds += 1
        defer { metrics?.published(state, subscribers: subscribers.drain()) }
        guard let round else {
            try updates.send([Topics.progress, Topics.position(seq: state.seq, logSeq: state.logSeq)], blocking: false)
            return
        }
        try state.publish(round.changes, logSeq: round.position, slice: slice, between: between) { topic, payload in
            _ = try payload.withUnsafeBufferPointer {
                try updates.send(UnsafeRawBufferPointer(topic), UnsafeRawBufferPointer($0))
            }
        }
    }

    /// The largest snapshot request (command and prefix) answered; a bigger one gets `ERR`.
    static let maximumSnapshotRequestBytes = 64 << 10
    /// The request (one frame) that lists the worker sessions.
    static let statusCommand = Array("STATUS".utf8)

    /// Answers every waiting `SNAPSHOT` request from the published state, and `STATUS`
    /// with `status()` (the worker sessions).
    func serviceSnapshots(status: () -> [UInt8]) throws {
        while let frames = try snapshots.receive(blocking: false) {
            let (envelope, body) = IngestProtocol.splitEnvelope(frames)
            let size = body.reduce(0) { $0 + $1.count }
            let limit = Publisher.maximumSnapshotRequestBytes
            guard size <= limit else {
                let reason = "snapshot request of \(size) bytes is over the limit of \(limit) bytes (64 KiB)"
                try snapshots.send(envelope + [IngestProtocol.err, Array(reason.utf8)], blocking: false)
                continue
            }
            if body == [Publisher.statusCommand] {
                try snapshots.send(envelope + [Publisher.statusCommand, status()], blocking: false)
                continue
            }
            guard let command = body.first, command == IngestProtocol.snapshot, body.count <= 2 else {
                let shown = String(decoding: (body.first ?? []).prefix(32), as: UTF8.self).filter { !$0.isNewline }
                let reason =
                    body.first == IngestProtocol.snapshot
                    ? "SNAPSHOT takes one prefix frame"
                    : "unknown command \"\(shown)\" (expected SNAPSHOT or STATUS)"
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
