import DealModel
import Logging
import Wire
import ZeroMQ

/// Publication and snapshots: rounds for the updates socket (sent by the
/// `UpdatesPublisher` on its own thread) and the snapshot socket (ROUTER).
///
/// Owned by the loop thread, like everything the loop touches. A round stores the changes
/// `WorkerRegistry.takeRound` took (each series once, from its partition's one owner) in
/// the `PublishedState` that snapshots are answered from, so a snapshot is always one
/// whole round (PROTOCOL.md §3, the Clone pattern), and hands what subscribers are to
/// receive of it, `_progress` last, to the updates thread. The snapshot socket also
/// answers `STATUS` (docs/workers.md).
final class Publisher {
    private let updates: UpdatesPublisher
    private let snapshots: ZMQSocket
    private let logger: Logger
    /// Every series topic accepted from workers, by id (shared with the `WorkerLinkServer`).
    let catalog: SeriesCatalog
    private(set) var state: PublishedState
    private(set) var rounds = 0

    /// Binds the updates and snapshot endpoints.
    init(configuration: DaemonConfiguration, context: ZMQContext, logger: Logger, metrics: DaemonMetrics? = nil) throws
    {
        self.logger = logger
        catalog = SeriesCatalog(partitionCount: configuration.partitions)
        state = PublishedState(catalog: catalog)
        updates = try UpdatesPublisher(
            context: context,
            endpoint: configuration.updatesEndpoint,
            highWaterMark: configuration.subscriberHighWaterMark,
            logger: logger,
            metrics: metrics
        )
        snapshots = try ZMQSocket(context: context, type: .router, lingerMilliseconds: 1000)
        try snapshots.set(.sendHighWaterMark, 0)
        // Requests up to 64× the limit are read and answered with ERR naming the limit; a
        // peer sending more is disconnected by libzmq first (the memory bound).
        try snapshots.setMaximumMessageSize(Int64(Publisher.maximumSnapshotRequestBytes) * 64)
        try snapshots.bind(configuration.snapshotEndpoint)
    }

    /// Sends what was handed to the updates thread, then closes both sockets.
    func close() {
        updates.finish()
        snapshots.close()
    }

    /// The socket the loop polls: snapshots.
    func addSockets(to poller: inout ZMQPoller) {
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

    /// One round (from `WorkerLinkServer.takeRound`): stores its changes and hands them to
    /// the updates thread, then `_progress`. Without one only `_progress` goes out, at the
    /// last published position.
    func publishRound(_ round: WorkerRegistry.Round?) {
        rounds += 1
        updates.publish(round.map { state.apply($0.changes, logSeq: $0.position) } ?? state.progressOnly)
    }

    /// Whether the last round handed over is still being sent: the loop hands over the
    /// next one only after it (results meanwhile coalesce into it).
    var isSendingRound: Bool { updates.isSendingRound }

    /// Whether anything handed over is still being sent: an idle `_progress` is then not
    /// needed.
    var isBusy: Bool { updates.isBusy }

    /// The CPU (ns) the updates thread spent on the rounds sent since the last call.
    func takeOutputCost() -> UInt64 { updates.takeCost() }

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
