public import DealModel
public import EventEncoding
public import Logging

/// Loads events into a data directory without a running daemon, through the same
/// decode → resolve → log path as ingest, committed in large groups.
///
/// Why it exists: `dealstream bench` needs a history of ten million events to measure a
/// restart, and sending them through a daemon would take most of the benchmark's time.
/// A daemon started on the directory afterwards cannot tell the difference. Never point
/// it at a directory a running daemon uses.
public enum DataDirectoryImport {
    public struct Summary: Sendable {
        /// Event frames read, and how many of them were rejected.
        public var events: UInt64 = 0
        public var rejected: UInt64 = 0
        /// The input position after the import (what a restarted daemon must publish).
        public var logSeq: UInt64 = 0
        public var liveDeals = 0
        public var records = 0
    }

    public static func run<S: Sequence>(
        _ frames: S,
        encoding: EventEncoding,
        directory: String,
        model: Model,
        logger: Logger
    ) throws -> Summary where S.Element == [UInt8] {
        let durable = try DurableStore(directory: directory, model: model, logger: logger)
        let decoder = EventDecoder(model: model)
        var summary = Summary()
        var pending = 0
        for frame in frames {
            summary.events += 1
            switch encoding.decode(frame, with: decoder) {
            case .failure: summary.rejected += 1
            case .success(let event):
                if durable.apply(event).changedState {
                    durable.append(event)
                    pending += 1
                }
            }
            if pending >= 100_000 {
                try durable.commit()
                pending = 0
            }
        }
        try durable.commit()
        summary.logSeq = durable.position
        summary.liveDeals = durable.store.liveDealCount
        summary.records = durable.store.recordCount
        return summary
    }
}
